#include "policy/query_rules.h"

#include <cstdint>
#include <limits>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "policy/question.h"

namespace fedshare::policy {
namespace {

using ::fedshare::testing::StatusIs;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::HasSubstr;

template <typename T>
T Parse(const std::string& text) {
  T msg;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &msg)) << text;
  return msg;
}

v1::DatasetSchema Schema() {
  return Parse<v1::DatasetSchema>(R"pb(
    name: "program_outcomes"
    fields { name: "subject_id" type: CATEGORY role: SUBJECT }
    fields {
      name: "program"
      type: CATEGORY
      role: DIMENSION
      categories: [ "arts", "sports" ]
    }
    fields { name: "region" type: CATEGORY role: DIMENSION }
    fields { name: "cohort_year" type: INT64 role: DIMENSION }
    fields { name: "age" type: INT64 role: DIMENSION granularity: 5 }
    fields { name: "enrolled" type: DATE role: DIMENSION }
    fields { name: "enrolled_month" type: DATE role: DIMENSION granularity: 30 }
    fields { name: "active" type: BOOL role: DIMENSION }
    fields { name: "income" type: DOUBLE role: DIMENSION granularity: 1000 }
    fields { name: "distance" type: DOUBLE role: DIMENSION }
    fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
    fields { name: "sessions" type: INT64 role: MEASURE lower: 0 upper: 50 }
    fields { name: "notes" type: CATEGORY role: PRIVATE }
  )pb");
}

v1::AggregateQuery Q(const std::string& body) {
  return Parse<v1::AggregateQuery>(
      R"pb(dataset: "program_outcomes" purpose: "program-evaluation")pb" + body);
}

constexpr char kCount[] = " aggregates { kind: COUNT } ";

absl::StatusOr<v1::AggregateQuery> Normalize(const std::string& body) {
  return NormalizeQuery(Schema(), Q(body));
}

absl::StatusOr<v1::Predicate> OnlyPredicate(const std::string& where) {
  absl::StatusOr<v1::AggregateQuery> q = Normalize(where + kCount);
  if (!q.ok()) return q.status();
  if (q->where_size() != 1) return absl::InternalError(q->DebugString());
  return q->where(0);
}

void ExpectPredicate(const std::string& where, const std::string& expected) {
  absl::StatusOr<v1::AggregateQuery> q = Normalize(where + kCount);
  ASSERT_OK(q);
  v1::AggregateQuery want = Q(expected + kCount);
  EXPECT_TRUE(MessageDifferencer::Equals(*q, want))
      << where << "\n got: " << q->ShortDebugString() << "\nwant: " << want.ShortDebugString();
}

TEST(QueryRulesTest, ValuesTakeTheFieldType) {
  ExpectPredicate(R"pb(where {
                         field: "distance"
                         op: EQ
                         values { int_value: 3 }
                       })pb",
                  R"pb(where {
                         field: "distance"
                         op: EQ
                         values { double_value: 3 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "cohort_year"
                         op: EQ
                         values { double_value: 2020 }
                       })pb",
                  R"pb(where {
                         field: "cohort_year"
                         op: EQ
                         values { int_value: 2020 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "enrolled"
                         op: EQ
                         values { string_value: "2020-01-02" }
                       })pb",
                  R"pb(where {
                         field: "enrolled"
                         op: EQ
                         values { int_value: 18263 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "enrolled"
                         op: EQ
                         values { int_value: 18263 }
                       })pb",
                  R"pb(where {
                         field: "enrolled"
                         op: EQ
                         values { int_value: 18263 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "active"
                         op: EQ
                         values { bool_value: true }
                       })pb",
                  R"pb(where {
                         field: "active"
                         op: EQ
                         values { bool_value: true }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "program"
                         op: EQ
                         values { string_value: "arts" }
                       })pb",
                  R"pb(where {
                         field: "program"
                         op: EQ
                         values { string_value: "arts" }
                       })pb");
}

