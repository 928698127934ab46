#include "node/identity/spiffe.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::identity {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

TEST(SpiffeTest, ParsesNode) {
  ASSERT_OK_AND_ASSIGN(Identity id, ParseSpiffeId("spiffe://fed.example/org/acme-1/node"));
  EXPECT_EQ(id.spiffe_id, "spiffe://fed.example/org/acme-1/node");
  EXPECT_EQ(id.trust_domain, "fed.example");
  EXPECT_EQ(id.org_id, "acme-1");
  EXPECT_EQ(id.role, Role::kNode);
  EXPECT_EQ(id.name, "");
}

TEST(SpiffeTest, ParsesPeople) {
  ASSERT_OK_AND_ASSIGN(Identity op, ParseSpiffeId("spiffe://fed.example/org/acme/operator/bob"));
  EXPECT_EQ(op.role, Role::kOperator);
  EXPECT_EQ(op.name, "bob");
  ASSERT_OK_AND_ASSIGN(Identity an,
                       ParseSpiffeId("spiffe://fed.example/org/acme/analyst/a.li_ce-2"));
  EXPECT_EQ(an.role, Role::kAnalyst);
  EXPECT_EQ(an.name, "a.li_ce-2");
}

TEST(SpiffeTest, RefusesMalformedIds) {
  for (const char* bad : {
           "",
           "https://fed.example/org/acme/node",
           "SPIFFE://fed.example/org/acme/node",
           "spiffe://Fed.example/org/acme/node",
           "spiffe://fed.example:443/org/acme/node",
           "spiffe://user@fed.example/org/acme/node",
           "spiffe://fed.example",
           "spiffe://fed.example/",
           "spiffe://fed.example/org/acme",
           "spiffe://fed.example/org//node",
           "spiffe://fed.example/org/ACME/node",
           "spiffe://fed.example/org/acme_x/node",
           "spiffe://fed.example/org/acme/node/",
           "spiffe://fed.example/org/acme/node/x",
           "spiffe://fed.example/org/acme/analyst",
           "spiffe://fed.example/org/acme/analyst/",
           "spiffe://fed.example/org/acme/analyst/Alice",
           "spiffe://fed.example/org/acme/analyst/al%20ice",
           "spiffe://fed.example/org/acme/analyst/..",
           "spiffe://fed.example/org/acme/analyst/alice/x",
           "spiffe://fed.example/org/acme/analyst/alice?x=1",
           "spiffe://fed.example/org/acme/admin/alice",
           "spiffe://fed.example/team/acme/node",
       }) {
    EXPECT_THAT(ParseSpiffeId(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("")))
        << bad;
  }
  std::string with_nul("spiffe://fed.example/org/acme/node\0x", 36);
  EXPECT_FALSE(ParseSpiffeId(with_nul).ok());
  EXPECT_FALSE(ParseSpiffeId("spiffe://fed.example/org/" + std::string(64, 'a') + "/node").ok());
  EXPECT_OK(ParseSpiffeId("spiffe://fed.example/org/" + std::string(63, 'a') + "/node"));
}

TEST(SpiffeTest, ErrorSaysWhichPartIsWrong) {
  EXPECT_THAT(ParseSpiffeId("spiffe://fed.example/org/ACME/node"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("org_id 'ACME'")));
  EXPECT_THAT(ParseSpiffeId("spiffe://fed.example/org/acme/admin/x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown role 'admin'")));
}

TEST(SpiffeTest, MakeRoundTrips) {
  ASSERT_OK_AND_ASSIGN(std::string id, MakeSpiffeId("fed.example", "acme", Role::kAnalyst, "al"));
  EXPECT_EQ(id, "spiffe://fed.example/org/acme/analyst/al");
  ASSERT_OK_AND_ASSIGN(Identity parsed, ParseSpiffeId(id));
  EXPECT_EQ(parsed.name, "al");
}

TEST(SpiffeTest, MakeRequiresNameForPeopleOnly) {
  EXPECT_THAT(MakeSpiffeId("fed.example", "acme", Role::kOperator, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a name")));
  EXPECT_THAT(MakeSpiffeId("fed.example", "acme", Role::kNode, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("takes no name")));
}

TEST(SpiffeTest, RoleNamesRoundTrip) {
  for (Role r : {Role::kNode, Role::kOperator, Role::kAnalyst}) {
    ASSERT_OK_AND_ASSIGN(Role back, ParseRole(RoleName(r)));
    EXPECT_EQ(back, r);
  }
  EXPECT_FALSE(ParseRole("admin").ok());
}

}  // namespace
}  // namespace fedshare::identity
