#include "node/storage/column_block.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::storage {
namespace {

using ::fedshare::testing::StatusIs;

TEST(ColumnBlockTest, RoundTripsEveryType) {
  std::vector<StoredType> types = {StoredType::kNone, StoredType::kInt64,    StoredType::kDouble,
                                   StoredType::kBool, StoredType::kCategory, StoredType::kDate};
  ColumnBlock block;
  block.Reset(types.size());
  block.rows = 70;
  for (uint32_t r = 0; r < block.rows; ++r) {
    block.subjects.push_back(r * 3);
    block.columns[1].ints.push_back(-static_cast<int64_t>(r));
    block.columns[2].doubles.push_back(r / 3.0);
    block.columns[3].ints.push_back(r % 2);
    block.columns[4].ints.push_back(r % 5);
    block.columns[5].ints.push_back(19000 + r);
  }
  block.columns[2].SetNull(65, block.rows);
  block.columns[4].SetNull(0, block.rows);

  std::string encoded = EncodeColumnBlock(block, types);
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(encoded, types, &decoded));
  EXPECT_EQ(decoded.rows, 70u);
  EXPECT_EQ(decoded.subjects, block.subjects);
  for (size_t c = 0; c < types.size(); ++c) {
    EXPECT_EQ(decoded.columns[c].ints, block.columns[c].ints) << c;
    EXPECT_EQ(decoded.columns[c].doubles, block.columns[c].doubles) << c;
  }
  EXPECT_TRUE(decoded.columns[2].IsNull(65));
  EXPECT_FALSE(decoded.columns[2].IsNull(64));
  EXPECT_TRUE(decoded.columns[4].IsNull(0));
  EXPECT_FALSE(decoded.columns[1].IsNull(0));
  EXPECT_TRUE(decoded.columns[1].null_bits.empty());
}

TEST(ColumnBlockTest, FieldAddedLaterDecodesAsNull) {
  ColumnBlock block;
  block.Reset(1);
  block.rows = 2;
  block.subjects = {0, 1};
  block.columns[0].ints = {5, 6};
  std::string encoded = EncodeColumnBlock(block, {StoredType::kInt64});
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(encoded, {StoredType::kInt64, StoredType::kDouble}, &decoded));
  EXPECT_FALSE(decoded.columns[0].IsNull(1));
  EXPECT_TRUE(decoded.columns[1].IsNull(0));
  EXPECT_TRUE(decoded.columns[1].IsNull(1));
  EXPECT_EQ(decoded.columns[1].doubles.size(), 2u);
}

TEST(ColumnBlockTest, WantedColumnsOnlyAreDecodedAndChecked) {
  std::vector<StoredType> types = {StoredType::kNone, StoredType::kInt64, StoredType::kDouble,
                                   StoredType::kBool};
  ColumnBlock block;
  block.Reset(types.size());
  block.rows = 100;
  for (uint32_t r = 0; r < block.rows; ++r) {
    block.subjects.push_back(r);
    block.columns[1].ints.push_back(r * 7);
    block.columns[2].doubles.push_back(r / 4.0);
    block.columns[3].ints.push_back(r % 2);
  }
  block.columns[2].SetNull(3, block.rows);
  block.columns[1].SetNull(99, block.rows);
  std::string encoded = EncodeColumnBlock(block, types);

  const std::vector<bool> wanted = {false, false, true, false};
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(encoded, types, &decoded, &wanted));
  EXPECT_EQ(decoded.rows, 100u);
  EXPECT_EQ(decoded.subjects, block.subjects);
  EXPECT_EQ(decoded.columns[2].doubles, block.columns[2].doubles);
  EXPECT_TRUE(decoded.columns[2].IsNull(3));
  EXPECT_FALSE(decoded.columns[2].IsNull(4));
  for (size_t c : {1, 3}) {
    EXPECT_TRUE(decoded.columns[c].ints.empty()) << c;
    EXPECT_TRUE(decoded.columns[c].null_bits.empty()) << c;
  }

  // A BOOL of 2 in an unwanted column is not looked at; wanted, it is refused.
  ColumnBlock bad_bool = block;
  bad_bool.columns[3].ints[10] = 2;
  std::string bad = EncodeColumnBlock(bad_bool, types);
  EXPECT_OK(DecodeColumnBlock(bad, types, &decoded, &wanted));
  const std::vector<bool> bools = {false, false, false, true};
  EXPECT_THAT(DecodeColumnBlock(bad, types, &decoded, &bools),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("BOOL 2")));
  // The layout of unwanted columns is still checked.
  EXPECT_THAT(DecodeColumnBlock(absl::string_view(encoded).substr(0, encoded.size() - 8), types,
                                &decoded, &wanted),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
}

TEST(ColumnBlockTest, TypeMismatchAndTruncationAreDataLoss) {
  ColumnBlock block;
  block.Reset(1);
  block.rows = 1;
  block.subjects = {0};
  block.columns[0].ints = {5};
  std::string encoded = EncodeColumnBlock(block, {StoredType::kInt64});
  ColumnBlock decoded;
  EXPECT_THAT(DecodeColumnBlock(encoded, {StoredType::kDouble}, &decoded),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("stored type")));
  EXPECT_THAT(
      DecodeColumnBlock(encoded.substr(0, encoded.size() - 1), {StoredType::kInt64}, &decoded),
      StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
}