TEST(QueryRulesTest, WrongTypesAreRefused) {
  for (const char* where : {
           R"pb(where {
                  field: "cohort_year"
                  op: EQ
                  values { double_value: 2020.5 }
                })pb",
           R"pb(where {
                  field: "cohort_year"
                  op: EQ
                  values { string_value: "2020" }
                })pb",
           R"pb(where {
                  field: "active"
                  op: EQ
                  values { int_value: 1 }
                })pb",
           R"pb(where {
                  field: "program"
                  op: EQ
                  values { int_value: 1 }
                })pb",
           R"pb(where {
                  field: "distance"
                  op: EQ
                  values { string_value: "x" }
                })pb",
           R"pb(where {
                  field: "distance"
                  op: EQ
                  values {}
                })pb",
       }) {
    EXPECT_THAT(OnlyPredicate(where),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wrong type")))
        << where;
  }
  EXPECT_THAT(OnlyPredicate(R"pb(where {
                                   field: "enrolled"
                                   op: EQ
                                   values { string_value: "2020-13-01" }
                                 })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field 'enrolled'")));
  EXPECT_THAT(OnlyPredicate(R"pb(where {
                                   field: "program"
                                   op: EQ
                                   values { string_value: "chess" }
                                 })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown category 'chess'")));
  EXPECT_OK(OnlyPredicate(R"pb(where {
                                 field: "region"
                                 op: EQ
                                 values { string_value: "any" }
                               })pb"));
}

TEST(QueryRulesTest, RangesBecomeHalfOpenOnTheGrid) {
  // INT64 with the default grid of 1.
  ExpectPredicate(R"pb(where {
                         field: "cohort_year"
                         op: LE
                         values { int_value: 2020 }
                       })pb",
                  R"pb(where {
                         field: "cohort_year"
                         op: LT
                         values { int_value: 2021 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "cohort_year"
                         op: GT
                         values { int_value: 2020 }
                       })pb",
                  R"pb(where {
                         field: "cohort_year"
                         op: GE
                         values { int_value: 2021 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "cohort_year"
                         op: LT
                         values { int_value: 2020 }
                       })pb",
                  R"pb(where {
                         field: "cohort_year"
                         op: LT
                         values { int_value: 2020 }
                       })pb");
  // INT64 with granularity 5.
  ExpectPredicate(R"pb(where {
                         field: "age"
                         op: LT
                         values { int_value: 43 }
                       })pb",
                  R"pb(where {
                         field: "age"
                         op: LT
                         values { int_value: 40 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "age"
                         op: LE
                         values { int_value: 44 }
                       })pb",
                  R"pb(where {
                         field: "age"
                         op: LT
                         values { int_value: 45 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "age"
                         op: GE
                         values { int_value: 22 }
                       })pb",
                  R"pb(where {
                         field: "age"
                         op: GE
                         values { int_value: 20 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "age"
                         op: GT
                         values { int_value: 24 }
                       })pb",
                  R"pb(where {
                         field: "age"
                         op: GE
                         values { int_value: 25 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "age"
                         op: GE
                         values { int_value: -3 }
                       })pb",
                  R"pb(where {
                         field: "age"
                         op: GE
                         values { int_value: -5 }
                       })pb");
  // BETWEEN is both bounds, snapped; predicates are sorted by field, then op.
  ExpectPredicate(R"pb(where {
                         field: "age"
                         op: BETWEEN
                         values { int_value: 21 }
                         values { int_value: 39 }
                       })pb",
                  R"pb(where {
                         field: "age"
                         op: LT
                         values { int_value: 40 }
                       }
                       where {
                         field: "age"
                         op: GE
                         values { int_value: 20 }
                       })pb");
  // DATE with granularity 30 days; DOUBLE with and without a grid.
  ExpectPredicate(R"pb(where {
                         field: "enrolled_month"
                         op: GE
                         values { int_value: 45 }
                       })pb",
                  R"pb(where {
                         field: "enrolled_month"
                         op: GE
                         values { int_value: 30 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "income"
                         op: LE
                         values { double_value: 2999.5 }
                       })pb",
                  R"pb(where {
                         field: "income"
                         op: LT
                         values { double_value: 2000 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "income"
                         op: GE
                         values { int_value: 3000 }
                       })pb",
                  R"pb(where {
                         field: "income"
                         op: GE
                         values { double_value: 3000 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "distance"
                         op: LE
                         values { double_value: 2.5 }
                       })pb",
                  R"pb(where {
                         field: "distance"
                         op: LT
                         values { double_value: 2.5 }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "distance"
                         op: GT
                         values { double_value: 2.5 }
                       })pb",
                  R"pb(where {
                         field: "distance"
                         op: GE
                         values { double_value: 2.5 }
                       })pb");
}

