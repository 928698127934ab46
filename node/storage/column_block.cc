#include "node/storage/column_block.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

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

// How a format-3 column is stored (docs/storage-format.md, "Narrow columns").
struct Coding {
  uint8_t width = 0;  // bytes a value: 1, 2 or 4; 0: the type's full width, no base
  uint8_t scale = 0;  // DOUBLE: each value is an integer / 10^scale
  int64_t base = 0;   // the least of the integers stored
};

// DOUBLE columns of decimal values: 10^scale, each exact as a double.
constexpr int kMaxScale = 6;
constexpr double kPow10[kMaxScale + 1] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
// A narrow DOUBLE column's base below this in magnitude, plus any offset
// (under 2^32), is an integer below 2^53: exact as a double.
constexpr int64_t kExactBase = int64_t{1} << 52;

// The bytes a value for integers spanning `span` (greatest minus least), or
// 0 if they need the type's full width: a CATEGORY code is never stored
// wider than 2, since its full width is 4.
uint8_t WidthForSpan(StoredType type, uint64_t span) {
  if (span <= 0xFF) return 1;
  if (span <= 0xFFFF) return 2;
  if (type != StoredType::kCategory && span <= 0xFFFFFFFF) return 4;
  return 0;
}

// What a DOUBLE value decodes to from its integer at `scale`: also how the
// encoder checks that the value comes back, bit for bit.
double Unscale(int64_t n, int scale) { return static_cast<double>(n) / kPow10[scale]; }

// The integer `v` is stored as at `scale`, when Unscale gives `v` back to the
// bit (not -0.0, not with more decimals, not beyond 2^53).
bool ScaledInteger(double v, int scale, int64_t* n) {
  const double x = v * kPow10[scale];
  if (!(std::fabs(x) < 9007199254740992.0)) return false;
  const int64_t k = std::llround(x);
  const double back = Unscale(k, scale);
  uint64_t want, got;
  std::memcpy(&want, &v, 8);
  std::memcpy(&got, &back, 8);
  if (want != got) return false;
  *n = k;
  return true;
}

// The coding of a column in format 3, with the integers it stores in
// `stored` (one a row) when it is narrow. An integer column is narrow when
// its values' span fits; a DOUBLE column when every row (a null row holds
// 0.0) is a decimal of at most kMaxScale places, at the fewest places that
// hold them all, and the integers' span fits.
Coding ChooseCoding(const ColumnBlock::Column& col, StoredType type, uint32_t rows,
                    std::vector<int64_t>* stored) {
  Coding coding;
  if (type == StoredType::kNone || rows == 0) return coding;
  stored->resize(rows);
  int64_t* n = stored->data();
  if (type == StoredType::kDouble) {
    int scale = 0;
    for (uint32_t r = 0; r < rows && scale <= kMaxScale;) {
      if (ScaledInteger(col.doubles[r], scale, &n[r])) {
        ++r;
      } else {
        ++scale;  // every row again at the next scale
        r = 0;
      }
    }
    if (scale > kMaxScale) return coding;
    coding.scale = static_cast<uint8_t>(scale);
  } else if (type == StoredType::kCategory) {
    for (uint32_t r = 0; r < rows; ++r) n[r] = static_cast<uint32_t>(col.ints[r]);
  } else {
    std::memcpy(n, col.ints.data(), 8 * size_t{rows});
  }
  int64_t lo = n[0], hi = n[0];
  for (uint32_t r = 1; r < rows; ++r) {
    lo = std::min(lo, n[r]);
    hi = std::max(hi, n[r]);
  }
  coding.width = WidthForSpan(type, static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo));
  if (coding.width == 0) return Coding();
  coding.base = lo;
  return coding;
}

