#include "node/engine/subject_index.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedshare::engine {
namespace {

using ::testing::Optional;

// Checks `index` against `expected` (id -> ordinal), and that ids it lacks
// are not found.
void ExpectSame(const SubjectIndex& index, const std::map<std::string, uint32_t>& expected,
                int probes) {
  EXPECT_EQ(index.size(), expected.size());
  for (const auto& [id, ordinal] : expected) EXPECT_THAT(index.Find(id), Optional(ordinal)) << id;
  for (int i = 0; i < probes; ++i) {
    const std::string id = absl::StrCat("absent-", i);
    EXPECT_EQ(index.Find(id), std::nullopt) << id;
  }
}

TEST(SubjectIndexTest, FindsInsertedIdsThroughGrowthAndErasure) {
  SubjectIndex index;
  std::map<std::string, uint32_t> expected;
  for (uint32_t i = 0; i < 20000; ++i) {
    // Ids of several lengths, the empty one included, and one longer than a
    // chunk of the arena.
    std::string id = i == 0 ? "" : absl::StrCat("P", i, std::string(i % 40, 'x'));
    if (i == 7) id = std::string((size_t{4} << 20) + 10, 'L');
    index.Insert(id, i);
    expected[id] = i;
  }
  ExpectSame(index, expected, 2000);
  for (uint32_t i = 0; i < 20000; i += 3) {
    const std::string id = i == 0 ? "" : absl::StrCat("P", i, std::string(i % 40, 'x'));
    if (i == 7) continue;
    index.Erase(id);
    expected.erase(id);
  }
  index.Erase("never inserted");
  ExpectSame(index, expected, 2000);
}

TEST(SubjectIndexTest, RollbackRemovesExactlyTheEntriesSinceTheMark) {
  SubjectIndex index;
  std::map<std::string, uint32_t> expected;
  for (uint32_t i = 0; i < 1000; ++i) {
    index.Insert(absl::StrCat("old", i), i);
    expected[absl::StrCat("old", i)] = i;
  }
  index.Erase("old5");
  expected.erase("old5");
  const size_t held = index.held_bytes();
  const SubjectIndex::Mark mark = index.mark();
  // Enough new ids to grow the table and add arena chunks.
  for (uint32_t i = 0; i < 300000; ++i) index.Insert(absl::StrCat("new", i), 1000 + i);
  const std::vector<SubjectIndex::Ref> added = index.EntriesSince(mark);
  ASSERT_EQ(added.size(), 300000u);
  EXPECT_EQ(index.id(added[0]), "new0");
  EXPECT_EQ(index.ordinal(added.back()), 1000u + 299999u);
  EXPECT_GT(index.held_bytes(), held);
  index.RollbackTo(mark);
  ExpectSame(index, expected, 0);
  EXPECT_EQ(index.Find("new0"), std::nullopt);
  EXPECT_EQ(index.Find("new299999"), std::nullopt);
  EXPECT_TRUE(index.EntriesSince(mark).empty());
  // The index goes on as before the mark.
  index.Insert("after", 1000);
  EXPECT_THAT(index.Find("after"), Optional(1000u));
}

TEST(SubjectIndexTest, FindOrInsertFindsOrAddsWithOneProbe) {
  SubjectIndex index;
  std::map<std::string, uint32_t> expected;
  for (uint32_t i = 0; i < 50000; ++i) {
    // Every third id is one seen before, as in a file with repeated subjects.
    const std::string id = absl::StrCat("P", i % 3 == 2 ? i / 2 : i);
    const uint32_t hash = SubjectIndex::Hash(id);
    index.Prefetch(hash);
    bool inserted = false;
    const uint32_t ordinal =
        index.FindOrInsert(id, hash, static_cast<uint32_t>(expected.size()), &inserted);
    auto [it, is_new] = expected.emplace(id, static_cast<uint32_t>(expected.size()));
    EXPECT_EQ(inserted, is_new) << id;
    EXPECT_EQ(ordinal, it->second) << id;
  }
  ExpectSame(index, expected, 2000);
  // Entries it added roll back like inserted ones.
  const SubjectIndex::Mark mark = index.mark();
  bool inserted = false;
  EXPECT_EQ(index.FindOrInsert("new", SubjectIndex::Hash("new"), 99999, &inserted), 99999u);
  EXPECT_TRUE(inserted);
  index.RollbackTo(mark);
  ExpectSame(index, expected, 0);
  EXPECT_EQ(index.Find("new"), std::nullopt);
}

}  // namespace
}  // namespace fedshare::engine
