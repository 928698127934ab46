// One block of records stored column-wise (DESIGN §11): up to kBlockRows rows,
// per column a fixed-width array plus a null bitmap, and the subject ordinal of
// each row, and per column a zone map (the least and greatest value) that a
// scan reads without decoding the block. The value encoding is in
// docs/storage-format.md ("Record blocks").
#ifndef FEDSHARE_NODE_STORAGE_COLUMN_BLOCK_H_
#define FEDSHARE_NODE_STORAGE_COLUMN_BLOCK_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fedshare::storage {

inline constexpr uint32_t kBlockRows = 4096;
// What EncodeColumnBlock writes: format 2 with narrow columns (an integer
// column, or a DOUBLE column of decimals as scaled integers, stored as offsets
// from its least integer in 1, 2 or 4 bytes when they fit).
inline constexpr uint8_t kBlockFormat = 3;
// Blocks written before narrow columns: every value at its type's full width.
inline constexpr uint8_t kBlockFormatFullWidth = 2;
// Blocks written before zone maps (format 2 without them); still read, never
// skipped.
inline constexpr uint8_t kBlockFormatNoZoneMap = 1;

// Stored column types: the values of fedshare.v1.FieldSchema.Type, plus 0 for
// a column with no value array (the SUBJECT field, whose values are the
// subject ordinals).
enum class StoredType : uint8_t {
  kNone = 0,
  kInt64 = 1,     // int64 LE, 8 bytes
  kDouble = 2,    // IEEE-754 binary64 LE, 8 bytes
  kBool = 3,      // int64 LE 0/1, 8 bytes
  kCategory = 4,  // u32 LE dictionary code, 4 bytes
  kDate = 5,      // int64 LE days since 1970-01-01, 8 bytes
};

// A decoded block. Column c belongs to schema field c.
struct ColumnBlock {
  struct Column {
    // INT64, DATE, BOOL (0/1) and CATEGORY (dictionary code): `ints`, one per
    // row. DOUBLE: `doubles`, one per row. The SUBJECT field: both empty.
    // Null rows hold 0 in their array.
    std::vector<int64_t> ints;
    std::vector<double> doubles;
    // Bit (row % 64) of word (row / 64) set means null. Empty: no nulls.
    std::vector<uint64_t> null_bits;

    // A narrow column read in place (DecodeColumnBlock's `in_place`): its
    // values are not in `ints` or `doubles` but where the block is stored,
    // `width` bytes each at `stored` (little-endian, unaligned), each
    // `base` plus its stored offset (a CATEGORY code as u32; a DOUBLE over
    // `divisor`, 10^scale). Valid while the stored block is. Read them with
    // IntAt/DoubleAt, or WithInts/WithDoubles in a loop. width 0: copied.
    const char* stored = nullptr;
    uint8_t width = 0;
    bool code = false;       // CATEGORY: base plus offset wraps as u32
    uint64_t base = 0;       // integer columns
    double base_double = 0;  // DOUBLE: the base, exact (below 2^52)
    double divisor = 1;      // DOUBLE: 10^scale

    bool IsNull(uint32_t row) const {
      return !null_bits.empty() && ((null_bits[row >> 6] >> (row & 63)) & 1u);
    }
    bool in_place() const { return width != 0; }
    // Row `row`'s value, copied or in place: IntAt for an integer column
    // (INT64, DATE, BOOL, CATEGORY), DoubleAt for a DOUBLE one.
    int64_t IntAt(uint32_t row) const;
    double DoubleAt(uint32_t row) const;
    void SetNull(uint32_t row, uint32_t rows);
  };

  uint32_t rows = 0;
  std::vector<uint32_t> subjects;  // subject ordinal per row
  std::vector<Column> columns;

  // Empties the block for `types.size()` columns, keeping capacity.
  void Reset(size_t num_columns);
};

// An in-place integer column's values, indexed by row as `ints` is: the
// stored T offset plus the base, wrapping as Wide (u32 for a CATEGORY code).
template <typename T, typename Wide>
struct InPlaceInts {
  const char* stored;
  Wide base;
  int64_t operator[](size_t row) const {
    T v;
    std::memcpy(&v, stored + sizeof(T) * row, sizeof(T));
    return static_cast<int64_t>(static_cast<Wide>(base + v));
  }
};

// An in-place DOUBLE column's values, indexed by row as `doubles` is: what
// decoding it gives, to the bit (column_block.cc, UnscaleOffsets).
template <typename T>
struct InPlaceDecimals {
  const char* stored;
  double base;
  double divisor;
  double operator[](size_t row) const {
    T v;
    std::memcpy(&v, stored + sizeof(T) * row, sizeof(T));
    using Signed = std::conditional_t<(sizeof(T) < 4), int32_t, int64_t>;
    return (base + static_cast<double>(static_cast<Signed>(v))) / divisor;
  }
};