// The least and greatest of `rows` offsets stored `width` bytes each at `in`.
template <typename T>
std::pair<uint64_t, uint64_t> OffsetRangeOf(const char* in, uint32_t rows) {
  T lo = std::numeric_limits<T>::max(), hi = 0;
  for (uint32_t r = 0; r < rows; ++r) {
    T v;
    std::memcpy(&v, in + sizeof(T) * size_t{r}, sizeof(T));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return {lo, hi};
}

std::pair<uint64_t, uint64_t> OffsetRange(const char* in, uint8_t width, uint32_t rows) {
  switch (width) {
    case 1:
      return OffsetRangeOf<uint8_t>(in, rows);
    case 2:
      return OffsetRangeOf<uint16_t>(in, rows);
    default:
      return OffsetRangeOf<uint32_t>(in, rows);
  }
}

// Magnitude below which a DOUBLE stored as the integer n at any scale up to
// kMaxScale comes back as n: Unscale(n) then times 10^scale is within
// |n| * 2^-52 of n, under a half, so llround gives n and ScaledInteger
// succeeds. The decoder then need not redo it value by value.
constexpr int64_t kExactlyScaled = int64_t{1} << 50;

// Whether a format-3 column decoded into `col` is stored as ChooseCoding
// would store it (`got`), without redoing ChooseCoding where the stored
// offsets (least and greatest: `offsets`) already tell. A full-width column
// and a decimal column of large integers are checked by ChooseCoding itself.
bool IsCanonical(const ColumnBlock::Column& col, StoredType type, uint32_t rows, const Coding& got,
                 std::pair<uint64_t, uint64_t> offsets, std::vector<int64_t>* stored) {
  auto same = [&got](const Coding& want) {
    return got.width == want.width && got.scale == want.scale && got.base == want.base;
  };
  if (got.width == 0 || rows == 0) return same(ChooseCoding(col, type, rows, stored));
  if (type != StoredType::kDouble) {
    // The values themselves, as ChooseCoding takes them (a code as u32).
    const bool code = type == StoredType::kCategory;
    int64_t lo = code ? static_cast<uint32_t>(col.ints[0]) : col.ints[0];
    int64_t hi = lo;
    for (uint32_t r = 1; r < rows; ++r) {
      const int64_t v = code ? static_cast<uint32_t>(col.ints[r]) : col.ints[r];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    return got.scale == 0 && got.base == lo &&
           got.width == WidthForSpan(type, static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo));
  }
  if (got.base <= -kExactlyScaled || got.base >= kExactlyScaled ||
      offsets.second >= static_cast<uint64_t>(kExactlyScaled - got.base)) {
    return same(ChooseCoding(col, type, rows, stored));
  }
  // Every value is ScaledInteger at got.scale, as its own stored integer
  // (kExactlyScaled), so ChooseCoding would store the same integers if no
  // fewer places hold them all: at each fewer, some value must fail.
  for (int scale = 0; scale < got.scale; ++scale) {
    bool fails = false;
    int64_t n;
    for (uint32_t r = 0; r < rows && !fails; ++r) fails = !ScaledInteger(col.doubles[r], scale, &n);
    if (!fails) return false;
  }
  return offsets.first == 0 && got.width == WidthForSpan(type, offsets.second);
}

// Appends each stored integer less `base` as a T (the span fits).
template <typename T>
void AppendOffsets(std::string* out, const int64_t* stored, uint32_t rows, int64_t base) {
  const size_t at = out->size();
  out->resize(at + sizeof(T) * size_t{rows});
  char* p = out->data() + at;
  for (uint32_t r = 0; r < rows; ++r) {
    const T offset = static_cast<T>(static_cast<uint64_t>(stored[r]) - static_cast<uint64_t>(base));
    std::memcpy(p + sizeof(T) * size_t{r}, &offset, sizeof(T));
  }
}

// Stored values (T, little-endian at `in`, unaligned) plus `base` to `out`,
// wrapping as u64 (a CATEGORY code then as u32: `Wide`). Four at a time so
// the compiler widens them in vector registers: this loop was most of a
// scan's decoding time.
template <typename T, typename Wide>
void WidenOffsets(const char* in, uint32_t rows, uint64_t base, int64_t* out) {
  const Wide b = static_cast<Wide>(base);
  uint32_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    T v[4];
    std::memcpy(v, in + sizeof(T) * size_t{r}, 4 * sizeof(T));
    out[r] = static_cast<int64_t>(static_cast<Wide>(b + v[0]));
    out[r + 1] = static_cast<int64_t>(static_cast<Wide>(b + v[1]));
    out[r + 2] = static_cast<int64_t>(static_cast<Wide>(b + v[2]));
    out[r + 3] = static_cast<int64_t>(static_cast<Wide>(b + v[3]));
  }
  for (; r < rows; ++r) {
    T v;
    std::memcpy(&v, in + sizeof(T) * size_t{r}, sizeof(T));
    out[r] = static_cast<int64_t>(static_cast<Wide>(b + v));
  }
}