// A block the writer never produces is refused, not handed to readers
// (docs/storage-format.md, "Record block value"); tests/fuzz/column_block_fuzz
// checks that every accepted block is canonical.
// Codes are widened four at a time, then one by one: blocks of every size
// around a multiple of four, with codes at the top of the u32 range.
TEST(ColumnBlockTest, CategoryCodesDecodeUnsignedWhateverTheRowCount) {
  const std::vector<StoredType> types = {StoredType::kCategory};
  for (uint32_t rows : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 9u, kBlockRows - 1, kBlockRows}) {
    ColumnBlock block;
    block.Reset(1);
    block.rows = rows;
    for (uint32_t r = 0; r < rows; ++r) {
      block.subjects.push_back(r);
      block.columns[0].ints.push_back(r % 3 == 0 ? int64_t{0xFFFFFFFF} - r : int64_t{r});
    }
    if (rows > 2) block.columns[0].SetNull(rows - 2, rows);
    SCOPED_TRACE(rows);
    ColumnBlock decoded;
    ASSERT_OK(DecodeColumnBlock(EncodeColumnBlock(block, types), types, &decoded));
    EXPECT_EQ(decoded.columns[0].ints, block.columns[0].ints);
    if (rows > 2) {
      EXPECT_TRUE(decoded.columns[0].IsNull(rows - 2));
    }
  }
}

// A null row's value is never read, so a non-finite one there is not refused
// (the finiteness check passes the column whole first, then looks at nulls).
TEST(ColumnBlockTest, NonFiniteDoubleInANullRowIsAccepted) {
  const std::vector<StoredType> types = {StoredType::kDouble};
  ColumnBlock block;
  block.Reset(1);
  block.rows = 6;
  for (uint32_t r = 0; r < block.rows; ++r) {
    block.subjects.push_back(r);
    block.columns[0].doubles.push_back(r + 1.0 / 3);  // no decimal: stored at full width
  }
  block.columns[0].doubles[4] = 0;
  block.columns[0].SetNull(4, block.rows);
  std::string encoded = EncodeColumnBlock(block, types);
  // Layout: 8 header, 6 x 4 subjects, 4 column header, 8 null bitmap, values.
  const size_t row4 = 8 + 24 + 4 + 8 + 4 * 8;
  ASSERT_EQ(encoded.substr(row4, 8), std::string(8, '\0'));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  encoded.replace(row4, 8, reinterpret_cast<const char*>(&nan), 8);
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(encoded, types, &decoded));
  EXPECT_TRUE(decoded.columns[0].IsNull(4));
  EXPECT_EQ(decoded.columns[0].doubles[5], 5 + 1.0 / 3);
  // The same value in a row that is not null is refused (decoding the column
  // as a scan does, which checks the zone map's layout only).
  encoded.replace(row4 + 8, 8, reinterpret_cast<const char*>(&nan), 8);
  const std::vector<bool> wanted = {true};
  EXPECT_THAT(DecodeColumnBlock(encoded, types, &decoded, &wanted),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("row 5")));
}

// The finiteness check looks at a value's exponent bits only: the largest,
// the smallest normal and subnormal values and both zeros pass, in any row of
// a block of any length; each infinity and NaN is refused wherever it is.
TEST(ColumnBlockTest, FiniteExtremesPassAndEveryNonFiniteIsRefused) {
  using Limits = std::numeric_limits<double>;
  const std::vector<double> finite = {Limits::max(),        -Limits::max(), Limits::min(),
                                      Limits::denorm_min(), -0.0,           0.0,
                                      -Limits::denorm_min(), 1e-300,        -123.25};
  const std::vector<double> non_finite = {Limits::infinity(), -Limits::infinity(),
                                          Limits::quiet_NaN(), -Limits::quiet_NaN(),
                                          Limits::signaling_NaN()};
  const std::vector<StoredType> types = {StoredType::kDouble};
  const std::vector<bool> wanted = {true};
  for (uint32_t rows : {1u, 7u, 64u, 4096u}) {
    SCOPED_TRACE(absl::StrCat(rows, " rows"));
    ColumnBlock block;
    block.Reset(1);
    block.rows = rows;
    for (uint32_t r = 0; r < rows; ++r) {
      block.subjects.push_back(r);
      block.columns[0].doubles.push_back(finite[r % finite.size()]);
    }
    ColumnBlock decoded;
    const std::string good = EncodeColumnBlock(block, types);
    ASSERT_OK(DecodeColumnBlock(good, types, &decoded));
    for (double bad : non_finite) {
      // Layout: 8 header, 4 a subject, 4 column header, the values (no nulls).
      const uint32_t row = rows / 2;
      std::string poisoned = good;
      poisoned.replace(8 + 4 * size_t{rows} + 4 + 8 * size_t{row}, 8,
                       reinterpret_cast<const char*>(&bad), 8);
      EXPECT_THAT(DecodeColumnBlock(poisoned, types, &decoded, &wanted),
                  StatusIs(absl::StatusCode::kDataLoss,
                           ::testing::HasSubstr(absl::StrCat("row ", row))))
          << bad;
    }
  }
}

