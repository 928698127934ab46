#include "policy/consent.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
absl::Time Day(int n) { return kT0 + absl::Hours(24 * n); }

PurposeTree Tree() {
  google::protobuf::RepeatedPtrField<v1::Purpose> list;
  auto add = [&](const char* id, const char* parent) {
    v1::Purpose* p = list.Add();
    p->set_id(id);
    p->set_parent(parent);
  };
  add("research", "");
  add("program-evaluation", "research");
  add("outcome-study", "program-evaluation");
  add("marketing", "");
  return *PurposeTree::Create(list);
}

ConsentEvent Event(const std::string& purpose, ConsentEventType type, absl::Time time,
                   absl::Time valid_until = absl::InfiniteFuture(),
                   std::vector<std::string> scope = {}) {
  ConsentEvent e;
  e.purpose = purpose;
  e.type = type;
  e.time = time;
  e.valid_until = valid_until;
  e.scope = std::move(scope);
  return e;
}

constexpr auto kGiven = ConsentEventType::kGiven;
constexpr auto kRenewed = ConsentEventType::kRenewed;
constexpr auto kWithdrawn = ConsentEventType::kWithdrawn;
constexpr auto kRefused = ConsentEventType::kRefused;
constexpr auto kExpired = ConsentEventType::kExpired;
constexpr auto kRevoked = ConsentEventType::kRevoked;
constexpr auto kInvalidated = ConsentEventType::kInvalidated;

class ConsentTest : public ::testing::Test {
 protected:
  bool Counts(const std::vector<ConsentEvent>& events, absl::Time now = Day(10),
              const std::string& purpose = "program-evaluation",
              const std::string& asker = "foundation", v1::ConsentBasis basis = v1::OPT_IN) {
    return SubjectCounts(basis, tree_, events, ConsentQuestion{purpose, asker, now});
  }
  PurposeTree tree_ = Tree();
};

TEST_F(ConsentTest, GivenConsentCounts) {
  EXPECT_TRUE(Counts({Event("program-evaluation", kGiven, Day(1))}));
}

TEST_F(ConsentTest, NoEventsDoesNotCountUnderOptIn) { EXPECT_FALSE(Counts({})); }

TEST_F(ConsentTest, WithdrawalAfterGivenExcludes) {
  EXPECT_FALSE(Counts({Event("program-evaluation", kGiven, Day(1)),
                       Event("program-evaluation", kWithdrawn, Day(2))}));
}

TEST_F(ConsentTest, EventOrderInTheListDoesNotMatter) {
  EXPECT_FALSE(Counts({Event("program-evaluation", kWithdrawn, Day(2)),
                       Event("program-evaluation", kGiven, Day(1))}));
  EXPECT_TRUE(Counts({Event("program-evaluation", kRenewed, Day(3)),
                      Event("program-evaluation", kWithdrawn, Day(2))}));
}

TEST_F(ConsentTest, RenewalAfterWithdrawalCountsAgain) {
  EXPECT_TRUE(Counts({Event("program-evaluation", kGiven, Day(1)),
                      Event("program-evaluation", kWithdrawn, Day(2)),
                      Event("program-evaluation", kRenewed, Day(3))}));
  EXPECT_TRUE(Counts({Event("program-evaluation", kWithdrawn, Day(2)),
                      Event("program-evaluation", kGiven, Day(3))}));
}

TEST_F(ConsentTest, ExpiredValidityExcludes) {
  const auto given = Event("program-evaluation", kGiven, Day(1), /*valid_until=*/Day(5));
  EXPECT_TRUE(Counts({given}, Day(4)));
  EXPECT_FALSE(Counts({given}, Day(5)));  // valid_until is exclusive
  EXPECT_FALSE(Counts({given}, Day(6)));
}

TEST_F(ConsentTest, ExpiredEventExcludes) {
  EXPECT_FALSE(Counts({Event("program-evaluation", kGiven, Day(1)),
                       Event("program-evaluation", kExpired, Day(2))}));
}

TEST_F(ConsentTest, RefusalExcludes) {
  EXPECT_FALSE(Counts({Event("program-evaluation", kRefused, Day(1))}));
}

