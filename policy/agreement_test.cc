#include "policy/agreement.h"

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "policy/dp_settings.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

template <typename T>
T Parse(const std::string& text) {
  T msg;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &msg)) << text;
  return msg;
}

const absl::Time kNow = absl::FromUnixSeconds(1'767'225'600);  // 2026-01-01T00:00:00Z

PurposeTree Tree() {
  google::protobuf::RepeatedPtrField<v1::Purpose> list;
  *list.Add() = Parse<v1::Purpose>(R"pb(id: "research")pb");
  *list.Add() = Parse<v1::Purpose>(R"pb(id: "program-evaluation" parent: "research")pb");
  *list.Add() = Parse<v1::Purpose>(R"pb(id: "marketing")pb");
  return *PurposeTree::Create(list);
}

std::vector<v1::DatasetSchema> Datasets() {
  return {Parse<v1::DatasetSchema>(R"pb(
            name: "program_outcomes"
            fields { name: "subject_id" type: CATEGORY role: SUBJECT }
            fields { name: "program" type: CATEGORY role: DIMENSION }
            fields { name: "cohort_year" type: INT64 role: DIMENSION }
            fields { name: "zip" type: CATEGORY role: DIMENSION }
            fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
            fields { name: "notes" type: CATEGORY role: PRIVATE }
          )pb"),
          Parse<v1::DatasetSchema>(R"pb(
            name: "donations"
            fields { name: "donor" type: INT64 role: SUBJECT }
            fields { name: "amount" type: DOUBLE role: MEASURE lower: 0 upper: 1000 }
          )pb")};
}

constexpr char kPermit[] = R"pb(
  id: "eval-2026"
  effect: PERMIT
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "research"
  aggregates: [ COUNT, AVG, SUM ]
  filter_fields: [ "cohort_year", "zip" ]
  group_fields: [ "program" ]
  measure_fields: [ "outcome_score" ]
  valid_from: "2025-01-01"
  valid_until: "2027-01-01"
)pb";

v1::AggregateQuery Question() {
  return Parse<v1::AggregateQuery>(R"pb(
    query_id: "q1"
    dataset: "program_outcomes"
    purpose: "program-evaluation"
    where {
      field: "cohort_year"
      op: GE
      values { int_value: 2020 }
    }
    group_by: "program"
    aggregates { kind: COUNT }
    aggregates { kind: AVG field: "outcome_score" }
  )pb");
}

absl::StatusOr<AgreementSet> Make(const std::vector<std::string>& texts) {
  std::vector<v1::Agreement> list;
  for (const std::string& t : texts) list.push_back(Parse<v1::Agreement>(t));
  return AgreementSet::Create(list, Tree(), Datasets());
}

std::string With(const std::string& base, const std::string& extra) { return base + extra; }

TEST(AgreementTest, PermitAllowsAQuestionWithinIt) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit}));
  const Decision d = set.Decide("foundation", Question(), kNow);
  EXPECT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.agreement_id, "eval-2026");
  EXPECT_EQ(d.rule, kRulePermit);
  ASSERT_TRUE(d.agreement.has_value());
  EXPECT_EQ(d.agreement->id(), "eval-2026");
  EXPECT_OK(d.ToStatus());
}

TEST(AgreementTest, DefaultDeny) {
  ASSERT_OK_AND_ASSIGN(AgreementSet none, Make({}));
  Decision d = none.Decide("foundation", Question(), kNow);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, kRuleDefaultDeny);
  EXPECT_TRUE(d.agreement_id.empty());
  EXPECT_THAT(d.ToStatus(), StatusIs(absl::StatusCode::kPermissionDenied,
                                     HasSubstr("refused by rule 'default-deny': ")));

  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit}));
  d = set.Decide("partner-x", Question(), kNow);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, kRuleDefaultDeny);
  v1::AggregateQuery other = Question();
  other.set_dataset("donations");
  EXPECT_EQ(set.Decide("foundation", other, kNow).rule, kRuleDefaultDeny);
  EXPECT_FALSE(AgreementSet().Decide("foundation", Question(), kNow).allowed);
  EXPECT_EQ(set.Decide("", Question(), kNow).rule, kRuleDefaultDeny);
}

