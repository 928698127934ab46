// The fedshare-node binary itself: --check-config accepts a good config and
// refuses a malformed or unknown-field one naming the file and line; a node
// stops cleanly on SIGTERM.
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

ProcessOutcome CheckConfig(const TempDir& tmp, const std::string& text) {
  static int n = 0;
  std::string path = tmp.Sub(absl::StrCat("node", ++n, ".textproto"));
  EXPECT_OK(WriteFileAtomic(path, text));
  auto outcome = RunToCompletion({BinaryPath("fedshare-node"), "--config", path, "--check-config"},
                                 path + ".err");
  EXPECT_OK(outcome.status());
  return outcome.ok() ? *outcome : ProcessOutcome();
}

class NodeBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string node_id = pki_.Issue("partner-a", Role::kNode);
    config_ = BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub("data"), node_id);
    *config_.add_datasets() = ProgramOutcomesSchema();
    google::protobuf::TextFormat::PrintToString(config_, &text_);
  }

  TempDir tmp_{"node_binary"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  v1::NodeConfig config_;
  std::string text_;
};

TEST_F(NodeBinaryTest, CheckConfigAcceptsAGoodConfig) {
  ProcessOutcome o = CheckConfig(tmp_, text_);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr("config OK: org partner-a, 1 dataset(s)"));
}

TEST_F(NodeBinaryTest, CheckConfigNamesTheLineOfAnUnknownField) {
  ProcessOutcome o = CheckConfig(tmp_, "org_id: \"partner-a\"\n\ncolour: \"blue\"\n");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr(".textproto:3:"));
  EXPECT_THAT(o.err, HasSubstr("colour"));
}

TEST_F(NodeBinaryTest, CheckConfigNamesTheLineOfMalformedText) {
  ProcessOutcome o = CheckConfig(tmp_, "org_id: \"partner-a\"\ntrust_domain: {\n");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr(".textproto:2:"));
}

TEST_F(NodeBinaryTest, CheckConfigRefusesMissingCertificateFiles) {
  v1::NodeConfig config = config_;
  config.mutable_tls()->set_cert_file(tmp_.Sub("nowhere/cert.pem"));
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  ProcessOutcome o = CheckConfig(tmp_, text);
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_THAT(o.err, HasSubstr("nowhere/cert.pem"));
}

TEST_F(NodeBinaryTest, StopsCleanlyOnSigterm) {
  ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config_, tmp_.Sub("run.textproto")));
  int status = node.process->Signal(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The store is closed properly: a new node opens it at once.
  ASSERT_OK_AND_ASSIGN(NodeProcess again, StartNodeProcess(config_, tmp_.Sub("run.textproto")));
  EXPECT_EQ(WEXITSTATUS(again.process->Signal(SIGTERM)), 0);
}

}  // namespace
}  // namespace fedshare::testing
