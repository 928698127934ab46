#include "policy/purpose_tree.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Purposes = google::protobuf::RepeatedPtrField<v1::Purpose>;

Purposes Parse(const std::vector<std::pair<std::string, std::string>>& id_parent) {
  Purposes out;
  for (const auto& [id, parent] : id_parent) {
    v1::Purpose* p = out.Add();
    p->set_id(id);
    p->set_parent(parent);
  }
  return out;
}

TEST(PurposeTreeTest, CoversItselfAndDescendantsOnly) {
  ASSERT_OK_AND_ASSIGN(PurposeTree tree,
                       PurposeTree::Create(Parse({{"program-evaluation", "research"},
                                                  {"research", ""},
                                                  {"outcome-study", "program-evaluation"},
                                                  {"marketing", ""}})));
  EXPECT_TRUE(tree.Covers("research", "research"));
  EXPECT_TRUE(tree.Covers("research", "program-evaluation"));
  EXPECT_TRUE(tree.Covers("research", "outcome-study"));
  EXPECT_FALSE(tree.Covers("program-evaluation", "research"));
  EXPECT_FALSE(tree.Covers("marketing", "outcome-study"));
  EXPECT_FALSE(tree.Covers("research", "unknown"));
  EXPECT_FALSE(tree.Covers("unknown", "research"));
  EXPECT_TRUE(tree.Contains("marketing"));
  EXPECT_FALSE(tree.Contains("sales"));
  EXPECT_EQ(tree.purposes().size(), 4u);
}

TEST(PurposeTreeTest, CoveringPurposesListsAncestorsInOrder) {
  ASSERT_OK_AND_ASSIGN(PurposeTree tree,
                       PurposeTree::Create(Parse({{"research", ""},
                                                  {"program-evaluation", "research"},
                                                  {"outcome-study", "program-evaluation"}})));
  EXPECT_THAT(tree.CoveringPurposes("outcome-study"),
              ElementsAre("outcome-study", "program-evaluation", "research"));
  EXPECT_THAT(tree.CoveringPurposes("research"), ElementsAre("research"));
  EXPECT_TRUE(tree.CoveringPurposes("unknown").empty());
}

TEST(PurposeTreeTest, RefusesUnknownParent) {
  EXPECT_THAT(PurposeTree::Create(Parse({{"a", "missing"}})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("purpose 'a' has unknown parent 'missing'")));
}

TEST(PurposeTreeTest, RefusesCycle) {
  EXPECT_THAT(PurposeTree::Create(Parse({{"root", ""}, {"a", "b"}, {"b", "c"}, {"c", "a"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
  EXPECT_THAT(PurposeTree::Create(Parse({{"self", "self"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("purpose 'self'")));
}

TEST(PurposeTreeTest, CycleNamesAMemberNotAPurposeLeadingIntoIt) {
  EXPECT_THAT(PurposeTree::Create(Parse({{"leaf", "a"}, {"a", "b"}, {"b", "a"}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("purpose 'a'")));
}

TEST(PurposeTreeTest, RefusesDuplicate) {
  EXPECT_THAT(PurposeTree::Create(Parse({{"research", ""}, {"research", ""}})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("purpose 'research' is declared twice")));
}

TEST(PurposeTreeTest, RefusesBadId) {
  EXPECT_THAT(PurposeTree::Create(Parse({{"Research", ""}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'Research'")));
  EXPECT_THAT(PurposeTree::Create(Parse({{"", ""}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid")));
  EXPECT_THAT(PurposeTree::Create(Parse({{std::string(64, 'a'), ""}})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid")));
  EXPECT_OK(PurposeTree::Create(Parse({{std::string(63, 'a'), ""}})));
}

TEST(PurposeTreeTest, EmptyTreeCoversNothing) {
  PurposeTree tree;
  EXPECT_FALSE(tree.Covers("a", "a"));
  EXPECT_TRUE(tree.CoveringPurposes("a").empty());
}

}  // namespace
}  // namespace fedshare::policy
