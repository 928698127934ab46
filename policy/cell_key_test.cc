#include "policy/cell_key.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "policy/dp_random.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kSecret(32, 'n');

std::vector<uint32_t> Keys(const std::vector<std::string>& subjects, uint32_t table_size) {
  std::vector<uint32_t> keys;
  for (const std::string& s : subjects) {
    auto k = RecordKey(kSecret, s, table_size);
    EXPECT_OK(k.status());
    keys.push_back(*k);
  }
  return keys;
}

TEST(CellKeyTest, DefaultTableIsUnbiasedAndNeverReleasesOneOrTwo) {
  const PTable& table = DefaultPTable();
  EXPECT_EQ(table.table_size(), 256u);
  EXPECT_EQ(table.MaxAbsPerturbation(), 3);
  for (int64_t count = 0; count <= 50; ++count) {
    EXPECT_DOUBLE_EQ(table.Mean(count), 0) << count;
    for (uint32_t key = 0; key < table.table_size(); ++key) {
      const int64_t out = table.Perturb(count, key);
      EXPECT_TRUE(out == 0 || out >= 3) << count << " key " << key << " -> " << out;
      EXPECT_EQ(out == 0, count == 0 || table.Perturbation(count, key) == -count);
    }
  }
  EXPECT_DOUBLE_EQ(table.Variance(9), 0.875);
}

TEST(CellKeyTest, CellsWithTheSamePeopleGetTheSamePerturbation) {
  // Two different questions whose cells hold the same people (in another
  // order, reached through other filters) get the same cell key and noise.
  const std::vector<std::string> people = {"s-17", "s-3", "s-88", "s-41", "s-9", "s-120", "s-7"};
  std::vector<std::string> reordered = people;
  std::reverse(reordered.begin(), reordered.end());
  const uint32_t a = CellKey(Keys(people, 256), 256);
  const uint32_t b = CellKey(Keys(reordered, 256), 256);
  EXPECT_EQ(a, b);
  const PTable& table = DefaultPTable();
  EXPECT_EQ(table.Perturb(7, a), table.Perturb(7, b));
  // Another node secret keys the same people differently.
  auto other = RecordKey(std::string(32, 'o'), "s-17", 256);
  ASSERT_OK(other.status());
  EXPECT_NE(CellKey(Keys(people, 1u << 20), 1u << 20),
            CellKey({*other}, 1u << 20));  // sanity: keys depend on the secret
}

TEST(CellKeyTest, DroppingOnePersonDoesNotRevealTheRecord) {
  // The record-level differencing pair: a cell, and the same cell with a
  // filter that drops one person. Exact counts differ by exactly 1; with
  // perturbation the released difference is 1 only part of the time and
  // otherwise spread, so the pair does not reveal the dropped record.
  auto rng = AesCtrStream::ForTest("differencing");
  const PTable& table = DefaultPTable();
  constexpr int kTrials = 2000;
  int exactly_one = 0;
  std::vector<int> seen_differences(11, 0);
  for (int t = 0; t < kTrials; ++t) {
    const int n = 10 + static_cast<int>(*rng->UniformBelow(40));
    std::vector<std::string> people;
    for (int i = 0; i < n; ++i) people.push_back("t" + std::to_string(t) + "-" + std::to_string(i));
    const std::vector<uint32_t> keys = Keys(people, 256);
    const std::vector<uint32_t> without(keys.begin() + 1, keys.end());
    const int64_t diff =
        table.Perturb(n, CellKey(keys, 256)) - table.Perturb(n - 1, CellKey(without, 256));
    exactly_one += diff == 1;
    ++seen_differences[std::clamp<int64_t>(diff + 5, 0, 10)];
  }
  // With independent ±2 noise, P(diff == 1) = Σ p_i² for the row: 0.34375.
  EXPECT_LT(exactly_one, kTrials / 2);
  EXPECT_GT(exactly_one, kTrials / 5);
  int distinct = 0;
  for (int c : seen_differences) distinct += c > 0;
  EXPECT_GE(distinct, 7);  // differences from -3 to 5
}

TEST(CellKeyTest, RecordKeysAreStableAndSpread) {
  EXPECT_EQ(Keys({"alice"}, 256), Keys({"alice"}, 256));
  std::vector<int> buckets(4, 0);
  for (int i = 0; i < 4000; ++i) ++buckets[Keys({"p" + std::to_string(i)}, 256)[0] / 64];
  for (int b : buckets) EXPECT_NEAR(b, 1000, 150);
  EXPECT_THAT(RecordKey("short", "alice", 256),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("32 bytes")));
}

TEST(CellKeyTest, BadTablesAreRefusedWithTheLine) {
  EXPECT_THAT(PTable::Parse("fedshare-ptable 2\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1")));
  EXPECT_THAT(PTable::Parse("fedshare-ptable 1\ntable_size 4\n0: 0=4\n1: -1=2 0=1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 4: row covers 3 keys")));
  EXPECT_THAT(PTable::Parse("fedshare-ptable 1\ntable_size 4\n0: 0=4\n1: -2=4\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 4: perturbation -2")));
  EXPECT_THAT(PTable::Parse("fedshare-ptable 1\ntable_size 4\n0: 0=4\n2: 0=4\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected row '1")));
  ASSERT_OK_AND_ASSIGN(PTable t, PTable::Parse("# comment\nfedshare-ptable 1\ntable_size 4\n\n"
                                               "0: 0=4\n1: -1=1 0=2 1=1\n"));
  EXPECT_EQ(t.Perturbation(1, 0), -1);
  EXPECT_EQ(t.Perturbation(1, 1), 0);
  EXPECT_EQ(t.Perturbation(1, 2), 0);
  EXPECT_EQ(t.Perturbation(9, 3), 1);  // larger counts use the last row
}

}  // namespace
}  // namespace fedshare::policy
