// Bytes that are not UTF-8, through the real programs: ingest refuses them
// naming the line and column and writes nothing; later answers grouping by
// the field keep working; and the fedshare CLI never aborts on a node message
// cut mid-character or on a UTF-16 file, but says which line is wrong.
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
  name: "people"
  fields { name: "pid" type: CATEGORY role: SUBJECT }
  fields { name: "program" type: CATEGORY role: DIMENSION }
  fields {
    name: "kind"
    type: CATEGORY
    role: DIMENSION
    categories: [ "a", "b" ]
  }
  fields { name: "score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
)pb";

class BadBytesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::NodeConfig config = partner_.BaseConfig();
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, config.add_datasets()));
    ASSERT_OK(partner_.StartProcess(config));
  }

  // Runs the fedshare CLI against the node's local listener as the operator.
  ProcessOutcome Cli(const std::vector<std::string>& args) { return partner_.OperatorCli(args); }

  std::string Datasets() { return Cli({"datasets"}).out; }

  TempDir tmp_{"bad_bytes"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
};

TEST_F(BadBytesTest, InvalidUtf8IsRefusedAtIngestWithLineAndColumn) {
  std::string csv =
      "pid,program,kind,score\n"
      "p1,alpha,a,1\n"
      "p2,al\xFFpha,a,2\n"
      "p3,alpha,b,3\n";
  ProcessOutcome r = Cli({"ingest", "--dataset", "people", tmp_.Write("bad.csv", csv)});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("line 3"));
  EXPECT_THAT(r.err, HasSubstr("invalid UTF-8 at column 6"));
  EXPECT_THAT(Datasets(), HasSubstr("people: 0 rows"));

  std::string jsonl =
      "{\"pid\":\"p1\",\"program\":\"alpha\",\"kind\":\"a\",\"score\":1}\n"
      "{\"pid\":\"p\xC3\",\"program\":\"alpha\",\"kind\":\"a\",\"score\":1}\n";
  ProcessOutcome j =
      Cli({"ingest", "--dataset", "people", "--format", "jsonl", tmp_.Write("bad.jsonl", jsonl)});
  EXPECT_NE(j.exit_code, 0);
  EXPECT_THAT(j.err, HasSubstr("line 2"));
  EXPECT_THAT(j.err, HasSubstr("invalid UTF-8 at column 10"));
  EXPECT_THAT(Datasets(), HasSubstr("people: 0 rows"));
}

TEST_F(BadBytesTest, InvalidConsentRowsAreRefusedWithLineAndColumn) {
  std::string consent =
      "subject,purpose,event,time\n"
      "p1,program-evaluation,GIVEN,2024-01-01T00:00:00Z\n"
      "p\xE2\x82,program-evaluation,GIVEN,2024-01-01T00:00:00Z\n";
  ProcessOutcome r = Cli({"consent", "import", tmp_.Write("consent.csv", consent)});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("line 3"));
  EXPECT_THAT(r.err, HasSubstr("invalid UTF-8 at column 2"));
}

TEST_F(BadBytesTest, TheCliNeverAbortsOnAMessageCutMidCharacter) {
  // 30 euro signs: 90 bytes, quoted by the node in its error and cut there.
  std::string euros;
  for (int i = 0; i < 30; ++i) euros += "\xE2\x82\xAC";
  std::string csv = absl::StrCat("pid,program,kind,score\np1,alpha,", euros, ",1\n");
  ProcessOutcome r = Cli({"ingest", "--dataset", "people", tmp_.Write("euros.csv", csv)});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // bad input, not a signal
  EXPECT_THAT(r.err, HasSubstr("line 2"));
  EXPECT_THAT(r.err, HasSubstr("kind"));
  EXPECT_THAT(r.err, Not(HasSubstr("\xE2\x82"
                                   "'")));  // no half character before the quote
}

TEST_F(BadBytesTest, TheCliNeverAbortsOnUtf16Input) {
  std::string utf16 = "\xFF\xFE";
  for (char c : std::string("pid,program,kind,score\np1,alpha,a,1\n")) {
    utf16.push_back(c);
    utf16.push_back('\0');
  }
  ProcessOutcome r = Cli({"ingest", "--dataset", "people", tmp_.Write("utf16.csv", utf16)});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // bad input, not a signal
  EXPECT_THAT(r.err, HasSubstr("line 1"));
  EXPECT_THAT(r.err, HasSubstr("UTF-16"));

  ProcessOutcome c = Cli({"consent", "import", tmp_.Write("consent16.csv", utf16)});
  EXPECT_EQ(c.exit_code, 2) << c.err;
  EXPECT_THAT(c.err, HasSubstr("UTF-16"));
}

}  // namespace
}  // namespace fedshare::testing
