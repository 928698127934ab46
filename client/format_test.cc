#include "client/format.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"

namespace fedshare::client {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

v1::AggregateResult SmallResult() {
  return Parse<v1::AggregateResult>(R"pb(
    query_id: "q1"
    org_id: "partner-a"
    columns: [ "program", "count", "avg(score)" ]
    cells {
      key { string_value: "arts" }
      values { value: 42 count: 42 }
      values { value: 71.25 count: 42 sum: 2992.5 }
    }
    cells {
      key { string_value: "sports" }
      values { value: 17 count: 17 }
      values { value: 65 count: 17 sum: 1105 }
    }
    cells {
      key { string_value: "music" }
      withheld: true
      withheld_rule: "min-subjects"
    }
    unlisted_withheld_cells: 2
    withholdings { rule: "min-subjects" reason: "fewer than 10 subjects" cells: 3 }
    answered_at_unix_ms: 1700000000000
  )pb");
}

TEST(ParseOutputFormatTest, AcceptsTheThreeNames) {
  ASSERT_OK_AND_ASSIGN(OutputFormat table, ParseOutputFormat("table"));
  EXPECT_EQ(table, OutputFormat::kTable);
  ASSERT_OK_AND_ASSIGN(OutputFormat csv, ParseOutputFormat("CSV"));
  EXPECT_EQ(csv, OutputFormat::kCsv);
  ASSERT_OK_AND_ASSIGN(OutputFormat json, ParseOutputFormat("json"));
  EXPECT_EQ(json, OutputFormat::kJson);
  EXPECT_THAT(ParseOutputFormat("xml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("use table, csv or json")));
}

TEST(FormatResultTest, TableNamesTheReceipt) {
  v1::AggregateResult result;
  result.add_columns("count");
  result.add_cells()->add_values()->set_value(12);
  result.mutable_receipt()->set_org_id("partner-a");
  result.mutable_receipt()->set_audit_index(7);
  result.mutable_receipt()->set_entry_hash(std::string("\x00\x01\xab\xcd", 4) +
                                           std::string(28, '\x11'));
  EXPECT_THAT(FormatResult(result, OutputFormat::kTable),
              HasSubstr("receipt: audit entry 7 of partner-a, sha256 0001abcd11111111...\n"));
  result.clear_receipt();
  EXPECT_THAT(FormatResult(result, OutputFormat::kTable), Not(HasSubstr("receipt")));
}

TEST(FormatResultTest, AlignedTable) {
  EXPECT_EQ(FormatResult(SmallResult(), OutputFormat::kTable),
            "program  count  avg(score)\n"
            "arts        42       71.25\n"
            "sports      17       65.00\n"
            "music    withheld (min-subjects)\n"
            "withheld by min-subjects: 3 cells (fewer than 10 subjects)\n"
            "withheld and not listed: 2 cells (their groups are not public)\n");
}

TEST(FormatResultTest, WholeFiguresPrintAsIntegersAndSmallOnesKeepFourDigits) {
  v1::AggregateResult r = Parse<v1::AggregateResult>(R"pb(
    columns: [ "sum(x)", "variance(y)", "count_subjects" ]
    cells {
      values { value: 1200 }
      values { value: 0.012341 }
      values { value: 11 }
    }
  )pb");
  EXPECT_EQ(FormatResult(r, OutputFormat::kTable),
            "sum(x)  variance(y)  count_subjects\n"
            "  1200      0.01234              11\n");
}

TEST(FormatResultTest, EmptyResultSaysSo) {
  v1::AggregateResult r = Parse<v1::AggregateResult>(R"pb(columns: [ "count" ])pb");
  EXPECT_EQ(FormatResult(r, OutputFormat::kTable), "count\n(no cells)\n");
}

v1::AggregateResult HistogramResult() {
  return Parse<v1::AggregateResult>(R"pb(
    columns: [ "region", "histogram(age)" ]
    cells {
      key { string_value: "north" }
      values {
        value: 30
        bins: [ 10, 0, 20, 0 ]
        withheld_bins: 3
      }
    }
    cells {
      key { string_value: "south" }
      withheld: true
      withheld_rule: "min-subjects"
    }
    withholdings { rule: "histogram-bin" cells: 1 }
  )pb");
}

TEST(FormatResultTest, HistogramBinsCarryTheirEdges) {
  const v1::AggregateResult r = HistogramResult();
  const auto question = Parse<v1::AggregateQuery>(R"pb(
    group_by: "region"
    aggregates { kind: HISTOGRAM field: "age" lo: 0 hi: 100 bins: 4 }
  )pb");
  EXPECT_EQ(FormatResult(r, OutputFormat::kTable, &question),
            "region  histogram(age)\n"
            "north   [0,25) 10, [25,50) 0, [50,75) 20, [75,100) -\n"
            "south   withheld (min-subjects)\n"
            "- histogram bin withheld\n"
            "withheld by histogram-bin: 1 cell\n");
  // One CSV column per bin, named by its edges; a withheld bin is empty.
  EXPECT_EQ(FormatResult(r, OutputFormat::kCsv, &question),
            "region,\"histogram(age) [0,25)\",\"histogram(age) [25,50)\","
            "\"histogram(age) [50,75)\",\"histogram(age) [75,100)\",withheld\r\n"
            "north,10,0,20,,\r\n"
            "south,,,,,min-subjects\r\n");
  EXPECT_EQ(ChartResult(r, &question),
            "histogram(age): north\n"
            "  [0,25)    ####################                      10\n"
            "  [25,50)                                             0\n"
            "  [50,75)   ########################################  20\n"
            "  [75,100)  withheld (histogram-bin)\n"
            "\n"
            "histogram(age): south  withheld (min-subjects)\n"
            "withheld bins have no bar\n"
            "withheld by histogram-bin: 1 cell\n");
}

TEST(FormatResultTest, HistogramWithoutTheQuestionNumbersItsBins) {
  EXPECT_EQ(FormatResult(HistogramResult(), OutputFormat::kCsv),
            "region,histogram(age) bin 1,histogram(age) bin 2,histogram(age) bin 3,"
            "histogram(age) bin 4,withheld\r\n"
            "north,10,0,20,,\r\n"
            "south,,,,,min-subjects\r\n");
}

TEST(FormatResultTest, CsvQuotesKeysWithCommasAndQuotes) {
  v1::AggregateResult r = Parse<v1::AggregateResult>(R"pb(
    columns: [ "program", "count", "avg(score)" ]
    cells {
      key { string_value: "Smith, Jones" }
      values { value: 12 }
      values { value: 0.1 }
    }
    cells {
      key { string_value: "say \"hi\"" }
      values { value: 10 }
      values { value: 2.5 }
    }
    cells {
      key { string_value: "two\nlines" }
      withheld: true
      withheld_rule: "dominance"
    }
  )pb");
  EXPECT_EQ(FormatResult(r, OutputFormat::kCsv),
            "program,count,avg(score),withheld\r\n"
            "\"Smith, Jones\",12,0.1,\r\n"
            "\"say \"\"hi\"\"\",10,2.5,\r\n"
            "\"two\nlines\",,,dominance\r\n");
}

TEST(FormatResultTest, JsonParsesBackToTheSameMessage) {
  const v1::AggregateResult original = SmallResult();
  const std::string json = FormatResult(original, OutputFormat::kJson);
  EXPECT_THAT(json, HasSubstr("\"unlisted_withheld_cells\":2"));  // proto field names
  EXPECT_THAT(json, HasSubstr("\"partial\":false"));              // defaults printed
  EXPECT_THAT(json, Not(HasSubstr("unlistedWithheldCells")));
  v1::AggregateResult parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, original))
      << parsed.ShortDebugString();
}

v1::FederatedAggregateResponse Federated() {
  return Parse<v1::FederatedAggregateResponse>(R"pb(
    coverage { org_id: "a" state: ANSWERED released_cells: 2 withheld_cells: 1 }
    coverage { org_id: "b" state: ANSWERED released_cells: 2 }
    coverage { org_id: "c" state: REFUSED reason: "no agreement permits purpose 'marketing'" }
    combined {
      columns: [ "program", "count", "avg(score)" ]
      cells {
        key { string_value: "arts" }
        values { value: 75 }
        values { value: 70.5 }
        partners: 2
      }
      cells {
        key { string_value: "music" }
        values { value: 12 }
        values { value: 3.14159 }
        partial: true
        partners: 1
      }
      withholdings { rule: "min-subjects" reason: "fewer than 10 subjects" cells: 1 }
    }
  )pb");
}

TEST(FormatFederatedTest, CoverageThenCombinedTable) {
  EXPECT_EQ(FormatFederated(Federated(), OutputFormat::kTable),
            "coverage: 2 of 3 partners answered\n"
            "partner  state     released  withheld  reason\n"
            "a        answered         2         1\n"
            "b        answered         2         0\n"
            "c        refused                       no agreement permits purpose 'marketing'\n"
            "\n"
            "combined:\n"
            "program  count  avg(score)  partners\n"
            "arts        75       70.50         2\n"
            "music       12        3.14         1  *\n"
            "* partial: covers 1 of 3 partners\n"
            "withheld by min-subjects: 1 cell (fewer than 10 subjects)\n");
}

TEST(FormatFederatedTest, PartialCellsWithDifferentCoverageShowTheRange) {
  v1::FederatedAggregateResponse response = Federated();
  v1::Cell* arts = response.mutable_combined()->mutable_cells(0);
  arts->set_partial(true);
  EXPECT_THAT(FormatFederated(response, OutputFormat::kTable),
              HasSubstr("arts        75       70.50         2  *\n"
                        "music       12        3.14         1  *\n"
                        "* partial: covers 1 to 2 of 3 partners (see the partners column)\n"));
}

TEST(FormatFederatedTest, CsvIsCoverageThenTheCombinedTableWithPartialAndPartners) {
  EXPECT_EQ(FormatFederated(Federated(), OutputFormat::kCsv),
            "# coverage: 2 of 3 partners answered\r\n"
            "# a: answered\r\n"
            "# b: answered\r\n"
            "# c: refused: no agreement permits purpose 'marketing'\r\n"
            "program,count,avg(score),withheld,partial,partners\r\n"
            "arts,75,70.5,,false,2\r\n"
            "music,12,3.14159,,true,1\r\n");
}

TEST(FormatFederatedTest, JsonParsesAndCoverageStandsAlone) {
  const v1::FederatedAggregateResponse original = Federated();
  v1::FederatedAggregateResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  FormatFederated(original, OutputFormat::kJson), &parsed)
                  .ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, original));

  v1::FederatedAggregateResponse coverage_only;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  FormatCoverage(original, OutputFormat::kJson), &coverage_only)
                  .ok());
  EXPECT_EQ(coverage_only.coverage_size(), 3);
  EXPECT_EQ(coverage_only.coverage(2).state(), v1::PartnerCoverage::REFUSED);
  EXPECT_EQ(FormatCoverage(original, OutputFormat::kCsv),
            "partner,state,released,withheld,reason\r\n"
            "a,answered,2,1,\r\n"
            "b,answered,2,0,\r\n"
            "c,refused,0,0,no agreement permits purpose 'marketing'\r\n");
}

