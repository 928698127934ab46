#include "query/sql.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "policy/refusal.h"
#include "query/sql_corpus.h"

namespace fedshare {
namespace {

using ::fedshare::testing::StatusIs;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::AggregateQuery TextQuery(const std::string& text) {
  v1::AggregateQuery q;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &q)) << text;
  return q;
}

MATCHER_P(EqualsProto, expected, "") {
  std::string diff;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << diff << "actual: " << arg.ShortDebugString();
  return false;
}

TEST(ParseSqlTest, ParsesTheDesignExample) {
  ASSERT_OK_AND_ASSIGN(
      v1::AggregateQuery q,
      ParseSql("SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes WHERE "
               "cohort_year >= 2020 AND region IN ('north','south') GROUP BY program PURPOSE "
               "'program-evaluation'"));
  EXPECT_THAT(q, EqualsProto(TextQuery(R"pb(
                dataset: "program_outcomes"
                purpose: "program-evaluation"
                where {
                  field: "cohort_year"
                  op: GE
                  values { int_value: 2020 }
                }
                where {
                  field: "region"
                  op: IN
                  values { string_value: "north" }
                  values { string_value: "south" }
                }
                group_by: "program"
                aggregates { kind: COUNT }
                aggregates { kind: AVG field: "outcome_score" }
              )pb")));
}

TEST(ParseSqlTest, ParsesEveryAggregate) {
  ASSERT_OK_AND_ASSIGN(
      v1::AggregateQuery q,
      ParseSql("select count(*), Count(Distinct SUBJECT), sum(a), AVG(b), stddev(c), "
               "variance(d), histogram(e, -10, 2.5e1, 7) from ds purpose 'p'"));
  EXPECT_THAT(q, EqualsProto(TextQuery(R"pb(
                dataset: "ds"
                purpose: "p"
                aggregates { kind: COUNT }
                aggregates { kind: COUNT_SUBJECTS }
                aggregates { kind: SUM field: "a" }
                aggregates { kind: AVG field: "b" }
                aggregates { kind: STDDEV field: "c" }
                aggregates { kind: VARIANCE field: "d" }
                aggregates { kind: HISTOGRAM field: "e" lo: -10 hi: 25 bins: 7 }
              )pb")));
}

TEST(ParseSqlTest, ParsesEveryOperatorAndLiteral) {
  ASSERT_OK_AND_ASSIGN(
      v1::AggregateQuery q,
      ParseSql("SELECT COUNT(*) FROM ds WHERE a = 1 AND b != -2 AND c <> 'x' AND d < 1.5 AND "
               "e <= -0.25 AND f > TRUE AND g >= false AND h IN (1, 'it''s', 2.0) AND "
               "i BETWEEN DATE '2020-01-01' AND DATE '2020-12-31' AND j = 1e3 "
               "PURPOSE 'p';"));
  EXPECT_THAT(q, EqualsProto(TextQuery(R"pb(
                dataset: "ds"
                purpose: "p"
                where {
                  field: "a"
                  op: EQ
                  values { int_value: 1 }
                }
                where {
                  field: "b"
                  op: NE
                  values { int_value: -2 }
                }
                where {
                  field: "c"
                  op: NE
                  values { string_value: "x" }
                }
                where {
                  field: "d"
                  op: LT
                  values { double_value: 1.5 }
                }
                where {
                  field: "e"
                  op: LE
                  values { double_value: -0.25 }
                }
                where {
                  field: "f"
                  op: GT
                  values { bool_value: true }
                }
                where {
                  field: "g"
                  op: GE
                  values { bool_value: false }
                }
                where {
                  field: "h"
                  op: IN
                  values { int_value: 1 }
                  values { string_value: "it's" }
                  values { double_value: 2 }
                }
                where {
                  field: "i"
                  op: BETWEEN
                  values { string_value: "2020-01-01" }
                  values { string_value: "2020-12-31" }
                }
                where {
                  field: "j"
                  op: EQ
                  values { double_value: 1000 }
                }
                aggregates { kind: COUNT }
              )pb")));
}

TEST(ParseSqlTest, LowercasesIdentifiersAndFollowsGroupByOrder) {
  ASSERT_OK_AND_ASSIGN(v1::AggregateQuery q,
                       ParseSql("SELECT Region, SUM(Score), Program FROM Outcomes\n"
                                "  -- a comment\n"
                                "GROUP BY PROGRAM, region PURPOSE 'Mixed-Case'"));
  EXPECT_EQ(q.dataset(), "outcomes");
  ASSERT_EQ(q.group_by_size(), 2);
  EXPECT_EQ(q.group_by(0), "program");
  EXPECT_EQ(q.group_by(1), "region");
  EXPECT_EQ(q.aggregates(0).field(), "score");
  EXPECT_EQ(q.purpose(), "Mixed-Case");  // strings keep their case
}

TEST(ParseSqlTest, KeepsLargeIntegersExact) {
  ASSERT_OK_AND_ASSIGN(v1::AggregateQuery q,
                       ParseSql("SELECT COUNT(*) FROM ds WHERE a = 9223372036854775807 AND b = "
                                "-9223372036854775808 PURPOSE 'p'"));
  EXPECT_EQ(q.where(0).values(0).int_value(), INT64_MAX);
  EXPECT_EQ(q.where(1).values(0).int_value(), INT64_MIN);
  EXPECT_THAT(ParseSql("SELECT COUNT(*) FROM ds WHERE a = 9223372036854775808 PURPOSE 'p'"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at 1:35: integer")));
}

class ParseSqlErrorTest : public ::testing::TestWithParam<SqlCorpusCase> {};

TEST_P(ParseSqlErrorTest, PointsAtThePosition) {
  const SqlCorpusCase& c = GetParam();
  absl::StatusOr<v1::AggregateQuery> q = ParseSql(c.sql);
  ASSERT_FALSE(q.ok()) << q->ShortDebugString();
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(q.status().message()), StartsWith(c.error));
}

TEST_P(ParseSqlErrorTest, CarriesTheLineAndColumnAsErrorInfo) {
  const SqlCorpusCase& c = GetParam();
  absl::StatusOr<v1::AggregateQuery> q = ParseSql(c.sql);
  ASSERT_FALSE(q.ok());
  std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(q.status());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), kSqlSyntaxReason);
  const std::string message(q.status().message());
  EXPECT_THAT(message, StartsWith(absl::StrCat("at ", info->metadata().at("line"), ":",
                                               info->metadata().at("column"), ": ")));
}

INSTANTIATE_TEST_SUITE_P(Errors, ParseSqlErrorTest, ::testing::ValuesIn(SqlErrorCorpus()),
                         [](const ::testing::TestParamInfo<SqlCorpusCase>& param_info) {
                           return param_info.param.name;
                         });

TEST(ParseSqlTest, CorpusQueriesParse) {
  for (const SqlCorpusCase& c : SqlValidCorpus()) {
    EXPECT_TRUE(ParseSql(c.sql).ok()) << c.name << ": " << ParseSql(c.sql).status();
  }
}

TEST(ParseSqlTest, ErrorEchoesTheLineWithACaret) {
  absl::StatusOr<v1::AggregateQuery> q =
      ParseSql("SELECT COUNT(*)\nFROM ds WHERE a = 1 OR b = 2\nPURPOSE 'p'");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "at 2:21: OR is not supported: predicates can only be joined with AND (ask one "
            "question per alternative, or use IN (...) for several values of one field)\n"
            "  FROM ds WHERE a = 1 OR b = 2\n"
            "                      ^");
}

TEST(ParseSqlTest, CaretCountsUtf8Characters) {
  absl::StatusOr<v1::AggregateQuery> q =
      ParseSql("SELECT COUNT(*) FROM ds WHERE a = 'é' OR b = 1 PURPOSE 'p'");
  ASSERT_FALSE(q.ok());
  EXPECT_THAT(std::string(q.status().message()),
              AllOf(StartsWith("at 1:39: OR"), HasSubstr("\n  " + std::string(38, ' ') + "^")));
}

TEST(FormatSqlTest, FormatsReadably) {
  v1::AggregateQuery q = TextQuery(R"pb(
    dataset: "program_outcomes"
    purpose: "program-evaluation"
    where {
      field: "cohort_year"
      op: GE
      values { int_value: 2020 }
    }
    where {
      field: "region"
      op: IN
      values { string_value: "north" }
      values { string_value: "o'neil" }
    }
    group_by: "program"
    aggregates { kind: COUNT }
    aggregates { kind: HISTOGRAM field: "age" lo: 0 hi: 100.5 bins: 10 }
  )pb");
  EXPECT_EQ(FormatSql(q),
            "SELECT program, COUNT(*), HISTOGRAM(age, 0, 100.5, 10) FROM program_outcomes WHERE "
            "cohort_year >= 2020 AND region IN ('north', 'o''neil') GROUP BY program PURPOSE "
            "'program-evaluation'");
}

TEST(FormatSqlTest, RoundTripsThroughTheParser) {
  const char* kQueries[] = {
      "SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes WHERE cohort_year >= "
      "2020 AND region IN ('north','south') GROUP BY program PURPOSE 'program-evaluation'",
      "select count(*), count(distinct subject), sum(a), avg(b), stddev(c), variance(d), "
      "histogram(e, -10.5, 1e20, 7) from ds where a = 1 and b != -2.0 and c < 0.1 and d <= -3 "
      "and e > true and f >= 'x''y' and g between date '2020-01-01' and date '2021-01-01' and "
      "h in (1, 2.5, 'z', false) and i = 0.0 and j = -0.5e-7 purpose 'p'",
      "SELECT b, a, c, COUNT(*) FROM ds GROUP BY c, a, b PURPOSE 'x y'",
  };
  for (const char* sql : kQueries) {
    ASSERT_OK_AND_ASSIGN(v1::AggregateQuery first, ParseSql(sql));
    const std::string formatted = FormatSql(first);
    ASSERT_OK_AND_ASSIGN(v1::AggregateQuery second, ParseSql(formatted));
    EXPECT_THAT(second, EqualsProto(first)) << formatted;
    // The value types survive: a double that happens to be whole stays a double.
    EXPECT_EQ(FormatSql(second), formatted);
  }
}

TEST(FormatSqlTest, AggregateColumnNames) {
  v1::Aggregate a;
  a.set_kind(v1::COUNT_SUBJECTS);
  EXPECT_EQ(AggregateSql(a), "COUNT(DISTINCT subject)");
  a.set_kind(v1::STDDEV);
  a.set_field("score");
  EXPECT_EQ(AggregateSql(a), "STDDEV(score)");
}

}  // namespace
}  // namespace fedshare