TEST(AgreementTest, ForbidOverridesPermit) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit, R"pb(
                                                 id: "no-zip"
                                                 effect: FORBID
                                                 peers: "*"
                                                 dataset: "program_outcomes"
                                                 filter_fields: "zip"
                                               )pb"}));
  EXPECT_TRUE(set.Decide("foundation", Question(), kNow).allowed);
  v1::AggregateQuery q = Question();
  auto* p = q.add_where();
  p->set_field("zip");
  p->set_op(v1::Predicate::EQ);
  p->add_values()->set_string_value("12345");
  const Decision d = set.Decide("foundation", q, kNow);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.agreement_id, "no-zip");
  EXPECT_EQ(d.rule, kRuleForbid);
  EXPECT_THAT(d.ToStatus(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("refused by agreement 'no-zip' rule 'forbid': "),
                             HasSubstr("filtering on 'zip'"))));
}

TEST(AgreementTest, ForbidByPurposeCoversChildPurposes) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit, R"pb(
                                                 id: "no-research-for-foundation"
                                                 effect: FORBID
                                                 peers: "foundation"
                                                 dataset: "program_outcomes"
                                                 purposes: "research"
                                               )pb"}));
  const Decision d = set.Decide("foundation", Question(), kNow);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, kRuleForbid);
}

TEST(AgreementTest, ForbidOutsideItsValidityDoesNotApply) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit, R"pb(
                                                 id: "old-ban"
                                                 effect: FORBID
                                                 peers: "foundation"
                                                 dataset: "program_outcomes"
                                                 valid_until: "2025-06-01"
                                               )pb"}));
  EXPECT_TRUE(set.Decide("foundation", Question(), kNow).allowed);
  EXPECT_FALSE(set.Decide("foundation", Question(), kNow - absl::Hours(24 * 300)).allowed);
}

TEST(AgreementTest, ForbidWhoseConditionsDoNotMatchDoesNotApply) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit, R"pb(
                                                 id: "no-sums"
                                                 effect: FORBID
                                                 peers: "*"
                                                 dataset: "program_outcomes"
                                                 aggregates: SUM
                                                 purposes: "marketing"
                                               )pb"}));
  v1::AggregateQuery q = Question();
  q.mutable_aggregates(1)->set_kind(v1::SUM);
  // Uses SUM, but the purpose is not marketing: both conditions must hold.
  EXPECT_TRUE(set.Decide("foundation", q, kNow).allowed);
}

TEST(AgreementTest, PurposeSubsumption) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit}));
  v1::AggregateQuery q = Question();
  q.set_purpose("research");
  EXPECT_TRUE(set.Decide("foundation", q, kNow).allowed);

  ASSERT_OK_AND_ASSIGN(AgreementSet child_only, Make({R"pb(
                                                        id: "narrow"
                                                        peers: "foundation"
                                                        dataset: "program_outcomes"
                                                        purposes: "program-evaluation"
                                                        aggregates: COUNT
                                                      )pb"}));
  v1::AggregateQuery count;
  count.set_dataset("program_outcomes");
  count.set_purpose("research");
  count.add_aggregates()->set_kind(v1::COUNT);
  const Decision d = child_only.Decide("foundation", count, kNow);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, kRulePurpose);
  EXPECT_THAT(d.ToStatus(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("refused by agreement 'narrow' rule 'purpose'"),
                             HasSubstr("purpose 'research'"))));
  count.set_purpose("program-evaluation");
  EXPECT_TRUE(child_only.Decide("foundation", count, kNow).allowed);
  count.set_purpose("marketing");
  EXPECT_EQ(child_only.Decide("foundation", count, kNow).rule, kRulePurpose);
  count.set_purpose("unknown-purpose");
  EXPECT_EQ(child_only.Decide("foundation", count, kNow).rule, kRulePurpose);
}

struct RefusalCase {
  std::string name;
  std::function<void(v1::AggregateQuery&)> change;
  absl::string_view rule;
  std::string detail;
};