TEST(ColumnBlockTest, ValuesTheWriterNeverStoresAreDataLoss) {
  ColumnBlock block;
  block.Reset(2);
  block.rows = 1;
  block.subjects = {0};
  block.columns[0].ints = {1};
  block.columns[1].doubles = {0.5};
  const std::vector<StoredType> types = {StoredType::kBool, StoredType::kDouble};
  // A block of format 2, every value at full width (format 3's narrow
  // columns: NarrowColumnsThatAreNotCanonicalAreDataLoss).
  const std::string good = EncodeColumnBlockInFormat(block, types, kBlockFormatFullWidth);
  // Layout: 8 header, 4 subject, column 0 at 12 (4 header + 8 value), column 1 at 24,
  // the zone map at 36 (24 bytes a column).
  ASSERT_EQ(good.size(), 36u + 2 * 24);
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(good, types, &decoded));

  auto corrupt = [&](size_t offset, std::string bytes) {
    std::string bad = good;
    bad.replace(offset, bytes.size(), bytes);
    return DecodeColumnBlock(bad, types, &decoded);
  };
  const auto data_loss = StatusIs(absl::StatusCode::kDataLoss, ::testing::_);
  EXPECT_THAT(corrupt(1, "\x01"), data_loss) << "reserved header byte";
  EXPECT_THAT(corrupt(4, std::string(4, '\0')), data_loss) << "zero rows";
  EXPECT_THAT(corrupt(14, "\x01"), data_loss) << "a narrow width in format 2";
  EXPECT_THAT(corrupt(15, "\x01"), data_loss) << "reserved column byte";
  EXPECT_THAT(corrupt(16, "\x02"), data_loss) << "BOOL 2";
  EXPECT_THAT(corrupt(24 + 4 + 6, "\xf0\x7f"), data_loss) << "infinite DOUBLE";
  EXPECT_THAT(corrupt(24 + 4 + 6, "\xf8\x7f"), data_loss) << "NaN DOUBLE";

  // A has-nulls flag of 2; a null bit past the last row; a flag with no null
  // row. (A value in a null row is never read.)
  std::string with_bitmap = good.substr(0, 12) + std::string("\x03\x01\0\0", 4);
  auto bitmap = [&](uint64_t bits, int64_t value) {
    std::string out = with_bitmap;
    out.append(reinterpret_cast<const char*>(&bits), 8);
    out.append(reinterpret_cast<const char*>(&value), 8);
    // Column 1 as before; column 0's zone entry for its one row null: flag 2.
    return out + good.substr(24, 12) + std::string("\x02", 1) + std::string(23, '\0') +
           good.substr(36 + 24);
  };
  ASSERT_OK(DecodeColumnBlock(bitmap(1, 7), types, &decoded));
  EXPECT_TRUE(decoded.columns[0].IsNull(0));
  EXPECT_THAT(DecodeColumnBlock(bitmap(2, 0), types, &decoded), data_loss);
  EXPECT_THAT(DecodeColumnBlock(bitmap(0, 0), types, &decoded), data_loss);
  std::string flag_two = bitmap(1, 0);
  flag_two[13] = 2;
  EXPECT_THAT(DecodeColumnBlock(flag_two, types, &decoded), data_loss);
}

TEST(ColumnBlockTest, ZoneMapHoldsEachColumnsLeastAndGreatestValue) {
  const std::vector<StoredType> types = {StoredType::kNone, StoredType::kInt64, StoredType::kDouble,
                                         StoredType::kCategory, StoredType::kDate};
  ColumnBlock block;
  block.Reset(types.size());
  block.rows = 100;
  for (uint32_t r = 0; r < block.rows; ++r) {
    block.subjects.push_back(r);
    block.columns[1].ints.push_back(static_cast<int64_t>(r) - 50);
    block.columns[2].doubles.push_back(r * 0.5);
    block.columns[3].ints.push_back(3 + r % 4);
    block.columns[4].ints.push_back(0);
    block.columns[4].SetNull(r, block.rows);
  }
  // A null row's value is no value: the least non-null score is 1.0.
  block.columns[2].SetNull(0, block.rows);
  block.columns[2].SetNull(1, block.rows);
  const std::string encoded = EncodeColumnBlock(block, types);
  EXPECT_EQ(encoded[0], static_cast<char>(kBlockFormat));
  // A field added after the block was written: one more schema column.
  std::vector<StoredType> later = types;
  later.push_back(StoredType::kInt64);
  ZoneMap zones;
  ASSERT_OK(DecodeZoneMap(encoded, later, &zones));
  EXPECT_TRUE(zones.present);
  EXPECT_EQ(zones.rows, 100u);
  ASSERT_EQ(zones.columns.size(), 6u);
  EXPECT_FALSE(zones.columns[0].has_values);
  EXPECT_FALSE(zones.columns[0].has_nulls);
  EXPECT_TRUE(zones.columns[1].has_values);
  EXPECT_FALSE(zones.columns[1].has_nulls);
  EXPECT_EQ(zones.columns[1].min_int, -50);
  EXPECT_EQ(zones.columns[1].max_int, 49);
  EXPECT_TRUE(zones.columns[2].has_nulls);
  EXPECT_EQ(zones.columns[2].min_double, 1.0);
  EXPECT_EQ(zones.columns[2].max_double, 49.5);
  EXPECT_EQ(zones.columns[3].min_int, 3);
  EXPECT_EQ(zones.columns[3].max_int, 6);
  EXPECT_FALSE(zones.columns[4].has_values);  // every row null
  EXPECT_TRUE(zones.columns[4].has_nulls);
  EXPECT_FALSE(zones.columns[5].has_values);
  EXPECT_TRUE(zones.columns[5].has_nulls);
}