TEST(QueryRulesTest, NearbyBoundsSnapToTheSameQuestion) {
  ASSERT_OK_AND_ASSIGN(auto le40, Normalize(R"pb(where {
                                                   field: "age"
                                                   op: LE
                                                   values { int_value: 40 }
                                                 })pb" +
                                            std::string(kCount)));
  ASSERT_OK_AND_ASSIGN(auto le41, Normalize(R"pb(where {
                                                   field: "age"
                                                   op: LE
                                                   values { int_value: 41 }
                                                 })pb" +
                                            std::string(kCount)));
  ASSERT_EQ(le40.where_size(), 1);
  EXPECT_EQ(le40.where(0).op(), v1::Predicate::LT);
  EXPECT_EQ(le40.where(0).values(0).int_value(), 40);
  EXPECT_TRUE(MessageDifferencer::Equals(le40, le41));
  EXPECT_EQ(QuestionHash(CanonicalizeQuestion(le40)), QuestionHash(CanonicalizeQuestion(le41)));
}

TEST(QueryRulesTest, EqualityOnACoarseFieldIsRefused) {
  for (const char* where : {
           R"pb(where {
                  field: "age"
                  op: EQ
                  values { int_value: 40 }
                })pb",
           R"pb(where {
                  field: "age"
                  op: NE
                  values { int_value: 40 }
                })pb",
           R"pb(where {
                  field: "age"
                  op: IN
                  values { int_value: 40 }
                })pb",
           R"pb(where {
                  field: "income"
                  op: EQ
                  values { double_value: 1000 }
                })pb",
           R"pb(where {
                  field: "enrolled_month"
                  op: EQ
                  values { string_value: "2020-01-01" }
                })pb",
       }) {
    EXPECT_THAT(OnlyPredicate(where), StatusIs(absl::StatusCode::kPermissionDenied,
                                               AllOf(HasSubstr("rule 'granularity'"),
                                                     HasSubstr("only be filtered by ranges"))))
        << where;
  }
  EXPECT_OK(OnlyPredicate(R"pb(where {
                                 field: "cohort_year"
                                 op: EQ
                                 values { int_value: 2020 }
                               })pb"));
}

TEST(QueryRulesTest, InValuesAreSortedAndDeduplicated) {
  ExpectPredicate(R"pb(where {
                         field: "region"
                         op: IN
                         values { string_value: "south" }
                         values { string_value: "north" }
                         values { string_value: "south" }
                       })pb",
                  R"pb(where {
                         field: "region"
                         op: IN
                         values { string_value: "north" }
                         values { string_value: "south" }
                       })pb");
  ExpectPredicate(R"pb(where {
                         field: "region"
                         op: IN
                         values { string_value: "x" }
                       })pb",
                  R"pb(where {
                         field: "region"
                         op: EQ
                         values { string_value: "x" }
                       })pb");
}

