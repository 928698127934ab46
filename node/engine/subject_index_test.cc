#include "node/engine/subject_index.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

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

// Batches of several sizes (one, under a group, one and a half groups, a
// whole block) from an empty index, so the table grows inside batches; ids
// repeat within a batch and come back from earlier batches.
TEST(SubjectIndexTest, FindOrInsertBatchGivesWhatOneAtATimeGives) {
  SubjectIndex one_by_one;
  SubjectIndex batched;
  std::vector<std::string> ids;
  for (uint32_t i = 0; i < 60000; ++i) {
    const uint32_t n = i % 5 == 4 ? i / 3 : i % 7 == 6 ? i - 1 : i;  // earlier ids, a neighbour's
    ids.push_back(absl::StrCat("S", n, std::string(n % 13, 'z')));
  }
  ids.insert(ids.begin() + 10, 5, ids[9]);  // a run of one id in the first batch
  const size_t sizes[] = {1, 2, 31, 32, 33, 48, 100, 4096, 7};
  size_t pos = 0;
  uint32_t next_one = 0;
  uint32_t next_batched = 0;
  for (size_t b = 0; pos < ids.size(); ++b) {
    const size_t n = std::min(sizes[b % std::size(sizes)], ids.size() - pos);
    std::vector<absl::string_view> views(ids.begin() + pos, ids.begin() + pos + n);
    std::vector<uint32_t> hashes;
    for (absl::string_view id : views) hashes.push_back(SubjectIndex::Hash(id));
    std::vector<uint32_t> ordinals(n, 12345);
    std::unique_ptr<bool[]> inserted(new bool[n]);
    const size_t added = batched.FindOrInsertBatch(views.data(), hashes.data(), n, next_batched,
                                                   ordinals.data(), inserted.get());
    next_batched += static_cast<uint32_t>(added);
    size_t added_one = 0;
    for (size_t i = 0; i < n; ++i) {
      bool one_inserted = false;
      const uint32_t ordinal = one_by_one.FindOrInsert(views[i], hashes[i], next_one, &one_inserted);
      if (one_inserted) ++next_one, ++added_one;
      ASSERT_EQ(ordinals[i], ordinal) << views[i] << " at " << pos + i;
      ASSERT_EQ(inserted[i], one_inserted) << views[i] << " at " << pos + i;
    }
    ASSERT_EQ(added, added_one);
    pos += n;
  }
  EXPECT_EQ(batched.size(), one_by_one.size());
  EXPECT_GT(batched.size(), 30000u);
  std::map<std::string, uint32_t> expected;
  for (const std::string& id : ids) expected[id] = *one_by_one.Find(id);
  ExpectSame(batched, expected, 2000);
  // Entries a batch added roll back like inserted ones.
  const SubjectIndex::Mark mark = batched.mark();
  const absl::string_view more[] = {"new-a", ids[0], "new-b", "new-a"};
  const uint32_t more_hashes[] = {SubjectIndex::Hash(more[0]), SubjectIndex::Hash(more[1]),
                                  SubjectIndex::Hash(more[2]), SubjectIndex::Hash(more[3])};
  uint32_t ordinals[4];
  bool inserted[4];
  EXPECT_EQ(batched.FindOrInsertBatch(more, more_hashes, 4, 90000, ordinals, inserted), 2u);
  EXPECT_THAT(ordinals, ::testing::ElementsAre(90000u, expected[ids[0]], 90001u, 90000u));
  EXPECT_THAT(inserted, ::testing::ElementsAre(true, false, true, false));
  batched.RollbackTo(mark);
  ExpectSame(batched, expected, 0);
  EXPECT_EQ(batched.Find("new-a"), std::nullopt);
}

}  // namespace
}  // namespace fedshare::engine