// Blocks written before zone maps (format 1: the same layout without the
// trailing zone map) are still read, and say that nothing is known.
TEST(ColumnBlockTest, BlockWithoutZoneMapIsStillRead) {
  const std::vector<StoredType> types = {StoredType::kInt64, StoredType::kDouble};
  ColumnBlock block;
  block.Reset(types.size());
  block.rows = 3;
  block.subjects = {7, 8, 9};
  block.columns[0].ints = {1, 2, 3};
  block.columns[1].doubles = {0.5, 1.5, 2.5};
  const std::string old = EncodeColumnBlockInFormat(block, types, kBlockFormatNoZoneMap);
  // Format 2's layout without the trailing zone map.
  std::string full_width = EncodeColumnBlockInFormat(block, types, kBlockFormatFullWidth);
  full_width.resize(full_width.size() - 2 * 24);
  full_width[0] = static_cast<char>(kBlockFormatNoZoneMap);
  EXPECT_EQ(old, full_width);
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(old, types, &decoded));
  EXPECT_EQ(decoded.columns[0].ints, block.columns[0].ints);
  EXPECT_EQ(decoded.columns[1].doubles, block.columns[1].doubles);
  ZoneMap zones;
  ASSERT_OK(DecodeZoneMap(old, types, &zones));
  EXPECT_FALSE(zones.present);
  EXPECT_EQ(zones.rows, 3u);
  // Re-encoding (as ingest does when it fills a tail block) adds the zone map.
  ASSERT_OK(DecodeZoneMap(EncodeColumnBlock(decoded, types), types, &zones));
  EXPECT_TRUE(zones.present);
  EXPECT_EQ(zones.columns[0].max_int, 3);
}

TEST(ColumnBlockTest, ZoneMapTheValuesDoNotGiveIsDataLoss) {
  const std::vector<StoredType> types = {StoredType::kInt64};
  ColumnBlock block;
  block.Reset(1);
  block.rows = 2;
  block.subjects = {0, 1};
  block.columns[0].ints = {10, 20};
  std::string lying = EncodeColumnBlock(block, types);
  const int64_t max = 15;  // the greatest value is 20
  lying.replace(lying.size() - 8, 8, reinterpret_cast<const char*>(&max), 8);
  ColumnBlock decoded;
  EXPECT_THAT(DecodeColumnBlock(lying, types, &decoded),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("zone map")));
  std::string swapped = EncodeColumnBlock(block, types);
  const int64_t min = 30;  // least above greatest: malformed even unchecked
  swapped.replace(swapped.size() - 16, 8, reinterpret_cast<const char*>(&min), 8);
  ZoneMap zones;
  EXPECT_THAT(DecodeZoneMap(swapped, types, &zones),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
}

// Format 3 stores each integer column as offsets from its least value in 1,
// 2 or 4 bytes when the values' span fits (a CATEGORY code in 1 or 2), at
// full width otherwise; every value comes back exactly, at the extremes too.
// Column c of `block` as a scan reads it: every row through IntAt and
// through WithInts, which must agree.
std::vector<int64_t> ReadInts(const ColumnBlock& block, size_t c) {
  const ColumnBlock::Column& col = block.columns[c];
  std::vector<int64_t> out;
  WithInts(col, [&](const auto& values) {
    for (uint32_t r = 0; r < block.rows; ++r) {
      EXPECT_EQ(values[r], col.IntAt(r)) << "row " << r;
      out.push_back(values[r]);
    }
  });
  return out;
}

// Decodes `encoded` with only column c wanted, in place, into `block`.
absl::Status DecodeInPlace(const std::string& encoded, const std::vector<StoredType>& types,
                           size_t c, ColumnBlock* block) {
  std::vector<bool> wanted(types.size(), false);
  wanted[c] = true;
  return DecodeColumnBlock(encoded, types, block, &wanted, /*in_place=*/true);
}