TEST(AgreementTest, PartsOutsideThePermitAreRefusedNamingRuleAndAgreement) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit}));
  const std::vector<RefusalCase> cases = {
      {"aggregate", [](v1::AggregateQuery& q) { q.add_aggregates()->set_kind(v1::VARIANCE); },
       kRuleAggregate, "aggregate VARIANCE is not allowed"},
      {"filter",
       [](v1::AggregateQuery& q) {
         auto* p = q.add_where();
         p->set_field("program");
         p->set_op(v1::Predicate::EQ);
         p->add_values()->set_string_value("a");
       },
       kRuleFilterField, "filtering on 'program'"},
      {"group", [](v1::AggregateQuery& q) { q.add_group_by("zip"); }, kRuleGroupField,
       "grouping by 'zip'"},
      {"measure",
       [](v1::AggregateQuery& q) {
         auto* a = q.add_aggregates();
         a->set_kind(v1::SUM);
         a->set_field("cohort_year");
       },
       kRuleMeasureField, "measuring 'cohort_year'"},
  };
  for (const RefusalCase& c : cases) {
    v1::AggregateQuery q = Question();
    c.change(q);
    const Decision d = set.Decide("foundation", q, kNow);
    EXPECT_FALSE(d.allowed) << c.name;
    EXPECT_EQ(d.rule, c.rule) << c.name;
    EXPECT_EQ(d.agreement_id, "eval-2026") << c.name;
    EXPECT_THAT(
        d.ToStatus(),
        StatusIs(
            absl::StatusCode::kPermissionDenied,
            AllOf(HasSubstr(absl::StrCat("refused by agreement 'eval-2026' rule '", c.rule, "': ")),
                  HasSubstr(c.detail))))
        << c.name;
  }
}

TEST(AgreementTest, Validity) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit}));
  const absl::Time before = absl::FromUnixSeconds(1'735'689'600) - absl::Seconds(1);  // 2025-01-01
  const absl::Time expiry = absl::FromUnixSeconds(1'798'761'600);                     // 2027-01-01
  Decision d = set.Decide("foundation", Question(), before);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, kRuleValidity);
  EXPECT_THAT(d.reason, HasSubstr("in force only from 2025-01-01T00:00:00Z"));
  EXPECT_TRUE(set.Decide("foundation", Question(), before + absl::Seconds(1)).allowed);
  EXPECT_TRUE(set.Decide("foundation", Question(), expiry - absl::Seconds(1)).allowed);
  d = set.Decide("foundation", Question(), expiry);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, kRuleValidity);
  EXPECT_THAT(d.ToStatus(), StatusIs(absl::StatusCode::kPermissionDenied,
                                     AllOf(HasSubstr("agreement 'eval-2026' rule 'validity'"),
                                           HasSubstr("expired at 2027-01-01T00:00:00Z"))));
  EXPECT_EQ(set.ForPeer("foundation", kNow).size(), 1u);
  EXPECT_TRUE(set.ForPeer("foundation", expiry).empty());
}

TEST(AgreementTest, ClosestPermitIsReported) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set,
                       Make({With(R"pb(id: "expired" valid_until: "2025-06-01")pb",
                                  R"pb(
                                    peers: "foundation"
                                    dataset: "program_outcomes"
                                    purposes: "research"
                                    aggregates: [ COUNT, AVG ]
                                    group_fields: "program"
                                    measure_fields: "outcome_score"
                                    filter_fields: "cohort_year"
                                  )pb"),
                             R"pb(
                               id: "counts-only"
                               peers: "foundation"
                               dataset: "program_outcomes"
                               purposes: "research"
                               aggregates: COUNT
                             )pb"}));
  const Decision d = set.Decide("foundation", Question(), kNow);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.agreement_id, "counts-only");
  EXPECT_EQ(d.rule, kRuleAggregate);
}

TEST(AgreementTest, WildcardPeer) {
  std::string text = kPermit;
  text.replace(text.find("peers: \"foundation\""), 19, "peers: \"*\"");
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({text}));
  EXPECT_TRUE(set.Decide("foundation", Question(), kNow).allowed);
  EXPECT_TRUE(set.Decide("partner-b", Question(), kNow).allowed);
  EXPECT_EQ(set.ForPeer("partner-b", kNow).size(), 1u);
}

TEST(AgreementTest, DifferentialPrivacyModeAllowsTheQuestion) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set,
                       Make({With(kPermit, "disclosure { mode: DIFFERENTIAL_PRIVACY }")}));
  const Decision d = set.Decide("foundation", Question(), kNow);
  EXPECT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.rule, kRulePermit);
}

