// Issue 10 item 10 through the real programs (a fedshare-node process and the
// fedshare CLI): files as spreadsheets save them ingest (';' or tab, a BOM,
// "Participant ID" headers with --map, yes/no, day-first dates); loading the
// same file twice is refused unless --allow-duplicate; --replace leaves
// exactly the new rows and an audit entry; a bad category names the allowed
// ones.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTrustDomain[] = "fedshare.test";

constexpr char kSchema[] = R"pb(
  name: "outcomes"
  fields { name: "participant" type: CATEGORY role: SUBJECT }
  fields {
    name: "program"
    type: CATEGORY
    role: DIMENSION
    categories: [ "alpha", "beta" ]
  }
  fields { name: "cohort_year" type: INT64 role: DIMENSION }
  fields { name: "completed" type: BOOL role: DIMENSION }
  fields { name: "enrolled" type: DATE role: DIMENSION }
)pb";

// As a spreadsheet in a European locale saves it: BOM, ';', CRLF, headers
// for people, Yes/No, day-first dates.
constexpr char kExcelCsv[] =
    "\xEF\xBB\xBF"
    "Participant ID;Program;Cohort Year;Completed;Enrolled\r\n"
    "P-1;alpha;2023;Yes;31/12/2023\r\n"
    "P-2;beta;2024;no;01/02/2024\r\n"
    "P-3;alpha;2024;N;1/3/2024\r\n";

constexpr char kExcelCanonical[] =
    "participant,program,cohort_year,completed,enrolled\n"
    "P-1,alpha,2023,true,2023-12-31\n"
    "P-2,beta,2024,false,2024-02-01\n"
    "P-3,alpha,2024,false,2024-03-01\n";

class CliIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::NodeConfig config = partner_.BaseConfig();
    v1::DatasetSchema outcomes;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, &outcomes));
    *config.add_datasets() = outcomes;
    *config.add_datasets() = outcomes;
    config.mutable_datasets(1)->set_name("outcomes_us");
    ASSERT_OK(partner_.StartProcess(config));
  }

  // Runs the fedshare CLI against the node's local listener as the operator.
  ProcessOutcome Cli(const std::vector<std::string>& args) { return partner_.OperatorCli(args); }

  std::string Export(const std::string& dataset) {
    std::string path = tmp_.Sub(absl::StrCat("export-", ++exports_, ".csv"));
    ProcessOutcome r = Cli({"export", "--dataset", dataset, "--out", path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ReadFile(path).value_or("<no export>");
  }

  // Ingests the Excel file into `outcomes` with the options it needs.
  ProcessOutcome IngestExcel(const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "ingest",        "--dataset", "outcomes", "--map", "Participant ID=participant",
        "--date-format", "%d/%m/%Y"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(path);
    return Cli(args);
  }

  TempDir tmp_{"cli_ingest"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
  int exports_ = 0;
};

TEST_F(CliIngestTest, SemicolonCsvWithBomAndExcelHeadersIngestsWithMap) {
  ProcessOutcome r = IngestExcel(tmp_.Write("excel.csv", kExcelCsv));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote 3 rows to outcomes (3 new subjects)\n");
  EXPECT_EQ(Export("outcomes"), kExcelCanonical);

  // Without the mapping the header names no subject column, and says how to map it.
  ProcessOutcome unmapped = Cli({"ingest", "--dataset", "outcomes_us", "--date-format", "%d/%m/%Y",
                                 tmp_.Write("excel2.csv", kExcelCsv)});
  EXPECT_EQ(unmapped.exit_code, 2);
  EXPECT_THAT(unmapped.err, HasSubstr("has no field 'Participant ID'"));
  EXPECT_THAT(unmapped.err, HasSubstr("--map \"Participant ID=FIELD\""));

  // Tab-separated, month-first, detected without --delimiter.
  const std::string tabbed =
      "participant\tPROGRAM\tcohort year\tcompleted\tenrolled\n"
      "U-1\tbeta\t2022\tY\t12/31/2022\n";
  ProcessOutcome us = Cli({"ingest", "--dataset", "outcomes_us", "--date-format", "%m/%d/%Y",
                           tmp_.Write("us.tsv.csv", tabbed)});
  ASSERT_EQ(us.exit_code, 0) << us.err;
  EXPECT_EQ(Export("outcomes_us"),
            "participant,program,cohort_year,completed,enrolled\nU-1,beta,2022,true,2022-12-31\n");

  // A date in the wrong order says which form was expected.
  ProcessOutcome wrong_order =
      Cli({"ingest", "--dataset", "outcomes_us", "--delimiter", "tab", "--allow-duplicate",
           "--date-format", "%d/%m/%Y", tmp_.Write("us2.csv", tabbed)});
  EXPECT_EQ(wrong_order.exit_code, 2);
  EXPECT_THAT(wrong_order.err, HasSubstr("'12/31/2022' (use %d/%m/%Y)"));

  // A separator detection cannot make (a pipe) reads the header as one
  // column; the error names the delimiter to pass, not a --map.
  ProcessOutcome piped = Cli({"ingest", "--dataset", "outcomes_us",
                              tmp_.Write("piped.csv", "participant|program\nU-2|beta\n")});
  EXPECT_EQ(piped.exit_code, 2);
  EXPECT_THAT(piped.err, HasSubstr("if the file separates columns with |, pass --delimiter '|'"));
  EXPECT_THAT(piped.err, Not(HasSubstr("--map")));
}

TEST_F(CliIngestTest, TheSameFileTwiceIsRefusedUnlessAllowed) {
  const std::string path = tmp_.Write("excel.csv", kExcelCsv);
  ASSERT_EQ(IngestExcel(path, {"--idempotency-key", "k1"}).exit_code, 0);

  // A retry with the same idempotency key still reports the earlier outcome.
  ProcessOutcome retry = IngestExcel(path, {"--idempotency-key", "k1"});
  EXPECT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_THAT(retry.out, HasSubstr("already ingested earlier with idempotency key k1"));

  ProcessOutcome again = IngestExcel(path);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(again.err, HasSubstr("already loaded into dataset 'outcomes'"));
  EXPECT_THAT(again.err, HasSubstr("--allow-duplicate"));
  EXPECT_EQ(Export("outcomes"), kExcelCanonical);

  ProcessOutcome allowed = IngestExcel(path, {"--allow-duplicate"});
  ASSERT_EQ(allowed.exit_code, 0) << allowed.err;
  EXPECT_EQ(allowed.out, "wrote 3 rows to outcomes (0 new subjects)\n");
  EXPECT_THAT(Cli({"datasets"}).out, HasSubstr("outcomes: 6 rows, 3 subjects"));
}

TEST_F(CliIngestTest, ReplaceLeavesExactlyTheNewRowsAndAnAuditEntry) {
  ASSERT_EQ(IngestExcel(tmp_.Write("january.csv", kExcelCsv)).exit_code, 0);
  const std::string february =
      "Participant ID;Program;Cohort Year;Completed;Enrolled\n"
      "P-2;alpha;2024;yes;01/02/2024\n"
      "P-9;beta;2025;no;15/01/2025\n";
  ProcessOutcome r = IngestExcel(tmp_.Write("february.csv", february), {"--replace"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "replaced the 3 rows of outcomes with 2 rows (1 new subjects); the replace is "
            "recorded in the audit log\n");
  EXPECT_EQ(Export("outcomes"),
            "participant,program,cohort_year,completed,enrolled\n"
            "P-2,alpha,2024,true,2024-02-01\n"
            "P-9,beta,2025,false,2025-01-15\n");
  EXPECT_THAT(Cli({"datasets"}).out, HasSubstr("outcomes: 2 rows, 2 subjects"));

  ProcessOutcome audit = Cli({"audit", "show"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("ingest-replace"));
  EXPECT_THAT(audit.out, HasSubstr("replaced 3 rows with 2 rows from a file with SHA-256 "));
  EXPECT_THAT(audit.out, HasSubstr("spiffe://fedshare.test/org/partner-a/operator/olga"));

  // The replaced month's file no longer counts as loaded; the new one does.
  EXPECT_EQ(IngestExcel(tmp_.Sub("february.csv")).exit_code, 1);
  EXPECT_EQ(IngestExcel(tmp_.Sub("january.csv")).exit_code, 0);
}

TEST_F(CliIngestTest, BadCategoryListsTheAllowedValues) {
  const std::string bad =
      "participant,program,cohort_year,completed,enrolled\n"
      "p1,gamma,2024,yes,2024-01-01\n";
  ProcessOutcome r = Cli({"ingest", "--dataset", "outcomes", tmp_.Write("bad.csv", bad)});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("line 2, column program: unknown category: 'gamma' is not a "
                               "declared value of program (allowed: alpha, beta)"));
  EXPECT_THAT(Cli({"datasets"}).out, HasSubstr("outcomes: 0 rows"));

  ProcessOutcome bad_map = Cli(
      {"ingest", "--dataset", "outcomes", "--map", "Participant ID", tmp_.Write("bad2.csv", bad)});
  EXPECT_EQ(bad_map.exit_code, 2);
  EXPECT_THAT(bad_map.err, HasSubstr("COLUMN=FIELD"));
  ProcessOutcome bad_field =
      Cli({"ingest", "--dataset", "outcomes", "--map", "X=nope", tmp_.Write("bad3.csv", bad)});
  EXPECT_EQ(bad_field.exit_code, 2);
  EXPECT_THAT(bad_field.err, HasSubstr("has no field 'nope'"));
  EXPECT_THAT(bad_field.err, Not(HasSubstr("wrote")));
}

}  // namespace
}  // namespace fedshare::testing