TEST_F(ConsentTest, TieInTimeNegativeWins) {
  EXPECT_FALSE(Counts({Event("program-evaluation", kGiven, Day(1)),
                       Event("program-evaluation", kWithdrawn, Day(1))}));
  EXPECT_FALSE(Counts({Event("program-evaluation", kWithdrawn, Day(1)),
                       Event("program-evaluation", kGiven, Day(1))}));
}

TEST_F(ConsentTest, EventsAfterNowAreIgnored) {
  EXPECT_TRUE(Counts({Event("program-evaluation", kGiven, Day(1)),
                      Event("program-evaluation", kWithdrawn, Day(11))},
                     Day(10)));
  EXPECT_FALSE(Counts({Event("program-evaluation", kGiven, Day(11))}, Day(10)));
  EXPECT_TRUE(Counts({Event("program-evaluation", kGiven, Day(10))}, Day(10)));
}

TEST_F(ConsentTest, ScopeListedOrgsOnly) {
  const auto scoped = Event("program-evaluation", kGiven, Day(1), absl::InfiniteFuture(),
                            {"foundation", "partner-b"});
  EXPECT_TRUE(Counts({scoped}, Day(10), "program-evaluation", "foundation"));
  EXPECT_TRUE(Counts({scoped}, Day(10), "program-evaluation", "partner-b"));
  EXPECT_FALSE(Counts({scoped}, Day(10), "program-evaluation", "partner-c"));
}

TEST_F(ConsentTest, EmptyScopeMeansAnyMember) {
  const auto any = Event("program-evaluation", kGiven, Day(1));
  EXPECT_TRUE(Counts({any}, Day(10), "program-evaluation", "anyone-at-all"));
}

TEST_F(ConsentTest, ConsentToParentCoversChild) {
  EXPECT_TRUE(Counts({Event("research", kGiven, Day(1))}, Day(10), "program-evaluation"));
  EXPECT_TRUE(Counts({Event("research", kGiven, Day(1))}, Day(10), "outcome-study"));
}

TEST_F(ConsentTest, ConsentToChildDoesNotCoverParent) {
  EXPECT_FALSE(Counts({Event("outcome-study", kGiven, Day(1))}, Day(10), "research"));
  EXPECT_FALSE(Counts({Event("program-evaluation", kGiven, Day(1))}, Day(10), "research"));
}

TEST_F(ConsentTest, ConsentToUnrelatedPurposeDoesNotCount) {
  EXPECT_FALSE(Counts({Event("marketing", kGiven, Day(1))}));
}

TEST_F(ConsentTest, NegativeOnAncestorExcludesEvenWithChildConsent) {
  EXPECT_FALSE(
      Counts({Event("research", kWithdrawn, Day(1)), Event("program-evaluation", kGiven, Day(2))}));
  EXPECT_FALSE(
      Counts({Event("program-evaluation", kGiven, Day(1)), Event("research", kRefused, Day(2))},
             Day(10), "outcome-study"));
}

TEST_F(ConsentTest, NegativeOnChildDoesNotAffectParentQuestion) {
  EXPECT_TRUE(
      Counts({Event("research", kGiven, Day(1)), Event("outcome-study", kWithdrawn, Day(2))},
             Day(10), "program-evaluation"));
}

TEST_F(ConsentTest, ScopeOnOneCoveringPurposeMayBeSatisfiedByAnother) {
  EXPECT_TRUE(
      Counts({Event("research", kGiven, Day(1)),
              Event("program-evaluation", kGiven, Day(2), absl::InfiniteFuture(), {"partner-b"})},
             Day(10), "program-evaluation", "foundation"));
}

TEST_F(ConsentTest, UnknownPurposeCountsNoOneUnlessNotPersonal) {
  const std::vector<ConsentEvent> events = {Event("research", kGiven, Day(1))};
  EXPECT_FALSE(Counts(events, Day(10), "no-such-purpose"));
  EXPECT_FALSE(Counts({}, Day(10), "no-such-purpose", "foundation", v1::OPT_OUT));
  EXPECT_TRUE(Counts({}, Day(10), "no-such-purpose", "foundation", v1::NOT_PERSONAL));
}

