// Issue 3 through the real programs: a fedshare-node process and the fedshare
// CLI. Ingest then export round-trips exactly (CSV and JSONL, with quotes,
// commas, newlines in fields, unicode and empty values); a file with one bad
// row changes nothing and names that row; --skip-invalid writes exactly the
// good rows and saves the rejects; `fedshare datasets` reports counts.

#include <sys/stat.h>

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

constexpr char kTrustDomain[] = "fedshare.test";

constexpr char kSchema[] = R"pb(
  name: "people"
  fields { name: "pid" type: CATEGORY role: SUBJECT }
  fields { name: "name" type: CATEGORY role: PRIVATE }
  fields {
    name: "program"
    type: CATEGORY
    role: DIMENSION
    categories: [ "alpha", "beta" ]
  }
  fields { name: "age" type: INT64 role: DIMENSION }
  fields { name: "score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
  fields { name: "active" type: BOOL role: DIMENSION }
  fields { name: "joined" type: DATE role: DIMENSION }
)pb";

constexpr char kCsv[] =
    "pid,name,program,age,score,active,joined\n"
    "p1,Ana,alpha,34,71.5,true,2024-03-01\n"
    "p2,\"Smith, Jo\",beta,-3,0.1,false,1969-12-31\n"
    "p3,\"She said \"\"hi\"\"\",,,,,\n"
    "p4,\"two\nlines\",alpha,0,100,true,2000-02-29\n"
    "p5,Zoë 名前 🙂,beta,7,3.141592653589793,false,2025-12-31\n"
    "p6,\"\",alpha,1,1e-07,true,\n";

constexpr char kJsonl[] =
    "{\"pid\":\"j1\",\"name\":\"Ana \\\"A\\\" \\\\ x\",\"program\":\"alpha\",\"age\":34,"
    "\"score\":71.5,\"active\":true,\"joined\":\"2024-03-01\"}\n"
    "{\"pid\":\"j2\",\"name\":\"line\\u000anext, comma é 🙂\",\"program\":null,\"age\":null,"
    "\"score\":null,\"active\":null,\"joined\":null}\n";

class CliDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::NodeConfig config = partner_.BaseConfig();
    v1::DatasetSchema people;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, &people));
    *config.add_datasets() = people;
    *config.add_datasets() = people;
    config.mutable_datasets(1)->set_name("people_jsonl");
    ASSERT_OK(partner_.StartProcess(config));
  }

  // Runs the fedshare CLI against the node's local listener as the operator.
  ProcessOutcome Cli(const std::vector<std::string>& args) { return partner_.OperatorCli(args); }

  std::string Export(const std::string& dataset, const std::string& name) {
    std::string path = tmp_.Sub(name);
    ProcessOutcome r = Cli({"export", "--dataset", dataset, "--out", path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(ModeOf(path), 0600) << "people's records, readable by their owner only";
    return ReadFile(path).value_or("<no export>");
  }

  static int ModeOf(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
  }

  TempDir tmp_{"cli_data"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
};

TEST_F(CliDataTest, CsvAndJsonlRoundTripExactly) {
  ProcessOutcome csv = Cli({"ingest", "--dataset", "people", tmp_.Write("people.csv", kCsv)});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_THAT(csv.out, HasSubstr("wrote 6 rows"));
  EXPECT_EQ(Export("people", "people-out.csv"), kCsv);

  ProcessOutcome jsonl =
      Cli({"ingest", "--dataset", "people_jsonl", tmp_.Write("people.jsonl", kJsonl)});
  ASSERT_EQ(jsonl.exit_code, 0) << jsonl.err;
  EXPECT_EQ(Export("people_jsonl", "people-out.jsonl"), kJsonl);

  // Global options may also follow the subcommand.
  ProcessOutcome datasets = Cli({"datasets", "--timeout", "30"});
  ASSERT_EQ(datasets.exit_code, 0) << datasets.err;
  EXPECT_THAT(datasets.out, HasSubstr("people: 6 rows, 6 subjects"));
  EXPECT_THAT(datasets.out, HasSubstr("people_jsonl: 2 rows, 2 subjects"));
}

TEST_F(CliDataTest, OneBadRowChangesNothingAndIsNamed) {
  ASSERT_EQ(Cli({"ingest", "--dataset", "people", tmp_.Write("good.csv", kCsv)}).exit_code, 0);
  std::string bad = std::string("pid,name,program,age,score,active,joined\n") +
                    "q1,Ok,alpha,1,1,true,2020-01-01\n" + "q2,Bad,alpha,1,1000,true,2020-01-01\n" +
                    "q3,Ok,beta,2,2,false,2020-01-02\n";
  ProcessOutcome r = Cli({"ingest", "--dataset", "people", tmp_.Write("bad.csv", bad)});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nothing written"));
  EXPECT_THAT(r.err, HasSubstr("line 3, column score: out of bounds"));
  EXPECT_EQ(Export("people", "after-bad.csv"), kCsv);
}

TEST_F(CliDataTest, UnusableHeaderIsReportedAndChangesNothing) {
  ProcessOutcome r =
      Cli({"ingest", "--dataset", "people", tmp_.Write("header.csv", "pid,nickname\np1,Ana\n")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("nothing written"));
  EXPECT_THAT(r.err, HasSubstr("line 1"));
  EXPECT_THAT(r.err, HasSubstr("nickname"));
  ProcessOutcome consent =
      Cli({"consent", "import", tmp_.Write("consent.csv", "subject,purpose\np1,x\n")});
  EXPECT_EQ(consent.exit_code, 2);
  EXPECT_THAT(consent.err, HasSubstr("nothing imported"));
  ProcessOutcome datasets = Cli({"datasets"});
  EXPECT_THAT(datasets.out, HasSubstr("people: 0 rows"));
}

TEST_F(CliDataTest, SkipInvalidWritesExactlyTheGoodRowsAndSavesTheRejects) {
  const std::string header = "pid,name,program,age,score,active,joined\n";
  const std::string good1 = "q1,Ok,alpha,1,1,true,2020-01-01\n";
  const std::string bad1 = "q2,Bad,gamma,1,1,true,2020-01-01\n";
  const std::string good2 = "q3,\"Ok, too\",beta,2,2,false,2020-01-02\n";
  const std::string bad2 = "q4,Bad,alpha,notanumber,2,false,2020-01-02\n";
  std::string rejects = tmp_.Sub("rejects.csv");
  ProcessOutcome r = Cli({"ingest", "--dataset", "people", "--skip-invalid", "--rejects", rejects,
                          tmp_.Write("mixed.csv", header + good1 + bad1 + good2 + bad2)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("wrote 2 rows"));
  EXPECT_THAT(r.err, HasSubstr("unknown category"));
  EXPECT_THAT(r.err, HasSubstr("wrong type"));
  EXPECT_EQ(Export("people", "after-skip.csv"), header + good1 + good2);
  EXPECT_EQ(ReadFile(rejects).value_or(""), header + bad1 + bad2);
  EXPECT_EQ(ModeOf(rejects), 0600);
}

}  // namespace
}  // namespace fedshare::testing