TEST(AgreementTest, CellKeyPerturbationIsForExactModeWithAParsablePTable) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set,
                       Make({With(kPermit, "disclosure { perturbation: CELL_KEY }")}));
  EXPECT_TRUE(set.Decide("foundation", Question(), kNow).allowed);
  EXPECT_TRUE(EffectiveDisclosure(set.agreements()[0].disclosure()).cell_key);
  EXPECT_THAT(
      Make({With(kPermit, "disclosure { mode: DIFFERENTIAL_PRIVACY perturbation: CELL_KEY }")}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("for mode EXACT only")));
  EXPECT_THAT(
      Make({With(kPermit,
                 "disclosure { perturbation: CELL_KEY ptable: \"fedshare-ptable 1\\ntable_size "
                 "4\\n0: 0=3\\n\" }")}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disclosure.ptable: p-table line 3")));
  EXPECT_THAT(Make({With(kPermit, "disclosure { ptable: \"fedshare-ptable 1\" }")}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not CELL_KEY")));
}

TEST(AgreementTest, SecureSumOnlyIsRefusedForDirectRelease) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set,
                       Make({With(kPermit, "release: SECURE_SUM_ONLY min_partners: 3")}));
  const Decision d = set.Decide("foundation", Question(), kNow);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, kRuleRelease);
}

TEST(AgreementTest, FirstAllowingPermitDecides) {
  std::string second = kPermit;
  second.replace(second.find("eval-2026"), 9, "eval-copy");
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({R"pb(
                                                 id: "narrow"
                                                 peers: "foundation"
                                                 dataset: "program_outcomes"
                                                 purposes: "marketing"
                                               )pb",
                                               second}));
  const Decision d = set.Decide("foundation", Question(), kNow);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.agreement_id, "eval-copy");
  EXPECT_EQ(set.agreements().size(), 2u);
}

TEST(AgreementTest, ForPeerListsPermitsOnly) {
  ASSERT_OK_AND_ASSIGN(AgreementSet set, Make({kPermit, R"pb(
                                                 id: "ban"
                                                 effect: FORBID
                                                 peers: "foundation"
                                                 dataset: "donations"
                                               )pb"}));
  const std::vector<v1::Agreement> list = set.ForPeer("foundation", kNow);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id(), "eval-2026");
  EXPECT_TRUE(set.ForPeer("partner-z", kNow).empty());
}

void ExpectCreateError(const std::vector<std::string>& texts, const std::string& needle) {
  EXPECT_THAT(Make(texts), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(needle)))
      << texts.back();
}