TEST(ColumnBlockTest, NarrowColumnsTakeTheWidthTheirValuesNeed) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  struct Case {
    StoredType type;
    std::vector<int64_t> values;  // cycled over the rows
    size_t width;                 // bytes a value, as stored
    bool base;                    // a base is stored
  };
  const std::vector<Case> cases = {
      {StoredType::kInt64, {2015, 2020, 2024}, 1, true},
      {StoredType::kInt64, {-3, 252}, 1, true},  // span 255
      {StoredType::kInt64, {-3, 253}, 2, true},  // span 256
      {StoredType::kInt64, {7}, 1, true},        // one value: offsets of 0
      {StoredType::kInt64, {0, 65536}, 4, true},
      {StoredType::kInt64, {kMin, kMin + 0xFFFFFFFF}, 4, true},
      {StoredType::kInt64, {kMax - 0x100000000, kMax}, 8, false},
      {StoredType::kInt64, {kMin, kMax}, 8, false},  // the whole u64 span
      {StoredType::kBool, {0, 1}, 1, true},
      {StoredType::kDate, {19000, 19000 + 400}, 2, true},
      {StoredType::kCategory, {0, 5, 255}, 1, true},
      {StoredType::kCategory, {0, 256}, 2, true},
      {StoredType::kCategory, {0xFFFFFFFF - 65535, 0xFFFFFFFF}, 2, true},
      {StoredType::kCategory, {0, 65536}, 4, false},  // a code is never wider than 4
  };
  for (uint32_t rows : {1u, 3u, 4u, 5u, 64u, 65u, kBlockRows}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& k = cases[i];
      SCOPED_TRACE(absl::StrCat("case ", i, ", ", rows, " rows"));
      const std::vector<StoredType> types = {StoredType::kNone, k.type};
      ColumnBlock block;
      block.Reset(2);
      block.rows = rows;
      for (uint32_t r = 0; r < rows; ++r) {
        block.subjects.push_back(r);
        block.columns[1].ints.push_back(k.values[r % k.values.size()]);
      }
      const std::string encoded = EncodeColumnBlock(block, types);
      // The header, the ordinals, two column headers, the base, the values,
      // two zone map entries. With one row the span is 0: one byte.
      const size_t width = rows == 1 ? 1 : k.width;
      const bool base = rows == 1 || k.base;
      EXPECT_EQ(encoded.size(), 8 + 4 * rows + 8 + (base ? 8 : 0) + width * rows + 2 * 24);
      ColumnBlock decoded;
      ASSERT_OK(DecodeColumnBlock(encoded, types, &decoded));
      EXPECT_EQ(decoded.columns[1].ints, block.columns[1].ints);
      const std::vector<bool> wanted = {false, true};
      ColumnBlock part;
      ASSERT_OK(DecodeColumnBlock(encoded, types, &part, &wanted));
      EXPECT_EQ(part.columns[1].ints, block.columns[1].ints);
      EXPECT_EQ(EncodeColumnBlock(decoded, types), encoded);
      // Read in place, as a scan reads it: every narrow column but BOOL.
      ColumnBlock in_place;
      ASSERT_OK(DecodeInPlace(encoded, types, 1, &in_place));
      EXPECT_EQ(in_place.columns[1].in_place(), base && k.type != StoredType::kBool);
      EXPECT_EQ(in_place.columns[1].ints.empty(), in_place.columns[1].in_place());
      EXPECT_EQ(ReadInts(in_place, 1), block.columns[1].ints);
    }
  }
}

// A null row holds 0, and so counts in the span: it decodes to 0 again.
TEST(ColumnBlockTest, NarrowColumnsKeepNullRowsAtZero) {
  const std::vector<StoredType> types = {StoredType::kInt64, StoredType::kCategory};
  ColumnBlock block;
  block.Reset(2);
  block.rows = 130;
  for (uint32_t r = 0; r < block.rows; ++r) {
    block.subjects.push_back(r);
    const bool null = r % 7 == 3;
    block.columns[0].ints.push_back(null ? 0 : 2000 + r % 30);
    block.columns[1].ints.push_back(null ? 0 : 40 + r % 5);
    if (null) {
      block.columns[0].SetNull(r, block.rows);
      block.columns[1].SetNull(r, block.rows);
    }
  }
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(EncodeColumnBlock(block, types), types, &decoded));
  EXPECT_EQ(decoded.columns[0].ints, block.columns[0].ints);
  EXPECT_EQ(decoded.columns[1].ints, block.columns[1].ints);
  EXPECT_EQ(decoded.columns[0].null_bits, block.columns[0].null_bits);
  EXPECT_TRUE(decoded.columns[1].IsNull(3));
  EXPECT_EQ(decoded.columns[1].ints[3], 0);
}