TEST_F(ConsentTest, OptOutCountsUnlessWithdrawnOrRefused) {
  EXPECT_TRUE(Counts({}, Day(10), "program-evaluation", "foundation", v1::OPT_OUT));
  EXPECT_FALSE(Counts({Event("research", kWithdrawn, Day(1))}, Day(10), "program-evaluation",
                      "foundation", v1::OPT_OUT));
  EXPECT_FALSE(Counts({Event("program-evaluation", kRefused, Day(1))}, Day(10),
                      "program-evaluation", "foundation", v1::OPT_OUT));
  // Scope and expiry of a positive event do not matter under OPT_OUT.
  EXPECT_TRUE(Counts({Event("program-evaluation", kGiven, Day(1), Day(2), {"other"})}, Day(10),
                     "program-evaluation", "foundation", v1::OPT_OUT));
  // An EXPIRED event is not an objection.
  EXPECT_TRUE(Counts({Event("program-evaluation", kExpired, Day(1))}, Day(10), "program-evaluation",
                     "foundation", v1::OPT_OUT));
  // Renewed after a withdrawal: counts again.
  EXPECT_TRUE(Counts({Event("program-evaluation", kWithdrawn, Day(1)),
                      Event("program-evaluation", kRenewed, Day(2))},
                     Day(10), "program-evaluation", "foundation", v1::OPT_OUT));
}

TEST_F(ConsentTest, RevokedAndInvalidatedEndAConsent) {
  for (auto ending : {kRevoked, kInvalidated}) {
    SCOPED_TRACE(ConsentEventTypeName(ending));
    EXPECT_FALSE(Counts({Event("program-evaluation", kGiven, Day(1)),
                         Event("program-evaluation", ending, Day(2))}));
    // A broader purpose's ending wins too.
    EXPECT_FALSE(
        Counts({Event("program-evaluation", kGiven, Day(1)), Event("research", ending, Day(2))}));
    // Given again later: counts again.
    EXPECT_TRUE(Counts({Event("program-evaluation", ending, Day(1)),
                        Event("program-evaluation", kRenewed, Day(2))}));
    // Before the ending took effect, the consent held.
    EXPECT_TRUE(Counts(
        {Event("program-evaluation", kGiven, Day(1)), Event("program-evaluation", ending, Day(5))},
        Day(3)));
  }
}

TEST_F(ConsentTest, UnderOptOutRevokedObjectsAndInvalidatedDoesNot) {
  EXPECT_FALSE(Counts({Event("program-evaluation", kRevoked, Day(1))}, Day(10),
                      "program-evaluation", "foundation", v1::OPT_OUT));
  EXPECT_TRUE(Counts({Event("program-evaluation", kInvalidated, Day(1))}, Day(10),
                     "program-evaluation", "foundation", v1::OPT_OUT));
  // Tied in time, the objection outranks INVALIDATED (and EXPIRED).
  for (auto weak : {kInvalidated, kExpired}) {
    EXPECT_FALSE(Counts(
        {Event("program-evaluation", weak, Day(1)), Event("program-evaluation", kRevoked, Day(1))},
        Day(10), "program-evaluation", "foundation", v1::OPT_OUT));
    EXPECT_FALSE(Counts(
        {Event("program-evaluation", kRevoked, Day(1)), Event("program-evaluation", weak, Day(1))},
        Day(10), "program-evaluation", "foundation", v1::OPT_OUT));
  }
}

TEST_F(ConsentTest, NotPersonalCountsEveryone) {
  EXPECT_TRUE(Counts({Event("research", kRefused, Day(1))}, Day(10), "program-evaluation",
                     "foundation", v1::NOT_PERSONAL));
  EXPECT_TRUE(Counts({}, Day(10), "program-evaluation", "foundation", v1::NOT_PERSONAL));
}