TEST(AgreementCreateTest, ValidationErrorsNameTheAgreement) {
  const std::string base =
      R"pb(peers: "foundation" dataset: "program_outcomes" purposes: "research")pb";
  ExpectCreateError({base}, "has no id");
  ExpectCreateError({"id: \"a\" " + base, "id: \"a\" " + base},
                    "agreement 'a': the id is used twice");
  ExpectCreateError({R"pb(id: "a" dataset: "program_outcomes")pb"}, "agreement 'a': no peers");
  ExpectCreateError({R"pb(id: "a" peers: "Foundation!" dataset: "program_outcomes")pb"},
                    "agreement 'a': peer 'Foundation!'");
  ExpectCreateError({R"pb(id: "a" peers: "foundation" dataset: "nope")pb"},
                    "agreement 'a': unknown dataset 'nope'");
  ExpectCreateError({"id: \"a\" purposes: \"sales\" " + base},
                    "agreement 'a': unknown purpose 'sales'");
  ExpectCreateError({"id: \"a\" filter_fields: \"bogus\" " + base},
                    "filter_fields names 'bogus', which is not a field");
  ExpectCreateError({"id: \"a\" filter_fields: \"notes\" " + base},
                    "filter_fields names field 'notes', a PRIVATE field");
  ExpectCreateError({"id: \"a\" group_fields: \"subject_id\" " + base},
                    "group_fields names field 'subject_id', a SUBJECT field");
  ExpectCreateError({"id: \"a\" group_fields: \"outcome_score\" " + base},
                    "group_fields names field 'outcome_score', a MEASURE field");
  ExpectCreateError({"id: \"a\" measure_fields: \"program\" " + base},
                    "measure_fields names field 'program', a DIMENSION field");
  ExpectCreateError({"id: \"a\" disclosure { min_subjects: 2 } " + base},
                    "agreement 'a': disclosure.min_subjects 2 is below 3");
  ExpectCreateError({"id: \"a\" disclosure { min_subjects: 1 } " + base}, "below 3");
  ExpectCreateError({"id: \"a\" disclosure { dominance { n: 1 percent: 0 } } " + base},
                    "dominance percent 0 is outside (0, 100]");
  ExpectCreateError({"id: \"a\" disclosure { dominance { n: 1 percent: 101 } } " + base},
                    "dominance percent 101");
  ExpectCreateError({"id: \"a\" disclosure { dominance { n: 0 percent: 50 } } " + base},
                    "dominance n 0");
  ExpectCreateError({"id: \"a\" rate_limit { queries: 10 } " + base},
                    "agreement 'a': rate_limit needs window_seconds > 0");
  ExpectCreateError({"id: \"a\" valid_from: \"soon\" " + base},
                    "agreement 'a': valid_from: 'soon'");
  ExpectCreateError({"id: \"a\" valid_until: \"2026-13-45\" " + base}, "valid_until");
  ExpectCreateError({"id: \"a\" valid_from: \"2026-01-01\" valid_until: \"2025-01-01\" " + base},
                    "never in force");
  EXPECT_OK(
      Make({"id: \"a\" disclosure { min_subjects: 3 dominance { n: 2 percent: 100 } } " + base}));
  EXPECT_OK(Make({"id: \"a\" valid_from: \"2026-01-01T08:00:00Z\" " + base}));
}

TEST(EffectiveDisclosureTest, Defaults) {
  const DisclosureParams p = EffectiveDisclosure(v1::Disclosure());
  EXPECT_EQ(p.min_subjects, 10);
  ASSERT_EQ(p.dominance.size(), 2u);
  EXPECT_EQ(p.dominance[0].n, 1);
  EXPECT_EQ(p.dominance[0].percent, 50.0);
  EXPECT_EQ(p.dominance[1].n, 2);
  EXPECT_EQ(p.dominance[1].percent, 67.0);
  EXPECT_EQ(p.repeat_limit, 5);
  EXPECT_EQ(p.repeat_window, absl::Hours(24));
  EXPECT_EQ(p.max_records_per_subject, 0);
}