TEST(FormatFederatedTest, PartnerTablesFollowTheCombinedOne) {
  v1::FederatedAggregateResponse response = Federated();
  v1::AggregateResult* a = response.add_partners();
  *a = SmallResult();
  a->set_org_id("a");
  const std::string out = FormatFederated(response, OutputFormat::kTable);
  EXPECT_THAT(out,
              HasSubstr("\npartner a:\nprogram  count  avg(score)\narts        42       71.25\n"));
}

// Past kPartnersListed partners a table names only those that did not
// answer and counts the rest; --all-partners (all_partners) lists them all.
TEST(FormatFederatedTest, ManyPartnersAreCountedAndTheMissingOnesNamed) {
  v1::FederatedAggregateResponse response = Federated();
  response.clear_coverage();
  const int asked = kPartnersListed + 5;
  for (int i = 0; i < asked; ++i) {
    v1::PartnerCoverage* c = response.add_coverage();
    c->set_org_id(absl::StrCat("org-", i));
    c->set_state(i == 3    ? v1::PartnerCoverage::UNREACHABLE
                 : i == 17 ? v1::PartnerCoverage::REFUSED
                           : v1::PartnerCoverage::ANSWERED);
    if (i == 3) c->set_reason("connection refused");
    if (c->state() == v1::PartnerCoverage::ANSWERED) c->set_released_cells(2);
  }
  v1::AggregateResult* own = response.add_partners();
  *own = SmallResult();
  own->set_org_id("org-5");

  const std::string out = FormatFederated(response, OutputFormat::kTable);
  EXPECT_THAT(
      out, HasSubstr(absl::StrCat("coverage: ", asked - 2, " of ", asked, " partners answered\n")));
  EXPECT_THAT(out, ContainsRegex("\norg-3 +unreachable +connection refused\n"));
  EXPECT_THAT(out, ContainsRegex("\norg-17 +refused\n"));
  EXPECT_THAT(out, HasSubstr(absl::StrCat(asked - 2,
                                          " partner(s) answered, not listed one by one (more "
                                          "than 20 asked): --all-partners lists each")));
  EXPECT_THAT(out, HasSubstr("1 partner answer(s) released directly, left out here"));
  EXPECT_THAT(out, HasSubstr("\ncombined:\n"));
  EXPECT_THAT(out, Not(HasSubstr("org-4 ")));
  EXPECT_THAT(out, Not(HasSubstr("partner org-5:")));

  const std::string all = FormatFederated(response, OutputFormat::kTable, nullptr, true);
  for (int i = 0; i < asked; ++i) EXPECT_THAT(all, HasSubstr(absl::StrCat("org-", i, " ")));
  EXPECT_THAT(all, HasSubstr("\npartner org-5:\n"));
  EXPECT_THAT(all, Not(HasSubstr("not listed one by one")));

  // Every partner answering: no failure table, the count alone.
  for (v1::PartnerCoverage& c : *response.mutable_coverage()) {
    c.set_state(v1::PartnerCoverage::ANSWERED);
  }
  const std::string answered = FormatFederated(response, OutputFormat::kTable);
  EXPECT_THAT(answered, Not(HasSubstr("partner  state")));
  EXPECT_THAT(answered, HasSubstr(absl::StrCat(asked, " partner(s) answered, not listed")));
}