// One block has one encoding: a narrow column wider than its values need,
// from a base other than its least value, a width its type does not take,
// or a narrow width in an older format, is refused.
TEST(ColumnBlockTest, NarrowColumnsThatAreNotCanonicalAreDataLoss) {
  const std::vector<StoredType> types = {StoredType::kInt64, StoredType::kCategory,
                                         StoredType::kDouble};
  ColumnBlock block;
  block.Reset(3);
  block.rows = 2;
  block.subjects = {0, 1};
  block.columns[0].ints = {10, 12};
  block.columns[1].ints = {1, 2};
  block.columns[2].doubles = {1.0 / 3, 2.0 / 3};  // no decimal: full width
  const std::string good = EncodeColumnBlock(block, types);
  // Layout: 8 header, 8 ordinals; column 0 at 16: 4 header, 8 base (10), 2
  // one-byte offsets; column 1 at 30, the same; column 2 at 44: 4 header, 16
  // values; the zone map at 64.
  ASSERT_EQ(good.size(), 64u + 3 * 24);
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(good, types, &decoded));
  auto corrupt = [&](size_t offset, std::string bytes) {
    std::string bad = good;
    bad.replace(offset, bytes.size(), bytes);
    return bad;
  };
  const auto data_loss = StatusIs(absl::StatusCode::kDataLoss, ::testing::_);
  // Base 9 and offsets 1, 3 give the same values from a base no value has.
  const std::string low_base = corrupt(20, std::string("\x09", 1)).replace(28, 2, "\x01\x03");
  EXPECT_THAT(DecodeColumnBlock(low_base, types, &decoded), data_loss) << "base not the least";
  // A scan that decodes some columns reads such a block as its values say.
  const std::vector<bool> wanted = {true, false, false};
  ASSERT_OK(DecodeColumnBlock(low_base, types, &decoded, &wanted));
  EXPECT_EQ(decoded.columns[0].ints, block.columns[0].ints);
  // The same values two bytes each.
  std::string wide = good.substr(0, 16) + std::string("\x01\x00\x02\x00", 4) + good.substr(20, 8) +
                     std::string("\x00\x00\x02\x00", 4) + good.substr(30);
  EXPECT_THAT(DecodeColumnBlock(wide, types, &decoded),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("width")));
  EXPECT_THAT(DecodeColumnBlock(corrupt(18, "\x03"), types, &decoded), data_loss) << "width 3";
  EXPECT_THAT(DecodeColumnBlock(corrupt(32, "\x04"), types, &decoded), data_loss)
      << "a 4-byte CATEGORY offset";
  EXPECT_THAT(DecodeColumnBlock(corrupt(46, "\x01"), types, &decoded), data_loss)
      << "a narrow DOUBLE without its base";
  EXPECT_THAT(DecodeColumnBlock(corrupt(19, "\x01"), types, &decoded), data_loss)
      << "a decimal scale on an INT64";
  EXPECT_THAT(DecodeColumnBlock(corrupt(47, "\x01"), types, &decoded), data_loss)
      << "a decimal scale at full width";
  std::string base_past_codes = corrupt(34, std::string("\x00\x00\x00\x00\x01", 5));
  EXPECT_THAT(DecodeColumnBlock(base_past_codes, types, &decoded, &wanted), data_loss)
      << "a CATEGORY base past the u32 codes, even unwanted";
  EXPECT_THAT(DecodeColumnBlock(corrupt(0, "\x02"), types, &decoded), data_loss)
      << "a narrow width in format 2";
  EXPECT_THAT(DecodeColumnBlock(good.substr(0, 27), types, &decoded), data_loss) << "short";
}

// Bits of a double, so that -0.0 and 0.0 differ.
std::vector<uint64_t> Bits(const std::vector<double>& values) {
  std::vector<uint64_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), 8 * values.size());
  return bits;
}

// DOUBLE column c of `block` as a scan reads it, as bits: every row through
// DoubleAt and through WithDoubles, which must agree.
std::vector<uint64_t> ReadDoubleBits(const ColumnBlock& block, size_t c) {
  const ColumnBlock::Column& col = block.columns[c];
  std::vector<double> out;
  WithDoubles(col, [&](const auto& values) {
    for (uint32_t r = 0; r < block.rows; ++r) {
      const double a = values[r], b = col.DoubleAt(r);
      EXPECT_EQ(std::memcmp(&a, &b, 8), 0) << "row " << r;
      out.push_back(a);
    }
  });
  return Bits(out);
}