// fn(values) with values[row] the integer value of each row of `col`: its
// `ints`, or an InPlaceInts of its width. One loop compiled per width, chosen
// once per block.
template <typename Fn>
decltype(auto) WithInts(const ColumnBlock::Column& col, Fn&& fn) {
  switch (col.width) {
    case 0:
      return fn(static_cast<const int64_t*>(col.ints.data()));
    case 1:
      return col.code
                 ? fn(InPlaceInts<uint8_t, uint32_t>{col.stored, static_cast<uint32_t>(col.base)})
                 : fn(InPlaceInts<uint8_t, uint64_t>{col.stored, col.base});
    case 2:
      return col.code
                 ? fn(InPlaceInts<uint16_t, uint32_t>{col.stored, static_cast<uint32_t>(col.base)})
                 : fn(InPlaceInts<uint16_t, uint64_t>{col.stored, col.base});
    default:  // a code is never stored 4 wide
      return fn(InPlaceInts<uint32_t, uint64_t>{col.stored, col.base});
  }
}

// fn(values) with values[row] the value of each row of DOUBLE column `col`.
template <typename Fn>
decltype(auto) WithDoubles(const ColumnBlock::Column& col, Fn&& fn) {
  switch (col.width) {
    case 0:
      return fn(static_cast<const double*>(col.doubles.data()));
    case 1:
      return fn(InPlaceDecimals<uint8_t>{col.stored, col.base_double, col.divisor});
    case 2:
      return fn(InPlaceDecimals<uint16_t>{col.stored, col.base_double, col.divisor});
    default:
      return fn(InPlaceDecimals<uint32_t>{col.stored, col.base_double, col.divisor});
  }
}

inline int64_t ColumnBlock::Column::IntAt(uint32_t row) const {
  if (width == 0) return ints[row];
  return WithInts(*this, [row](const auto& values) -> int64_t { return values[row]; });
}

inline double ColumnBlock::Column::DoubleAt(uint32_t row) const {
  if (width == 0) return doubles[row];
  return WithDoubles(*this, [row](const auto& values) -> double { return values[row]; });
}

// Per column of a stored block: whether it has null and non-null rows, and
// the least and greatest non-null value (CATEGORY: dictionary code).
struct ZoneMap {
  struct Column {
    bool has_values = false;  // some row is not null; min and max are set
    bool has_nulls = false;
    int64_t min_int = 0, max_int = 0;       // INT64, BOOL, DATE, CATEGORY
    double min_double = 0, max_double = 0;  // DOUBLE
  };
  uint32_t rows = 0;
  // False for a block written before zone maps: nothing is known of its
  // values (`columns` is empty) and it must be read.
  bool present = false;
  std::vector<Column> columns;  // per schema field
};

// Serializes `block`, whose column c has type types[c], with its zone map.
// REQUIRES: block.rows <= kBlockRows, arrays sized to block.rows.
std::string EncodeColumnBlock(const ColumnBlock& block, const std::vector<StoredType>& types);
// As EncodeColumnBlock, in an older format (kBlockFormatFullWidth or
// kBlockFormatNoZoneMap), as builds before it wrote: for tests that a store
// written then is still read.
std::string EncodeColumnBlockInFormat(const ColumnBlock& block,
                                      const std::vector<StoredType>& types, uint8_t format);

// Decodes into `block` (reusing its memory) for a schema whose field c has
// type types[c]. Columns absent from the stored block (fields added later)
// decode as all null. DATA_LOSS if the value is malformed or a stored column
// type differs from types[c]. With `wanted` (one flag per column), only the
// wanted columns' values are copied and checked; the others are left empty
// (no values, no null bits), their layout still checked. Without `wanted`,
// a stored zone map must also equal the one the values give (DATA_LOSS
// otherwise); with it, the zone map's layout only is checked.
//
// With `in_place` as well, a wanted column stored narrow (an INT64, DATE or
// CATEGORY column, or a DOUBLE column of decimals whose base is below 2^52)
// is not copied: it is read where `value` is (ColumnBlock::Column::stored),
// so `value` must outlive the block's use. Its null bitmap is copied and
// checked as any column's.
absl::Status DecodeColumnBlock(absl::string_view value, const std::vector<StoredType>& types,
                               ColumnBlock* block, const std::vector<bool>* wanted = nullptr,
                               bool in_place = false);

// Reads the row count and zone map of a stored block without decoding its
// values: O(columns). Columns absent from the stored block (fields added
// later) are null in every row. A format-1 block gives present = false.
// DATA_LOSS if the header or zone map is malformed.
absl::Status DecodeZoneMap(absl::string_view value, const std::vector<StoredType>& types,
                           ZoneMap* zone_map);

}  // namespace fedshare::storage

#endif  // FEDSHARE_NODE_STORAGE_COLUMN_BLOCK_H_