// Partners that applied different filters (their grids snap a range
// differently) are grouped by filter, one line each, named while few and
// counted past kPartnersListed; one filter for all is said once.
TEST(FormatFederatedTest, DifferentFiltersAreGroupedWithTheirPartners) {
  v1::FederatedAggregateResponse response = Federated();
  response.clear_coverage();
  const int asked = kPartnersListed + 6;
  for (int i = 0; i < asked; ++i) {
    v1::PartnerCoverage* c = response.add_coverage();
    c->set_org_id(absl::StrCat("org-", i));
    c->set_state(i == 9 ? v1::PartnerCoverage::UNREACHABLE : v1::PartnerCoverage::ANSWERED);
    // One that did not answer applied nothing and is left out.
    const char* applied = i == 9              ? "age >= 0"
                          : i == 4 || i == 11 ? "age >= 10 AND age < 30"
                          : i == 7            ? ""
                                              : "age >= 15 AND age < 25";
    c->set_applied_where_text(applied);
  }
  const std::string out = FormatFederated(response, OutputFormat::kTable);
  EXPECT_THAT(out, HasSubstr(absl::StrCat("as applied by ", asked - 4,
                                          " partners: age >= 15 AND age < 25\n"
                                          "as applied by org-4, org-11: age >= 10 AND age < 30\n"
                                          "as applied by org-7: (no filter)\n")));
  EXPECT_THAT(out, Not(HasSubstr("age >= 0")));
  EXPECT_THAT(out, Not(HasSubstr("as applied by org-0")));

  // A small federation names every partner of each filter ...
  response.mutable_coverage()->DeleteSubrange(5, asked - 5);
  EXPECT_THAT(FormatFederated(response, OutputFormat::kTable),
              HasSubstr("\nas applied by org-0, org-1, org-2, org-3: age >= 15 AND age < 25\n"
                        "as applied by org-4: age >= 10 AND age < 30\n"));
  // ... and says a filter all of them applied once.
  response.mutable_coverage(4)->set_applied_where_text("age >= 15 AND age < 25");
  const std::string same = FormatFederated(response, OutputFormat::kTable);
  EXPECT_THAT(same, HasSubstr("\nas applied: age >= 15 AND age < 25\n"));
  EXPECT_THAT(same, Not(HasSubstr("as applied by")));
}

TEST(FormatFederatedTest, ChartMarksPartialAndWithheldCells) {
  v1::FederatedAggregateResponse r = Federated();
  v1::Cell* withheld = r.mutable_combined()->add_cells();
  withheld->add_key()->set_string_value("dance");
  withheld->set_withheld(true);
  withheld->set_withheld_rule("min-subjects");
  EXPECT_EQ(ChartFederated(r),
            "coverage: 2 of 3 partners answered\n"
            "  c: refused (no agreement permits purpose 'marketing')\n"
            "\n"
            "count\n"
            "  arts   ########################################  75\n"
            "  music  ######                                    12 *\n"
            "  dance  withheld (min-subjects)\n"
            "\n"
            "avg(score)\n"
            "  arts   ########################################  70.50\n"
            "  music  ##                                        3.14 *\n"
            "  dance  withheld (min-subjects)\n"
            "* partial: not every answering partner (of 3 asked) is in this figure\n"
            "withheld by min-subjects: 1 cell (fewer than 10 subjects)\n");
}

}  // namespace
}  // namespace fedshare::client
