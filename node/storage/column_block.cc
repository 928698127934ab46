#include "node/storage/column_block.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"

namespace fedshare::storage {
namespace {

static_assert(ABSL_IS_LITTLE_ENDIAN, "block arrays are little-endian; add byte swaps for BE hosts");

size_t Width(StoredType t) {
  switch (t) {
    case StoredType::kNone:
      return 0;
    case StoredType::kCategory:
      return 4;
    default:
      return 8;
  }
}

bool KnownType(uint8_t t) { return t <= 5; }

void AppendRaw(std::string* out, const void* data, size_t n) {
  out->append(static_cast<const char*>(data), n);
}

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool Read(void* out, size_t n) {
    if (in_.size() < n) return false;
    if (n > 0) std::memcpy(out, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool Skip(size_t n) {
    if (in_.size() < n) return false;
    in_.remove_prefix(n);
    return true;
  }
  const char* data() const { return in_.data(); }
  bool empty() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

absl::Status Malformed(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("malformed record block: ", what));
}

// One zone map entry: u8 flags (bit 0: a non-null row, bit 1: a null row),
// 7 reserved bytes, then the least and greatest value, 8 bytes each.
constexpr size_t kZoneEntryBytes = 24;

bool IsNullRow(const ColumnBlock::Column& col, uint32_t row) {
  return (row >> 6) < col.null_bits.size() && ((col.null_bits[row >> 6] >> (row & 63)) & 1u);
}

ZoneMap::Column ComputeZone(const ColumnBlock::Column& col, StoredType type, uint32_t rows) {
  ZoneMap::Column z;
  if (type == StoredType::kNone) return z;
  for (uint32_t r = 0; r < rows; ++r) {
    if (IsNullRow(col, r)) {
      z.has_nulls = true;
      continue;
    }
    if (type == StoredType::kDouble) {
      const double v = col.doubles[r];
      z.min_double = z.has_values ? std::min(z.min_double, v) : v;
      z.max_double = z.has_values ? std::max(z.max_double, v) : v;
    } else {
      // A CATEGORY code is stored as u32; the zone holds what is read back.
      const int64_t v = type == StoredType::kCategory
                            ? static_cast<int64_t>(static_cast<uint32_t>(col.ints[r]))
                            : col.ints[r];
      z.min_int = z.has_values ? std::min(z.min_int, v) : v;
      z.max_int = z.has_values ? std::max(z.max_int, v) : v;
    }
    z.has_values = true;
  }
  return z;
}

void AppendZone(std::string* out, const ZoneMap::Column& z, StoredType type) {
  char entry[kZoneEntryBytes] = {};
  entry[0] = static_cast<char>((z.has_values ? 1 : 0) | (z.has_nulls ? 2 : 0));
  if (z.has_values && type == StoredType::kDouble) {
    std::memcpy(entry + 8, &z.min_double, 8);
    std::memcpy(entry + 16, &z.max_double, 8);
  } else if (z.has_values) {
    std::memcpy(entry + 8, &z.min_int, 8);
    std::memcpy(entry + 16, &z.max_int, 8);
  }
  out->append(entry, kZoneEntryBytes);
}

// False when the entry is not one AppendZone writes for some column of `type`.
bool ParseZone(const char* entry, StoredType type, ZoneMap::Column* z) {
  const uint8_t flags = static_cast<uint8_t>(entry[0]);
  for (size_t i = 1; i < 8; ++i) {
    if (entry[i] != 0) return false;
  }
  if (flags > 3 || (type == StoredType::kNone && flags != 0)) return false;
  z->has_values = (flags & 1) != 0;
  z->has_nulls = (flags & 2) != 0;
  if (!z->has_values) {
    for (size_t i = 8; i < kZoneEntryBytes; ++i) {
      if (entry[i] != 0) return false;
    }
    return true;
  }
  if (type == StoredType::kDouble) {
    std::memcpy(&z->min_double, entry + 8, 8);
    std::memcpy(&z->max_double, entry + 16, 8);
    return std::isfinite(z->min_double) && std::isfinite(z->max_double) &&
           z->min_double <= z->max_double;
  }
  std::memcpy(&z->min_int, entry + 8, 8);
  std::memcpy(&z->max_int, entry + 16, 8);
  return z->min_int <= z->max_int;
}

// Stored CATEGORY codes (u32 LE at `in`, unaligned) to `out`. Four at a time
// so the compiler widens them in vector registers: this loop was most of a
// scan's decoding time.
void WidenCodes(const char* in, uint32_t rows, int64_t* out) {
  uint32_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    uint32_t c[4];
    std::memcpy(c, in + 4 * size_t{r}, 16);
    out[r] = c[0];
    out[r + 1] = c[1];
    out[r + 2] = c[2];
    out[r + 3] = c[3];
  }
  for (; r < rows; ++r) {
    uint32_t code;
    std::memcpy(&code, in + 4 * size_t{r}, 4);
    out[r] = code;
  }
}

// Whether every value is finite, null rows included: the common case, checked
// without a branch per row; only when it fails are null rows looked at.
bool AllFinite(const double* values, uint32_t rows) {
  // A value is not finite when its exponent bits are all ones; adding one
  // to the lowest of them then carries into the sign bit. Integer adds and
  // ors, so the compiler checks two values per instruction.
  constexpr uint64_t kExponent = 0x7ff0000000000000;
  constexpr uint64_t kExponentOne = 0x0010000000000000;
  uint64_t carry = 0;
  for (uint32_t r = 0; r < rows; ++r) {
    uint64_t bits;
    std::memcpy(&bits, &values[r], 8);
    carry |= (bits & kExponent) + kExponentOne;
  }
  return (carry >> 63) == 0;
}

struct BlockHeader {
  uint8_t format = 0;
  uint16_t ncols = 0;
  uint32_t rows = 0;
  size_t zone_bytes = 0;  // at the end of the value; 0 in format 1
};

absl::Status ReadHeader(absl::string_view value, size_t schema_columns, BlockHeader* h) {
  Reader in(value);
  uint8_t reserved = 0;
  if (!in.Read(&h->format, 1) || !in.Read(&reserved, 1) || !in.Read(&h->ncols, 2) ||
      !in.Read(&h->rows, 4)) {
    return Malformed("short header");
  }
  if (h->format != kBlockFormat && h->format != kBlockFormatNoZoneMap) {
    return Malformed(absl::StrCat("unknown block format ", h->format));
  }
  if (reserved != 0) return Malformed("reserved header byte set");
  if (h->rows == 0 || h->rows > kBlockRows) return Malformed(absl::StrCat(h->rows, " rows"));
  if (h->ncols > schema_columns) {
    return Malformed(absl::StrCat(h->ncols, " columns stored, schema has ", schema_columns));
  }
  h->zone_bytes = h->format == kBlockFormat ? kZoneEntryBytes * h->ncols : 0;
  if (value.size() < 8 + 4 * size_t{h->rows} + 4 * size_t{h->ncols} + h->zone_bytes) {
    return Malformed("short block");
  }
  return absl::OkStatus();
}

}  // namespace

void ColumnBlock::Column::SetNull(uint32_t row, uint32_t num_rows) {
  if (null_bits.empty()) null_bits.assign((num_rows + 63) / 64, 0);
  if (null_bits.size() < (row >> 6) + 1) null_bits.resize((row >> 6) + 1, 0);
  null_bits[row >> 6] |= uint64_t{1} << (row & 63);
}

void ColumnBlock::Reset(size_t num_columns) {
  rows = 0;
  subjects.clear();
  columns.resize(num_columns);
  for (Column& c : columns) {
    c.ints.clear();
    c.doubles.clear();
    c.null_bits.clear();
  }
}

std::string EncodeColumnBlock(const ColumnBlock& block, const std::vector<StoredType>& types) {
  const uint32_t rows = block.rows;
  const uint32_t words = (rows + 63) / 64;
  std::string out;
  size_t size = 8 + 4 * size_t{rows};
  for (StoredType t : types) size += 4 + 8 * words + Width(t) * rows;
  out.reserve(size);
  out.push_back(static_cast<char>(kBlockFormat));
  out.push_back(0);
  uint16_t ncols = static_cast<uint16_t>(types.size());
  AppendRaw(&out, &ncols, 2);
  AppendRaw(&out, &rows, 4);
  AppendRaw(&out, block.subjects.data(), 4 * size_t{rows});
  std::vector<uint32_t> codes;
  for (size_t c = 0; c < types.size(); ++c) {
    const ColumnBlock::Column& col = block.columns[c];
    bool has_nulls = false;
    for (uint64_t w : col.null_bits) has_nulls = has_nulls || w != 0;
    out.push_back(static_cast<char>(types[c]));
    out.push_back(has_nulls ? 1 : 0);
    out.push_back(0);
    out.push_back(0);
    if (has_nulls) {
      std::vector<uint64_t> bits(col.null_bits);
      bits.resize(words, 0);
      // Bits past the last row are never set in a stored block.
      if (rows % 64 != 0 && words > 0) bits[words - 1] &= (uint64_t{1} << (rows % 64)) - 1;
      AppendRaw(&out, bits.data(), 8 * size_t{words});
    }
    switch (types[c]) {
      case StoredType::kNone:
        break;
      case StoredType::kDouble:
        AppendRaw(&out, col.doubles.data(), 8 * size_t{rows});
        break;
      case StoredType::kCategory:
        codes.resize(rows);
        for (uint32_t r = 0; r < rows; ++r) codes[r] = static_cast<uint32_t>(col.ints[r]);
        AppendRaw(&out, codes.data(), 4 * size_t{rows});
        break;
      default:
        AppendRaw(&out, col.ints.data(), 8 * size_t{rows});
        break;
    }
  }
  for (size_t c = 0; c < types.size(); ++c) {
    AppendZone(&out, ComputeZone(block.columns[c], types[c], rows), types[c]);
  }
  return out;
}

absl::Status DecodeZoneMap(absl::string_view value, const std::vector<StoredType>& types,
                           ZoneMap* zone_map) {
  BlockHeader h;
  FEDSHARE_RETURN_IF_ERROR(ReadHeader(value, types.size(), &h));
  zone_map->rows = h.rows;
  zone_map->present = h.format == kBlockFormat;
  zone_map->columns.clear();
  if (!zone_map->present) return absl::OkStatus();
  zone_map->columns.resize(types.size());
  const char* zones = value.data() + value.size() - h.zone_bytes;
  for (size_t c = 0; c < types.size(); ++c) {
    ZoneMap::Column& z = zone_map->columns[c];
    if (c >= h.ncols) {
      z.has_nulls = types[c] != StoredType::kNone;  // added later: null in every row
      continue;
    }
    if (!ParseZone(zones + kZoneEntryBytes * c, types[c], &z)) {
      return Malformed(absl::StrCat("column ", c, " has a bad zone map"));
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeColumnBlock(absl::string_view value, const std::vector<StoredType>& types,
                               ColumnBlock* block, const std::vector<bool>* wanted) {
  auto is_wanted = [wanted](size_t c) {
    return wanted == nullptr || (c < wanted->size() && (*wanted)[c]);
  };
  BlockHeader h;
  FEDSHARE_RETURN_IF_ERROR(ReadHeader(value, types.size(), &h));
  const uint16_t ncols = h.ncols;
  const uint32_t rows = h.rows;
  const absl::string_view zones = value.substr(value.size() - h.zone_bytes);
  Reader in(value.substr(0, value.size() - h.zone_bytes));
  in.Skip(8);
  // Arrays about to be overwritten keep their size, so a block reused for
  // the next block of a scan is not zeroed before each copy.
  block->columns.resize(types.size());
  for (size_t c = 0; c < types.size(); ++c) {
    ColumnBlock::Column& col = block->columns[c];
    const bool copied = c < ncols && is_wanted(c);
    col.null_bits.clear();
    if (!copied || types[c] == StoredType::kNone || types[c] == StoredType::kDouble) {
      col.ints.clear();
    }
    if (!copied || types[c] != StoredType::kDouble) col.doubles.clear();
  }
  block->rows = rows;
  block->subjects.resize(rows);
  if (!in.Read(block->subjects.data(), 4 * size_t{rows})) return Malformed("short subjects");
  const uint32_t words = (rows + 63) / 64;
  for (size_t c = 0; c < types.size(); ++c) {
    ColumnBlock::Column& col = block->columns[c];
    if (c >= ncols) {
      if (!is_wanted(c)) continue;
      // A field added after this block was written: null in every row.
      if (types[c] == StoredType::kDouble) {
        col.doubles.assign(rows, 0.0);
      } else if (types[c] != StoredType::kNone) {
        col.ints.assign(rows, 0);
      }
      if (types[c] != StoredType::kNone && rows > 0) {
        col.null_bits.assign(words, ~uint64_t{0});
        if (rows % 64 != 0) col.null_bits[words - 1] = (uint64_t{1} << (rows % 64)) - 1;
      }
      continue;
    }
    uint8_t header[4];
    if (!in.Read(header, 4)) return Malformed("short column header");
    if (!KnownType(header[0]) || static_cast<StoredType>(header[0]) != types[c]) {
      return Malformed(absl::StrCat("column ", c, " has stored type ", header[0], ", schema type ",
                                    static_cast<int>(types[c])));
    }
    if (header[1] > 1 || header[2] != 0 || header[3] != 0) {
      return Malformed(absl::StrCat("column ", c, " has a bad header"));
    }
    if (!is_wanted(c)) {
      const size_t skip = (header[1] != 0 ? 8 * size_t{words} : 0) + Width(types[c]) * rows;
      if (!in.Skip(skip)) return Malformed("short column");
      continue;
    }
    if (header[1] != 0) {
      col.null_bits.resize(words);
      if (!in.Read(col.null_bits.data(), 8 * size_t{words})) return Malformed("short null bitmap");
      // The writer sets the flag only with a null row, and no bit past the last row.
      uint64_t any = 0;
      for (uint64_t w : col.null_bits) any |= w;
      if (any == 0) return Malformed(absl::StrCat("column ", c, " flags nulls but has none"));
      if (rows % 64 != 0 && (col.null_bits[words - 1] >> (rows % 64)) != 0) {
        return Malformed(absl::StrCat("column ", c, " has null bits past the last row"));
      }
    }
    switch (types[c]) {
      case StoredType::kNone:
        break;
      case StoredType::kDouble:
        col.doubles.resize(rows);
        if (!in.Read(col.doubles.data(), 8 * size_t{rows})) return Malformed("short column");
        break;
      case StoredType::kCategory: {
        col.ints.resize(rows);
        const char* p = in.data();
        if (!in.Skip(4 * size_t{rows})) return Malformed("short column");
        WidenCodes(p, rows, col.ints.data());
        break;
      }
      default:
        col.ints.resize(rows);
        if (!in.Read(col.ints.data(), 8 * size_t{rows})) return Malformed("short column");
        break;
    }
  }
  if (!in.empty()) return Malformed("trailing bytes");
  // The zone map must be the one the values give, or a scan could skip a
  // block holding records that match. Checked whole where every column is
  // decoded; a scan's partial decode checks its layout only.
  for (size_t c = 0; c < h.zone_bytes / kZoneEntryBytes; ++c) {
    ZoneMap::Column z;
    if (!ParseZone(zones.data() + kZoneEntryBytes * c, types[c], &z)) {
      return Malformed(absl::StrCat("column ", c, " has a bad zone map"));
    }
    if (wanted != nullptr) continue;
    std::string expected;
    AppendZone(&expected, ComputeZone(block->columns[c], types[c], rows), types[c]);
    if (zones.substr(kZoneEntryBytes * c, kZoneEntryBytes) != expected) {
      return Malformed(absl::StrCat("column ", c, " has a zone map its values do not give"));
    }
  }
  // Values the writer never stores are refused rather than handed to readers
  // (a null row's value is never read).
  // Only DOUBLE and BOOL columns have values to refuse; the checks are
  // branch-free over the column, and find the row only on failure.
  for (size_t c = 0; c < ncols; ++c) {
    if (!is_wanted(c)) continue;
    const ColumnBlock::Column& col = block->columns[c];
    if (types[c] == StoredType::kDouble) {
      if (AllFinite(col.doubles.data(), rows)) continue;
      for (uint32_t r = 0; r < rows; ++r) {
        if (!col.IsNull(r) && !std::isfinite(col.doubles[r])) {
          return Malformed(absl::StrCat("column ", c, " row ", r, " holds a non-finite double"));
        }
      }
    } else if (types[c] == StoredType::kBool) {
      for (uint32_t r = 0; r < rows; ++r) {
        if (!col.IsNull(r) && col.ints[r] != 0 && col.ints[r] != 1) {
          return Malformed(absl::StrCat("column ", c, " row ", r, " holds BOOL ", col.ints[r]));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace fedshare::storage