TEST_F(ConsentTest, UnspecifiedBasisIsOptIn) {
  EXPECT_FALSE(
      Counts({}, Day(10), "program-evaluation", "foundation", v1::CONSENT_BASIS_UNSPECIFIED));
  EXPECT_TRUE(Counts({Event("research", kGiven, Day(1))}, Day(10), "program-evaluation",
                     "foundation", v1::CONSENT_BASIS_UNSPECIFIED));
  EXPECT_FALSE(Counts({Event("research", kGiven, Day(1), Day(2))}, Day(10), "program-evaluation",
                      "foundation", v1::CONSENT_BASIS_UNSPECIFIED));
}

TEST(ConsentParseTest, EventTypes) {
  ASSERT_OK_AND_ASSIGN(ConsentEventType t, ParseConsentEventType("Withdrawn"));
  EXPECT_EQ(t, kWithdrawn);
  for (auto type : {kGiven, kRenewed, kWithdrawn, kRefused, kExpired, kRevoked, kInvalidated}) {
    ASSERT_OK_AND_ASSIGN(ConsentEventType back, ParseConsentEventType(ConsentEventTypeName(type)));
    EXPECT_EQ(back, type);
  }
  EXPECT_THAT(ParseConsentEventType("cancelled"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("'cancelled' is unknown: use GIVEN, RENEWED, WITHDRAWN, REFUSED, "
                                 "EXPIRED, REVOKED or INVALIDATED")));
  // Stored on disk (docs/storage-format.md): never renumbered.
  EXPECT_EQ(static_cast<int>(kGiven), 1);
  EXPECT_EQ(static_cast<int>(kExpired), 5);
  EXPECT_EQ(static_cast<int>(kRevoked), 6);
  EXPECT_EQ(static_cast<int>(kInvalidated), 7);
}