// A DOUBLE column of decimals (a score with one place, money with two, whole
// numbers) is stored as integers over 10^places, narrow; every value comes
// back to the bit. Anything else (more places, -0.0, beyond 2^53, a span
// past 32 bits) stays at full width.
TEST(ColumnBlockTest, DecimalDoublesAreStoredNarrowAndComeBackToTheBit) {
  struct Case {
    std::vector<double> values;  // cycled over the rows
    size_t width;                // bytes a value, as stored (8: full, no base)
    int scale;
  };
  const std::vector<Case> cases = {
      {{73.4, 0.0, 100.0, 55.5, 61.2}, 2, 1},
      {{9000.25, 81234.99, 0.01, 45000.1}, 4, 2},
      {{3.0, 250.0, -5.0}, 1, 0},  // span 255
      {{3.0, 251.0, -5.0}, 2, 0},
      {{0.1, 0.2, 0.3}, 1, 1},      // 0.1 + 0.2 != 0.3 in doubles; each is its own decimal
      {{-1.5, -0.25, 2.75}, 2, 2},  // -150 to 275
      {{1e-6, 2e-6}, 1, 6},
      {{1e-7, 2e-7}, 8, 0},               // seven places: full width
      {{1.0 / 3, 2.5}, 8, 0},             // not a decimal
      {{-0.0, 1.5}, 8, 0},                // -0.0 would come back as 0.0
      {{9007199254740992.0, 1.0}, 8, 0},  // 2^53: the span needs more than 32 bits
      {{4294967295.0, 0.0}, 4, 0},        // an offset past INT32_MAX
      // A base from 2^52 on is decoded value by value, below it two or
      // four at a time (column_block.cc, UnscaleOffsets): both sides.
      {{4503599627370496.0, 4503599627370497.0}, 1, 0},
      {{-4503599627370495.0, -4503599627370400.0}, 1, 0},
      {{450359962737049.5, 450359962737049.6}, 1, 1},
      {{-4503599627370496.0, -4503599627370300.0}, 1, 0},
      {{4294967296.0, 0.0}, 8, 0},
      {{1e300, 1.0}, 8, 0},
  };
  const std::vector<StoredType> types = {StoredType::kDouble};
  for (uint32_t rows : {5u, 64u, kBlockRows}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      const Case& k = cases[i];
      SCOPED_TRACE(absl::StrCat("case ", i, ", ", rows, " rows"));
      ColumnBlock block;
      block.Reset(1);
      block.rows = rows;
      for (uint32_t r = 0; r < rows; ++r) {
        block.subjects.push_back(r);
        block.columns[0].doubles.push_back(k.values[r % k.values.size()]);
      }
      const std::string encoded = EncodeColumnBlock(block, types);
      EXPECT_EQ(encoded.size(), 8 + 4 * rows + 4 + (k.width == 8 ? 0 : 8) + k.width * rows + 24);
      EXPECT_EQ(static_cast<int>(encoded[8 + 4 * rows + 3]), k.scale);
      ColumnBlock decoded;
      ASSERT_OK(DecodeColumnBlock(encoded, types, &decoded));
      EXPECT_EQ(Bits(decoded.columns[0].doubles), Bits(block.columns[0].doubles));
      const std::vector<bool> wanted = {true};
      ColumnBlock part;
      ASSERT_OK(DecodeColumnBlock(encoded, types, &part, &wanted));
      EXPECT_EQ(Bits(part.columns[0].doubles), Bits(block.columns[0].doubles));
      // Read in place, as a scan reads it: a narrow column whose base is
      // below 2^52; one from 2^52 on is copied.
      ColumnBlock in_place;
      ASSERT_OK(DecodeInPlace(encoded, types, 0, &in_place));
      const bool big_base = std::fabs(k.values[0]) >= 4503599627370496.0;
      EXPECT_EQ(in_place.columns[0].in_place(), k.width != 8 && !big_base);
      EXPECT_EQ(ReadDoubleBits(in_place, 0), Bits(block.columns[0].doubles));
    }
  }
}

// Every one-place decimal a score can hold, and every cent up to 10,000,
// each parsed from its text as ingest does, comes back to the bit.
TEST(ColumnBlockTest, EveryDecimalOfAFewPlacesComesBackToTheBit) {
  const std::vector<StoredType> types = {StoredType::kDouble};
  for (int places : {1, 2}) {
    const int64_t count = places == 1 ? 1001 : 1000001;
    for (int64_t from = 0; from < count; from += kBlockRows) {
      ColumnBlock block;
      block.Reset(1);
      block.rows = static_cast<uint32_t>(std::min<int64_t>(kBlockRows, count - from));
      for (uint32_t r = 0; r < block.rows; ++r) {
        const int64_t n = from + r;
        const std::string text = places == 1 ? absl::StrCat(n / 10, ".", n % 10)
                                             : absl::StrCat(n / 100, ".", n % 100 / 10, n % 10);
        block.subjects.push_back(r);
        block.columns[0].doubles.push_back(std::strtod(text.c_str(), nullptr));
      }
      const std::string encoded = EncodeColumnBlock(block, types);
      ASSERT_EQ(static_cast<int>(encoded[8 + 4 * block.rows + 3]), places) << from;
      ColumnBlock decoded;
      ASSERT_OK(DecodeColumnBlock(encoded, types, &decoded));
      ASSERT_EQ(Bits(decoded.columns[0].doubles), Bits(block.columns[0].doubles)) << from;
    }
  }
}

// A DOUBLE column stored with more places than its values need, or past the
// most places there are, is refused.
TEST(ColumnBlockTest, DecimalDoublesThatAreNotCanonicalAreDataLoss) {
  const std::vector<StoredType> types = {StoredType::kDouble};
  ColumnBlock block;
  block.Reset(1);
  block.rows = 2;
  block.subjects = {0, 1};
  block.columns[0].doubles = {0.5, 1.5};
  const std::string good = EncodeColumnBlock(block, types);
  // Layout: 8 header, 8 ordinals; the column at 16: 4 header (width 1, scale
  // 1), 8 base (5), offsets 0 and 10; the zone map at 30.
  ASSERT_EQ(good.size(), 30u + 24);
  ASSERT_EQ(good.substr(18, 2), std::string("\x01\x01", 2));
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(good, types, &decoded));
  // Two places: base 50, offsets 0 and 100 give the same values.
  std::string two_places = good;
  two_places[19] = 2;
  two_places[20] = 50;
  two_places[29] = 100;
  const std::vector<bool> wanted = {true};
  ASSERT_OK(DecodeColumnBlock(two_places, types, &decoded, &wanted));
  EXPECT_EQ(decoded.columns[0].doubles, block.columns[0].doubles);
  EXPECT_THAT(DecodeColumnBlock(two_places, types, &decoded),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("width")));
  std::string seven_places = good;
  seven_places[19] = 7;
  EXPECT_THAT(DecodeColumnBlock(seven_places, types, &decoded, &wanted),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("bad header")));
}

