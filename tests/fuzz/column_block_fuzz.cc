// DecodeColumnBlock on any bytes. The first byte picks the schema's column
// types (3 columns, each of the 6 stored types); the rest is the stored value.
// Anything the storage format forbids (reserved bytes, a has-nulls flag
// other than 0 or 1 or set with no null row, null bits past the last row,
// BOOL other than 0/1 or non-finite DOUBLE in a non-null row, zero or too many rows, short or
// trailing bytes, a zone map the values do not give) is refused with DATA_LOSS: a block of the
// current format the decoder accepts with every column stored and no null row is canonical
// (encoding it again gives back exactly the same bytes), and any accepted block survives encoding
// and decoding unchanged, and read in place (as a scan reads it) gives the same values.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "node/storage/column_block.h"
#include "tests/fuzz/fuzz_assert.h"

using fedshare::storage::ColumnBlock;
using fedshare::storage::StoredType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::vector<StoredType> types;
  unsigned pick = data[0];
  for (int c = 0; c < 3; ++c) {
    types.push_back(static_cast<StoredType>(pick % 6));
    pick /= 6;
  }
  absl::string_view value(reinterpret_cast<const char*>(data + 1), size - 1);
  ColumnBlock block;
  absl::Status status = fedshare::storage::DecodeColumnBlock(value, types, &block);
  if (!status.ok()) {
    FEDSHARE_FUZZ_ASSERT(status.code() == absl::StatusCode::kDataLoss,
                         "a refused block must be DATA_LOSS: " + status.ToString());
    return 0;
  }
  FEDSHARE_FUZZ_ASSERT(block.rows > 0 && block.rows <= fedshare::storage::kBlockRows &&
                           block.subjects.size() == block.rows &&
                           block.columns.size() == types.size(),
                       "the decoded block is usable: every array is as long as the rows");
  for (size_t c = 0; c < types.size(); ++c) {
    const ColumnBlock::Column& col = block.columns[c];
    size_t want_ints =
        (types[c] == StoredType::kNone || types[c] == StoredType::kDouble) ? 0 : block.rows;
    size_t want_doubles = types[c] == StoredType::kDouble ? block.rows : 0;
    FEDSHARE_FUZZ_ASSERT(col.ints.size() == want_ints && col.doubles.size() == want_doubles,
                         "a column holds one value a row, in the array of its type");
    FEDSHARE_FUZZ_ASSERT(col.null_bits.empty() || col.null_bits.size() == (block.rows + 63) / 64,
                         "null bits cover exactly the rows");
    for (uint32_t r = 0; r < block.rows; ++r) {
      (void)col.IsNull(r);
      if (col.IsNull(r)) continue;
      FEDSHARE_FUZZ_ASSERT(types[c] != StoredType::kDouble || std::isfinite(col.doubles[r]),
                           "a non-null DOUBLE is finite");
      FEDSHARE_FUZZ_ASSERT(types[c] != StoredType::kBool || col.ints[r] == 0 || col.ints[r] == 1,
                           "a non-null BOOL is 0 or 1");
    }
  }
  uint16_t stored_columns = 0;
  if (value.size() >= 4) std::memcpy(&stored_columns, value.data() + 2, 2);
  bool any_null = false;
  for (const ColumnBlock::Column& col : block.columns) any_null |= !col.null_bits.empty();
  // With every column stored and no null row, nothing is left unchecked.
  std::string again = fedshare::storage::EncodeColumnBlock(block, types);
  // A block without a zone map (format 1) re-encodes with one.
  const bool current_format = value[0] == static_cast<char>(fedshare::storage::kBlockFormat);
  FEDSHARE_FUZZ_ASSERT(
      stored_columns != types.size() || any_null || !current_format || again == value,
      absl::StrCat("accepted a non-canonical block of ", value.size(), " bytes"));
  // Read in place as a scan reads it (every column wanted), each value is
  // the copied one, to the bit.
  const std::vector<bool> every(types.size(), true);
  ColumnBlock in_place;
  FEDSHARE_FUZZ_ASSERT(
      fedshare::storage::DecodeColumnBlock(value, types, &in_place, &every, true).ok(),
      "an accepted block is accepted read in place");
  for (size_t c = 0; c < types.size(); ++c) {
    const ColumnBlock::Column& col = block.columns[c];
    const ColumnBlock::Column& at = in_place.columns[c];
    FEDSHARE_FUZZ_ASSERT(at.null_bits == col.null_bits, "in place: the same null rows");
    for (uint32_t r = 0; r < block.rows && types[c] != StoredType::kNone; ++r) {
      if (types[c] == StoredType::kDouble) {
        const double a = at.DoubleAt(r);
        FEDSHARE_FUZZ_ASSERT(std::memcmp(&a, &col.doubles[r], 8) == 0,
                             "in place: a DOUBLE comes back to the bit");
      } else {
        FEDSHARE_FUZZ_ASSERT(at.IntAt(r) == col.ints[r], "in place: the same integer");
      }
    }
  }
  ColumnBlock copy;
  FEDSHARE_FUZZ_ASSERT(fedshare::storage::DecodeColumnBlock(again, types, &copy).ok() &&
                           copy.subjects == block.subjects &&
                           fedshare::storage::EncodeColumnBlock(copy, types) == again,
                       "an accepted block survives encoding and decoding unchanged");
  return 0;
}