TEST(QueryRulesTest, OperatorArityAndKinds) {
  EXPECT_THAT(
      OnlyPredicate(R"pb(where { field: "cohort_year" op: EQ })pb"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("EQ takes 1 value(s), not 0")));
  EXPECT_THAT(OnlyPredicate(R"pb(where {
                                   field: "age"
                                   op: BETWEEN
                                   values { int_value: 1 }
                                 })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("BETWEEN takes 2")));
  EXPECT_THAT(OnlyPredicate(R"pb(where {
                                   field: "cohort_year"
                                   op: LT
                                   values { int_value: 1 }
                                   values { int_value: 2 }
                                 })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("LT takes 1")));
  EXPECT_THAT(OnlyPredicate(R"pb(where {
                                   field: "cohort_year"
                                   values { int_value: 1 }
                                 })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no operator")));
  EXPECT_THAT(
      OnlyPredicate(R"pb(where {
                           field: "program"
                           op: LT
                           values { string_value: "arts" }
                         })pb"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("range operator LT on a CATEGORY")));
  std::string in = "where { field: \"region\" op: IN ";
  for (int i = 0; i <= kMaxInValues; ++i)
    in += "values { string_value: \"r" + std::to_string(i) + "\" } ";
  EXPECT_THAT(OnlyPredicate(in + "}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("IN takes 1 to 100 values")));
}

TEST(QueryRulesTest, FieldRolesAreEnforced) {
  EXPECT_THAT(Normalize(R"pb(where {
                               field: "notes"
                               op: EQ
                               values { string_value: "x" }
                             })pb" +
                        std::string(kCount)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field 'notes': a PRIVATE")));
  EXPECT_THAT(Normalize(R"pb(where {
                               field: "subject_id"
                               op: EQ
                               values { string_value: "x" }
                             })pb" +
                        std::string(kCount)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a SUBJECT field")));
  EXPECT_THAT(
      Normalize(R"pb(where {
                       field: "nope"
                       op: EQ
                       values { string_value: "x" }
                     })pb" +
                std::string(kCount)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'nope', which is not a field")));
  EXPECT_THAT(
      Normalize(R"pb(group_by: "outcome_score")pb" + std::string(kCount)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("GROUP BY needs a DIMENSION")));
  EXPECT_THAT(Normalize(R"pb(group_by: "notes")pb" + std::string(kCount)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field 'notes'")));
  EXPECT_THAT(Normalize(R"pb(group_by: [ "program", "program" ])pb" + std::string(kCount)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("grouped by twice")));
  EXPECT_THAT(Normalize(R"pb(aggregates { kind: SUM field: "cohort_year" })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("SUM needs a MEASURE field")));
  EXPECT_THAT(Normalize(R"pb(aggregates { kind: AVG field: "nope" })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'nope'")));
  EXPECT_THAT(Normalize(R"pb(aggregates { kind: COUNT field: "sessions" })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("takes no field")));
  EXPECT_THAT(Normalize(R"pb(aggregates {})pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no kind")));
}

TEST(QueryRulesTest, QuestionShapeRules) {
  EXPECT_THAT(
      NormalizeQuery(Schema(), Parse<v1::AggregateQuery>(R"pb(dataset: "program_outcomes"
                                                              aggregates { kind: COUNT })pb")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no purpose")));
  EXPECT_THAT(Normalize(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no aggregate")));
  EXPECT_THAT(
      NormalizeQuery(Schema(), Parse<v1::AggregateQuery>(R"pb(dataset: "other"
                                                              purpose: "p"
                                                              aggregates { kind: COUNT })pb")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dataset 'other'")));
  std::string many;
  for (int i = 0; i <= kMaxAggregates; ++i) many += kCount;
  EXPECT_THAT(Normalize(many),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 16")));
  EXPECT_THAT(Normalize(R"pb(group_by: [ "program", "region", "cohort_year", "active" ])pb" +
                        std::string(kCount)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 3")));
  std::string filters;
  for (int i = 0; i <= kMaxPredicates; ++i) {
    filters += R"pb(where { field: "cohort_year" op: NE
                            values { int_value:)pb" +
               std::to_string(i) + "} } ";
  }
  EXPECT_THAT(Normalize(filters + kCount),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("17 filters: at most 16")));
}

TEST(QueryRulesTest, HistogramRules) {
  ASSERT_OK_AND_ASSIGN(
      auto q,
      Normalize(
          R"pb(aggregates { kind: HISTOGRAM field: "outcome_score" lo: 0 hi: 100 bins: 10 })pb"));
  EXPECT_EQ(q.aggregates(0).bins(), 10);
  EXPECT_THAT(
      Normalize(
          R"pb(aggregates { kind: HISTOGRAM field: "outcome_score" lo: 0 hi: 100 bins: 0 })pb"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bins 0")));
  EXPECT_THAT(
      Normalize(
          R"pb(aggregates { kind: HISTOGRAM field: "outcome_score" lo: 0 hi: 100 bins: 101 })pb"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bins 101")));
  EXPECT_THAT(
      Normalize(R"pb(aggregates { kind: HISTOGRAM field: "outcome_score" lo: 5 hi: 5 bins: 2 })pb"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("set lo < hi")));
  // Histogram parameters on other aggregates carry no meaning and are dropped.
  ASSERT_OK_AND_ASSIGN(
      auto avg, Normalize(R"pb(aggregates { kind: AVG field: "outcome_score" bins: 3 lo: 1 })pb"));
  EXPECT_EQ(avg.aggregates(0).bins(), 0);
  EXPECT_EQ(avg.aggregates(0).lo(), 0);
}

TEST(DescribeWhereTest, ShowsSnappedBoundsAndDatesAsDates) {
  absl::StatusOr<v1::AggregateQuery> q = Normalize(
      R"pb(where {
             field: "age"
             op: GE
             values { int_value: 18 }
           }
           where {
             field: "age"
             op: LE
             values { int_value: 25 }
           }
           where {
             field: "enrolled"
             op: GE
             values { string_value: "2024-03-01" }
           }
           where {
             field: "program"
             op: IN
             values { string_value: "sports" }
             values { string_value: "arts" }
           })pb" +
      std::string(kCount));
  ASSERT_OK(q);
  EXPECT_EQ(DescribeWhere(Schema(), q->where()),
            "age >= 15 AND age < 25 AND enrolled >= 2024-03-01 AND program IN ('arts', 'sports')");
  EXPECT_EQ(DescribeWhere(Schema(), v1::AggregateQuery().where()), "");
}

TEST(QueryHashTest, EqualQuestionsHashEqualRegardlessOfQueryIdAndPredicateOrder) {
  ASSERT_OK_AND_ASSIGN(auto a,
                       Normalize(R"pb(query_id: "first"
                                      where {
                                        field: "cohort_year"
                                        op: GE
                                        values { int_value: 2020 }
                                      }
                                      where {
                                        field: "region"
                                        op: EQ
                                        values { string_value: "north" }
                                      }
                                      group_by: "program"
                                      aggregates { kind: AVG field: "outcome_score" })pb"));
  ASSERT_OK_AND_ASSIGN(auto b,
                       Normalize(R"pb(query_id: "second"
                                      where {
                                        field: "region"
                                        op: IN
                                        values { string_value: "north" }
                                      }
                                      where {
                                        field: "cohort_year"
                                        op: GT
                                        values { int_value: 2019 }
                                      }
                                      group_by: "program"
                                      aggregates { kind: AVG field: "outcome_score" })pb"));
  const std::string h = QuestionHash(CanonicalizeQuestion(a));
  EXPECT_EQ(h.size(), 32u);
  EXPECT_EQ(h, QuestionHash(CanonicalizeQuestion(b)));
  EXPECT_EQ(a.query_id(), "first");
}

TEST(QueryHashTest, DifferentQuestionsHashDifferently) {
  const std::string base_text = R"pb(where {
                                       field: "cohort_year"
                                       op: GE
                                       values { int_value: 2020 }
                                     }
                                     group_by: "program"
                                     aggregates { kind: AVG field: "outcome_score" })pb";
  ASSERT_OK_AND_ASSIGN(auto base, Normalize(base_text));
  const std::string h = QuestionHash(CanonicalizeQuestion(base));
  std::vector<v1::AggregateQuery> variants(8, base);
  variants[0].set_purpose("research");
  variants[1].set_dataset("program_outcomes2");
  variants[2].mutable_where(0)->mutable_values(0)->set_int_value(2021);
  variants[3].mutable_where(0)->set_op(v1::Predicate::LT);
  variants[4].clear_group_by();
  variants[5].mutable_aggregates(0)->set_kind(v1::SUM);
  variants[6].add_aggregates()->set_kind(v1::COUNT);
  variants[7].mutable_where(0)->mutable_values(0)->set_double_value(2020);
  for (size_t i = 0; i < variants.size(); ++i) {
    EXPECT_NE(QuestionHash(CanonicalizeQuestion(variants[i])), h) << i;
  }
  // Field boundaries are encoded: moving a character between adjacent strings changes the hash.
  v1::AggregateQuery x = base, y = base;
  x.set_dataset("ab");
  x.set_purpose("c");
  y.set_dataset("a");
  y.set_purpose("bc");
  EXPECT_NE(QuestionHash(CanonicalizeQuestion(x)), QuestionHash(CanonicalizeQuestion(y)));
}

TEST(QueryRulesTest, GridIsTheOneRangeFiltersSnapTo) {
  v1::FieldSchema f;
  f.set_type(v1::FieldSchema::INT64);
  EXPECT_EQ(GridWidth(f), 0);
  f.set_granularity(1);
  EXPECT_EQ(GridWidth(f), 0);
  f.set_granularity(5);
  EXPECT_EQ(GridWidth(f), 5);
  f.set_type(v1::FieldSchema::DATE);
  EXPECT_EQ(GridWidth(f), 5);
  f.set_type(v1::FieldSchema::DOUBLE);
  f.set_granularity(0.1);
  EXPECT_EQ(GridWidth(f), 0.1);
  f.set_type(v1::FieldSchema::CATEGORY);
  EXPECT_EQ(GridWidth(f), 0);

  EXPECT_EQ(GridFloor(int64_t{41}, 5), 40);
  EXPECT_EQ(GridFloor(int64_t{40}, 5), 40);
  EXPECT_EQ(GridFloor(int64_t{-1}, 5), -5);
  EXPECT_EQ(GridFloor(std::numeric_limits<int64_t>::min(), 5) % 5, 0);
  EXPECT_EQ(GridFloor(0.3, 0.1), 0.30000000000000004);
  EXPECT_EQ(GridFloor(0.29, 0.1), 0.2);
  EXPECT_EQ(GridFloor(-0.05, 0.1), -0.1);
  EXPECT_EQ(GridFloor(7.5, 0), 7.5);
}

TEST(HistogramBinTest, EqualWidthBinsClampedAtBothEnds) {
  v1::Aggregate agg;
  agg.set_kind(v1::HISTOGRAM);
  agg.set_lo(0);
  agg.set_hi(100);
  agg.set_bins(4);
  EXPECT_EQ(HistogramBin(agg, 0), 0);
  EXPECT_EQ(HistogramBin(agg, 24.9), 0);
  EXPECT_EQ(HistogramBin(agg, 25), 1);
  EXPECT_EQ(HistogramBin(agg, 99.9), 3);
  EXPECT_EQ(HistogramBin(agg, 100), 3);
  EXPECT_EQ(HistogramBin(agg, -5), 0);
  EXPECT_EQ(HistogramBin(agg, 1e300), 3);
  EXPECT_EQ(HistogramBin(agg, std::nan("")), 0);
}

// Found by rpc_fuzz under UBSan: a valid but tiny range makes the position
// infinite, and converting that to int was undefined.
TEST(HistogramBinTest, ATinyRangeGivesAnEndBinNotUndefinedBehaviour) {
  v1::Aggregate agg;
  agg.set_kind(v1::HISTOGRAM);
  agg.set_lo(0);
  agg.set_hi(1e-320);
  agg.set_bins(4);
  EXPECT_EQ(HistogramBin(agg, 50), 3);
  EXPECT_EQ(HistogramBin(agg, -50), 0);
  agg.set_lo(-1e308);
  agg.set_hi(1e308);  // hi - lo overflows to infinity
  EXPECT_EQ(HistogramBin(agg, 0), 0);
}

}  // namespace
}  // namespace fedshare::policy