TEST(ConsentParseTest, Scope) {
  ASSERT_OK_AND_ASSIGN(auto any, ParseConsentScope(""));
  EXPECT_TRUE(any.empty());
  ASSERT_OK_AND_ASSIGN(auto star, ParseConsentScope("*"));
  EXPECT_TRUE(star.empty());
  ASSERT_OK_AND_ASSIGN(auto list, ParseConsentScope("foundation; partner-a;foundation"));
  EXPECT_THAT(list, ElementsAre("foundation", "partner-a"));
  EXPECT_THAT(ParseConsentScope("foundation;Partner_A"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'Partner_A'")));
  EXPECT_THAT(ParseConsentScope("a;;b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid org id ''")));
}

TEST(ConsentBitmapTest, SetTestCount) {
  for (uint32_t size : {0u, 1u, 63u, 64u, 65u, 130u}) {
    ConsentBitmap none(size);
    EXPECT_EQ(none.size(), size);
    EXPECT_EQ(none.Count(), 0u) << size;
    ConsentBitmap all(size, true);
    EXPECT_EQ(all.Count(), size) << size;
    if (size > 0) {
      EXPECT_TRUE(all.Test(size - 1));
      all.Set(size - 1, false);
      EXPECT_FALSE(all.Test(size - 1));
      EXPECT_EQ(all.Count(), size - 1);
    }
    EXPECT_FALSE(all.Test(size));  // out of range reads as absent
  }
  ConsentBitmap b(100);
  b.Set(0, true);
  b.Set(63, true);
  b.Set(64, true);
  b.Set(99, true);
  b.Set(99, true);
  b.Set(100, true);  // out of range: ignored
  EXPECT_EQ(b.Count(), 4u);
  EXPECT_TRUE(b.Test(63));
  EXPECT_TRUE(b.Test(64));
  EXPECT_FALSE(b.Test(65));
  EXPECT_FALSE(b.Test(100));
  b.Set(63, false);
  EXPECT_EQ(b.Count(), 3u);
  EXPECT_FALSE(b.Test(63));
}

TEST(ConsentBitmapBuilderTest, UnaddedSubjectsFollowTheBasis) {
  const PurposeTree tree = Tree();
  const ConsentQuestion q{"program-evaluation", "foundation", Day(10)};
  struct Case {
    v1::ConsentBasis basis;
    uint64_t expected;
  };
  for (const Case& c : {Case{v1::OPT_IN, 0}, Case{v1::CONSENT_BASIS_UNSPECIFIED, 0},
                        Case{v1::OPT_OUT, 70}, Case{v1::NOT_PERSONAL, 70}}) {
    ConsentBitmapBuilder builder(c.basis, tree, q, 70);
    ConsentBitmap bitmap = std::move(builder).Finish();
    EXPECT_EQ(bitmap.size(), 70u);
    EXPECT_EQ(bitmap.Count(), c.expected) << c.basis;
  }
}

TEST(ConsentBitmapBuilderTest, AddedSubjectsAreDecidedAndOthersKeepTheDefault) {
  const PurposeTree tree = Tree();
  const ConsentQuestion q{"program-evaluation", "foundation", Day(10)};
  const std::vector<ConsentEvent> given = {Event("research", kGiven, Day(1))};
  const std::vector<ConsentEvent> withdrawn = {Event("research", kGiven, Day(1)),
                                               Event("research", kWithdrawn, Day(2))};

  ConsentBitmapBuilder in(v1::OPT_IN, tree, q, 70);
  in.AddSubject(3, given);
  in.AddSubject(66, given);
  in.AddSubject(5, withdrawn);
  ConsentBitmap in_bitmap = std::move(in).Finish();
  EXPECT_EQ(in_bitmap.Count(), 2u);
  EXPECT_TRUE(in_bitmap.Test(3));
  EXPECT_TRUE(in_bitmap.Test(66));
  EXPECT_FALSE(in_bitmap.Test(5));

  ConsentBitmapBuilder out(v1::OPT_OUT, tree, q, 70);
  out.AddSubject(5, withdrawn);
  out.AddSubject(3, given);
  ConsentBitmap out_bitmap = std::move(out).Finish();
  EXPECT_EQ(out_bitmap.Count(), 69u);
  EXPECT_FALSE(out_bitmap.Test(5));
  EXPECT_TRUE(out_bitmap.Test(3));
}

TEST(ConsentBitmapBuilderTest, ValidUntilIsEarliestFutureExpiry) {
  const PurposeTree tree = Tree();
  const ConsentQuestion q{"program-evaluation", "foundation", Day(10)};
  ConsentBitmapBuilder b(v1::OPT_IN, tree, q, 10);
  EXPECT_EQ(b.valid_until(), absl::InfiniteFuture());
  b.AddSubject(0, {{Event("research", kGiven, Day(1), Day(30))}});
  EXPECT_EQ(b.valid_until(), Day(30));
  b.AddSubject(1, {{Event("program-evaluation", kGiven, Day(1), Day(20))}});
  EXPECT_EQ(b.valid_until(), Day(20));
  // Already expired, a non-covering purpose, and a superseded grant do not count.
  b.AddSubject(2, {{Event("program-evaluation", kGiven, Day(1), Day(5))}});
  b.AddSubject(3, {{Event("marketing", kGiven, Day(1), Day(12))}});
  b.AddSubject(
      4, {{Event("research", kGiven, Day(1), Day(11)), Event("research", kWithdrawn, Day(2))}});
  EXPECT_EQ(b.valid_until(), Day(20));
  ConsentBitmap bitmap = std::move(b).Finish();
  EXPECT_EQ(bitmap.Count(), 2u);
}

TEST(ConsentBitmapBuilderTest, ValidUntilAlsoStopsAtFutureDatedEvents) {
  const PurposeTree tree = Tree();
  const ConsentQuestion q{"program-evaluation", "foundation", Day(10)};
  ConsentBitmapBuilder b(v1::OPT_OUT, tree, q, 2);
  b.AddSubject(0, {{Event("research", kGiven, Day(1), Day(12))}});
  EXPECT_EQ(b.valid_until(), absl::InfiniteFuture());  // expiry never matters under OPT_OUT
  b.AddSubject(1, {{Event("research", kWithdrawn, Day(15))}});
  EXPECT_EQ(b.valid_until(), Day(15));
  EXPECT_EQ(std::move(b).Finish().Count(), 2u);
}

}  // namespace
}  // namespace fedshare::policy
