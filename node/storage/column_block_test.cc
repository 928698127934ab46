#include "node/storage/column_block.h"

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
    block.columns[0].doubles.push_back(r + 0.5);
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
  EXPECT_EQ(decoded.columns[0].doubles[5], 5.5);
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
  const std::string good = EncodeColumnBlock(block, types);
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
  EXPECT_THAT(corrupt(14, "\x01"), data_loss) << "reserved column byte";
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
  std::string old = EncodeColumnBlock(block, types);
  old.resize(old.size() - 2 * 24);
  old[0] = static_cast<char>(kBlockFormatNoZoneMap);
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

}  // namespace
}  // namespace fedshare::storage
