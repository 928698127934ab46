#include "node/storage/column_block.h"

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

}  // namespace
}  // namespace fedshare::storage