// The full decode's check that a narrow DOUBLE column is canonical reads the
// stored offsets instead of finding each value's places again, except for
// integers of 2^50 and more. Bytes it accepts must be the bytes the encoder
// writes for what they decode to: mutate the base, the scale and the offsets
// of encoded blocks, small and large, and re-encode whatever is accepted.
TEST(ColumnBlockTest, EveryNarrowDecimalTheDecoderAcceptsIsWhatTheEncoderWrites) {
  const std::vector<StoredType> types = {StoredType::kDouble};
  const std::vector<std::vector<double>> columns = {
      {0.5, 1.5, 2.25},                                              // two places, width 1
      {10.0, 20.0, 30.0},                                            // whole numbers, width 1
      {1125899906842624.0, 1125899906842625.0, 1125899906842824.0},  // 2^50 on: value by value
      {-3.5, 0.0, 4.0},
  };
  std::srand(7);
  int accepted = 0, refused = 0;
  for (const std::vector<double>& values : columns) {
    ColumnBlock block;
    block.Reset(1);
    block.rows = static_cast<uint32_t>(values.size());
    for (uint32_t r = 0; r < block.rows; ++r) block.subjects.push_back(r);
    block.columns[0].doubles = values;
    const std::string good = EncodeColumnBlock(block, types);
    // 8 header, 4 a row of ordinals, then the column: 4 header (its scale at
    // +3), 8 base, one byte an offset.
    const size_t column = 8 + 4 * size_t{block.rows};
    ASSERT_EQ(good[column + 2], 1) << "narrow, one byte a value";
    for (int trial = 0; trial < 20000; ++trial) {
      std::string bad = good;
      // The same values stored otherwise are the mutations that matter:
      // from a lower base (3), or with one place more (4).
      const int what = std::rand() % 5;
      if (what == 0) bad[column + 3] = static_cast<char>(std::rand() % 7);  // scale
      if (what == 1) {
        int64_t base;
        std::memcpy(&base, &bad[column + 4], 8);
        base += std::rand() % 41 - 20;
        if (std::rand() % 4 == 0) base *= 10;
        std::memcpy(&bad[column + 4], &base, 8);
      }
      if (what == 2) bad[column + 12 + std::rand() % block.rows] = static_cast<char>(std::rand());
      if (what >= 3) {
        int64_t base;
        std::memcpy(&base, &bad[column + 4], 8);
        const int shift = 1 + std::rand() % 5;
        if (what == 3) base -= shift;
        if (what == 4) base *= 10;
        if (what == 4) ++bad[column + 3];
        std::memcpy(&bad[column + 4], &base, 8);
        for (uint32_t r = 0; r < block.rows; ++r) {
          const int offset = static_cast<uint8_t>(bad[column + 12 + r]);
          bad[column + 12 + r] = static_cast<char>(what == 3 ? offset + shift : offset * 10);
        }
      }
      if (bad == good) continue;
      ColumnBlock decoded;
      if (!DecodeColumnBlock(bad, types, &decoded).ok()) {
        ++refused;
        continue;
      }
      ++accepted;
      ColumnBlock again;
      again.Reset(1);
      again.rows = decoded.rows;
      again.subjects = decoded.subjects;
      again.columns[0].doubles = decoded.columns[0].doubles;
      ASSERT_EQ(EncodeColumnBlock(again, types), bad) << "trial " << trial;
    }
  }
  // Not vacuous: a middle value's offset changed within the least and the
  // greatest leaves a canonical block with the same zone map, and that is
  // accepted; most mutations are refused.
  std::cout << accepted << " mutations accepted, " << refused << " refused\n";
  EXPECT_GT(refused, 10000);
  EXPECT_GT(accepted, 100);
}

// Stores written by builds before narrow columns (format 2) read the same.
TEST(ColumnBlockTest, FullWidthBlocksOfFormatTwoAreStillRead) {
  const std::vector<StoredType> types = {StoredType::kInt64, StoredType::kCategory,
                                         StoredType::kBool};
  ColumnBlock block;
  block.Reset(3);
  block.rows = 9;
  for (uint32_t r = 0; r < block.rows; ++r) {
    block.subjects.push_back(r);
    block.columns[0].ints.push_back(2015 + r);
    block.columns[1].ints.push_back(r % 3);
    block.columns[2].ints.push_back(r % 2);
  }
  const std::string old = EncodeColumnBlockInFormat(block, types, kBlockFormatFullWidth);
  EXPECT_EQ(old[0], static_cast<char>(kBlockFormatFullWidth));
  ColumnBlock decoded;
  ASSERT_OK(DecodeColumnBlock(old, types, &decoded));
  for (size_t c = 0; c < types.size(); ++c)
    EXPECT_EQ(decoded.columns[c].ints, block.columns[c].ints);
  ZoneMap zones;
  ASSERT_OK(DecodeZoneMap(old, types, &zones));
  EXPECT_TRUE(zones.present);
  EXPECT_EQ(zones.columns[0].max_int, 2023);
  // Rewritten (a tail block filled, an erasure) it takes format 3, smaller.
  const std::string now = EncodeColumnBlock(decoded, types);
  EXPECT_EQ(now[0], static_cast<char>(kBlockFormat));
  EXPECT_LT(now.size(), old.size());
}

}  // namespace
}  // namespace fedshare::storage