// Decodes `rows` values of an integer column stored `width` bytes each (0:
// the type's full width) from `in` into `out`.
void WidenColumn(const char* in, StoredType type, uint8_t width, uint64_t base, uint32_t rows,
                 int64_t* out) {
  const bool code = type == StoredType::kCategory;
  switch (width) {
    case 1:
      return code ? WidenOffsets<uint8_t, uint32_t>(in, rows, base, out)
                  : WidenOffsets<uint8_t, uint64_t>(in, rows, base, out);
    case 2:
      return code ? WidenOffsets<uint16_t, uint32_t>(in, rows, base, out)
                  : WidenOffsets<uint16_t, uint64_t>(in, rows, base, out);
    case 4:
      return WidenOffsets<uint32_t, uint64_t>(in, rows, base, out);
    default:
      if (code) return WidenOffsets<uint32_t, uint32_t>(in, rows, 0, out);
      std::memcpy(out, in, 8 * size_t{rows});
  }
}

// Decodes a narrow DOUBLE column: each integer over 10^scale, as Unscale.
// With a base of magnitude below 2^52 (every decimal column of real data)
// the base and the offset are each exact as doubles and so is their sum (an
// integer below 2^53), so converting them apart gives Unscale's result to the
// bit, with the offset converted from 32 bits (from 64, as Unscale converts,
// costs more; this loop was most of a scan's decoding time). The compiler
// does not pair the divisions at -O2: each is its own instruction.
template <typename T>
void UnscaleOffsets(const char* in, uint32_t rows, uint64_t base, int scale, double* out) {
  const int64_t b = static_cast<int64_t>(base);
  if (b > -kExactBase && b < kExactBase) {
    const double db = static_cast<double>(b);
    const double divisor = kPow10[scale];
    for (uint32_t r = 0; r < rows; ++r) {
      T v;
      std::memcpy(&v, in + sizeof(T) * size_t{r}, sizeof(T));
      // Through int32 where T fits.
      using Signed = std::conditional_t<(sizeof(T) < 4), int32_t, int64_t>;
      out[r] = (db + static_cast<double>(static_cast<Signed>(v))) / divisor;
    }
    return;
  }
  for (uint32_t r = 0; r < rows; ++r) {
    T v;
    std::memcpy(&v, in + sizeof(T) * size_t{r}, sizeof(T));
    out[r] = Unscale(static_cast<int64_t>(base + v), scale);
  }
}

void UnscaleColumn(const char* in, uint8_t width, uint64_t base, int scale, uint32_t rows,
                   double* out) {
  switch (width) {
    case 1:
      return UnscaleOffsets<uint8_t>(in, rows, base, scale, out);
    case 2:
      return UnscaleOffsets<uint16_t>(in, rows, base, scale, out);
    default:
      return UnscaleOffsets<uint32_t>(in, rows, base, scale, out);
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
  if (h->format != kBlockFormat && h->format != kBlockFormatFullWidth &&
      h->format != kBlockFormatNoZoneMap) {
    return Malformed(absl::StrCat("unknown block format ", h->format));
  }
  if (reserved != 0) return Malformed("reserved header byte set");
  if (h->rows == 0 || h->rows > kBlockRows) return Malformed(absl::StrCat(h->rows, " rows"));
  if (h->ncols > schema_columns) {
    return Malformed(absl::StrCat(h->ncols, " columns stored, schema has ", schema_columns));
  }
  h->zone_bytes = h->format != kBlockFormatNoZoneMap ? kZoneEntryBytes * h->ncols : 0;
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
    c.stored = nullptr;
    c.width = 0;
  }
}