TEST(EffectiveDisclosureTest, ExplicitValuesAndFloorOfThree) {
  const DisclosureParams p = EffectiveDisclosure(Parse<v1::Disclosure>(R"pb(
    min_subjects: 5
    dominance { n: 3 percent: 80 }
    repeat_limit: 2
    repeat_window_seconds: 3600
    max_records_per_subject: 4
  )pb"));
  EXPECT_EQ(p.min_subjects, 5);
  ASSERT_EQ(p.dominance.size(), 1u);
  EXPECT_EQ(p.dominance[0].n, 3);
  EXPECT_EQ(p.dominance[0].percent, 80.0);
  EXPECT_EQ(p.repeat_limit, 2);
  EXPECT_EQ(p.repeat_window, absl::Hours(1));
  EXPECT_EQ(p.max_records_per_subject, 4);
  // Create refuses k below 3; a k that reaches here anyway never goes below 3.
  EXPECT_EQ(EffectiveDisclosure(Parse<v1::Disclosure>("min_subjects: 1")).min_subjects, 3);
}

TEST(AgreementRateWindowTest, AdmitsUpToTheLimitPerWindow) {
  std::vector<absl::Time> times;
  const absl::Duration w = absl::Minutes(10);
  EXPECT_TRUE(RateWindowAdmit(times, kNow, 2, w));
  EXPECT_TRUE(RateWindowAdmit(times, kNow + absl::Minutes(1), 2, w));
  EXPECT_FALSE(RateWindowAdmit(times, kNow + absl::Minutes(2), 2, w));
  EXPECT_EQ(times.size(), 2u);
  // The first time drops out exactly at now - window.
  EXPECT_FALSE(RateWindowAdmit(times, kNow + w - absl::Seconds(1), 2, w));
  EXPECT_TRUE(RateWindowAdmit(times, kNow + w, 2, w));
  EXPECT_EQ(times.size(), 2u);
  EXPECT_FALSE(RateWindowAdmit(times, kNow + w, 2, w));
}

TEST(AgreementRateWindowTest, NoLimitAlwaysAdmitsAndKeepsNothing) {
  std::vector<absl::Time> times = {kNow};
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(RateWindowAdmit(times, kNow, 0, absl::Minutes(1)));
  EXPECT_TRUE(times.empty());
  EXPECT_TRUE(RateWindowAdmit(times, kNow, -1, absl::Minutes(1)));
}

TEST(AgreementCreateTest, DifferentialPrivacySettingsAreChecked) {
  ExpectCreateError({With(kPermit, "disclosure { dp { epsilon_per_question: 0.5 } }")},
                    "disclosure.dp is set but disclosure.mode is not DIFFERENTIAL_PRIVACY");
  ExpectCreateError(
      {With(kPermit, "disclosure { mode: DIFFERENTIAL_PRIVACY dp { epsilon_per_question: 11 } }")},
      "agreement 'eval-2026': disclosure.dp.epsilon_per_question 11 is outside (0, 10]");
  ExpectCreateError({With(kPermit, "disclosure { mode: DIFFERENTIAL_PRIVACY dp { delta: 0.01 } }")},
                    "disclosure.dp.delta 0.01 is outside (0, 0.001]");
  ExpectCreateError({With(kPermit,
                          "disclosure { mode: DIFFERENTIAL_PRIVACY dp { epsilon_per_question: 0.5 "
                          "budget_epsilon: 0.25 } }")},
                    "disclosure.dp.budget_epsilon 0.25 must lie between one question's ε (0.5)");
  ExpectCreateError(
      {With(kPermit,
            "disclosure { mode: DIFFERENTIAL_PRIVACY dp { max_groups_per_subject: -1 } }")},
      "max_groups_per_subject and max_records_per_subject must lie in [0, 1048576]");
  ExpectCreateError({With(kPermit,
                          "disclosure { mode: DIFFERENTIAL_PRIVACY dp { budget_window_seconds: -5 "
                          "} }")},
                    "budget_window_seconds must be >= 0");
}

TEST(AgreementCreateTest, DifferentialPrivacyNeedsBoundedMeasures) {
  std::vector<v1::DatasetSchema> datasets = Datasets();
  datasets[0].mutable_fields(4)->clear_upper();
  EXPECT_THAT(
      AgreementSet::Create(
          {Parse<v1::Agreement>(With(kPermit, "disclosure { mode: DIFFERENTIAL_PRIVACY }"))},
          Tree(), datasets),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("measure field 'outcome_score' has no declared bounds")));
}

TEST(EffectiveDpTest, DefaultsAndExplicitValues) {
  const DpSettings d = EffectiveDp(v1::Disclosure());
  EXPECT_EQ(d.epsilon_per_question, 0.1);
  EXPECT_EQ(d.delta, 1e-6);
  EXPECT_EQ(d.budget_epsilon, 1.0);
  EXPECT_EQ(d.window, absl::Hours(24 * 30));
  EXPECT_EQ(d.bounds.max_groups_per_subject, 1);
  EXPECT_EQ(d.bounds.max_records_per_group, 1);
  const DpSettings e = EffectiveDp(Parse<v1::Disclosure>(R"pb(
    mode: DIFFERENTIAL_PRIVACY
    max_records_per_subject: 3
    dp {
      epsilon_per_question: 0.5
      delta: 1e-5
      budget_epsilon: 2
      budget_window_seconds: 3600
      max_groups_per_subject: 2
    }
  )pb"));
  EXPECT_EQ(e.epsilon_per_question, 0.5);
  EXPECT_EQ(e.delta, 1e-5);
  EXPECT_EQ(e.budget().micro_epsilon, 2'000'000);
  EXPECT_EQ(e.window, absl::Hours(1));
  EXPECT_EQ(e.bounds.max_groups_per_subject, 2);
  EXPECT_EQ(e.bounds.max_records_per_group, 3);
}

}  // namespace
}  // namespace fedshare::policy