std::string EncodeColumnBlock(const ColumnBlock& block, const std::vector<StoredType>& types) {
  return EncodeColumnBlockInFormat(block, types, kBlockFormat);
}

std::string EncodeColumnBlockInFormat(const ColumnBlock& block,
                                      const std::vector<StoredType>& types, uint8_t format) {
  const uint32_t rows = block.rows;
  const uint32_t words = (rows + 63) / 64;
  std::string out;
  size_t size = 8 + 4 * size_t{rows};
  for (StoredType t : types) size += 4 + 8 * words + Width(t) * rows;
  out.reserve(size);
  out.push_back(static_cast<char>(format));
  out.push_back(0);
  uint16_t ncols = static_cast<uint16_t>(types.size());
  AppendRaw(&out, &ncols, 2);
  AppendRaw(&out, &rows, 4);
  AppendRaw(&out, block.subjects.data(), 4 * size_t{rows});
  std::vector<uint32_t> codes;
  std::vector<int64_t> stored;
  for (size_t c = 0; c < types.size(); ++c) {
    const ColumnBlock::Column& col = block.columns[c];
    bool has_nulls = false;
    for (uint64_t w : col.null_bits) has_nulls = has_nulls || w != 0;
    const Coding coding =
        format == kBlockFormat ? ChooseCoding(col, types[c], rows, &stored) : Coding();
    out.push_back(static_cast<char>(types[c]));
    out.push_back(has_nulls ? 1 : 0);
    out.push_back(static_cast<char>(coding.width));
    out.push_back(static_cast<char>(coding.scale));
    if (coding.width != 0) AppendRaw(&out, &coding.base, 8);
    if (has_nulls) {
      std::vector<uint64_t> bits(col.null_bits);
      bits.resize(words, 0);
      // Bits past the last row are never set in a stored block.
      if (rows % 64 != 0 && words > 0) bits[words - 1] &= (uint64_t{1} << (rows % 64)) - 1;
      AppendRaw(&out, bits.data(), 8 * size_t{words});
    }
    switch (coding.width) {
      case 1:
        AppendOffsets<uint8_t>(&out, stored.data(), rows, coding.base);
        continue;
      case 2:
        AppendOffsets<uint16_t>(&out, stored.data(), rows, coding.base);
        continue;
      case 4:
        AppendOffsets<uint32_t>(&out, stored.data(), rows, coding.base);
        continue;
      default:
        break;
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
  if (format == kBlockFormatNoZoneMap) return out;
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
  zone_map->present = h.format != kBlockFormatNoZoneMap;
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
                               ColumnBlock* block, const std::vector<bool>* wanted, bool in_place) {
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
    col.stored = nullptr;
    col.width = 0;
    if (!copied || types[c] == StoredType::kNone || types[c] == StoredType::kDouble) {
      col.ints.clear();
    }
    if (!copied || types[c] != StoredType::kDouble) col.doubles.clear();
  }
  block->rows = rows;
  // Per stored column when every column is decoded: its coding, for the
  // check below.
  std::vector<Coding> codings;
  // And of a narrow DOUBLE column, its least and greatest stored offsets.
  std::vector<std::pair<uint64_t, uint64_t>> offset_ranges;
  if (wanted == nullptr) {
    codings.resize(ncols);
    offset_ranges.resize(ncols);
  }
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
    const uint8_t width = header[2];
    const uint8_t scale = header[3];
    // Format 3: a width of 1, 2 or 4 (a CATEGORY code 1 or 2) with a base,
    // and for DOUBLE a scale; none for the SUBJECT column.
    const bool width_ok =
        width == 0 || width == 1 || width == 2 || (width == 4 && types[c] != StoredType::kCategory);
    if (header[1] > 1 || !width_ok ||
        (width != 0 && (h.format != kBlockFormat || types[c] == StoredType::kNone)) ||
        (scale != 0 && (width == 0 || types[c] != StoredType::kDouble || scale > kMaxScale))) {
      return Malformed(absl::StrCat("column ", c, " has a bad header"));
    }
    uint64_t base = 0;
    if (width != 0 && !in.Read(&base, 8)) return Malformed("short column base");
    if (width != 0 && types[c] == StoredType::kCategory && base > 0xFFFFFFFF) {
      return Malformed(absl::StrCat("column ", c, " has a base past the u32 codes"));
    }
    if (!codings.empty()) codings[c] = {width, scale, static_cast<int64_t>(base)};
    const size_t value_bytes = (width != 0 ? width : Width(types[c])) * size_t{rows};
    if (!is_wanted(c)) {
      const size_t skip = (header[1] != 0 ? 8 * size_t{words} : 0) + value_bytes;
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
    // Read in place: a narrow column but BOOL (whose values are checked
    // below), and a decimal one whose base converts exactly.
    const int64_t signed_base = static_cast<int64_t>(base);
    if (in_place && wanted != nullptr && width != 0 && types[c] != StoredType::kBool &&
        (types[c] != StoredType::kDouble ||
         (signed_base > -kExactBase && signed_base < kExactBase))) {
      col.stored = in.data();
      if (!in.Skip(value_bytes)) return Malformed("short column");
      col.width = width;
      col.code = types[c] == StoredType::kCategory;
      col.base = base;
      col.base_double = static_cast<double>(signed_base);
      col.divisor = kPow10[scale];
      col.ints.clear();
      col.doubles.clear();
      continue;
    }
    switch (types[c]) {
      case StoredType::kNone:
        break;
      case StoredType::kDouble: {
        col.doubles.resize(rows);
        const char* p = in.data();
        if (!in.Skip(value_bytes)) return Malformed("short column");
        if (width == 0) {
          std::memcpy(col.doubles.data(), p, value_bytes);
          // Values the writer never stores are refused rather than handed
          // to readers (a null row's value is never read). A decimal column
          // is finite by construction.
          if (!AllFinite(col.doubles.data(), rows)) {
            for (uint32_t r = 0; r < rows; ++r) {
              if (!col.IsNull(r) && !std::isfinite(col.doubles[r])) {
                return Malformed(
                    absl::StrCat("column ", c, " row ", r, " holds a non-finite double"));
              }
            }
          }
        } else {
          UnscaleColumn(p, width, base, scale, rows, col.doubles.data());
          if (!offset_ranges.empty()) offset_ranges[c] = OffsetRange(p, width, rows);
        }
        break;
      }
      default: {
        col.ints.resize(rows);
        const char* p = in.data();
        if (!in.Skip(value_bytes)) return Malformed("short column");
        WidenColumn(p, types[c], width, base, rows, col.ints.data());
        break;
      }
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
  // Each column at the coding the encoder picks for its values, so one block
  // has one encoding. Checked where every column is decoded, as the zone map
  // is.
  std::vector<int64_t> stored;
  for (size_t c = 0; wanted == nullptr && h.format == kBlockFormat && c < ncols; ++c) {
    if (!IsCanonical(block->columns[c], types[c], rows, codings[c], offset_ranges[c], &stored)) {
      return Malformed(absl::StrCat("column ", c, " is not stored at the width its values need"));
    }
  }
  // Values the writer never stores are refused rather than handed to readers
  // (a null row's value is never read): a BOOL other than 0 and 1 here, a
  // non-finite DOUBLE as it is decoded.
  for (size_t c = 0; c < ncols; ++c) {
    if (!is_wanted(c)) continue;
    const ColumnBlock::Column& col = block->columns[c];
    if (types[c] == StoredType::kBool) {
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
