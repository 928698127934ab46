// The fedshare-node binary itself: --check-config accepts a good config and
// refuses a malformed or unknown-field one naming the file and line; a node
// stops cleanly on SIGTERM; a second node on a port in use exits 1; a node
// whose own certificate its peers would refuse does not start, and one that
// expires soon says so in `fedshare status`; a killed node's copy of its TLS
// key is removed by the next node to start.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/status_matchers.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTrustDomain[] = "fedshare.test";

std::string TextOf(const v1::NodeConfig& config) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  return text;
}

// Runs fedshare-node on `config` expecting it to fail at start; the outcome,
// or an error if it printed its ready line instead.
absl::StatusOr<ProcessOutcome> StartExpectingFailure(const TempDir& tmp,
                                                     const v1::NodeConfig& config) {
  static int n = 0;
  std::string path = tmp.Sub(absl::StrCat("failing", ++n, ".textproto"));
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(path, TextOf(config)));
  FEDSHARE_ASSIGN_OR_RETURN(
      std::unique_ptr<Subprocess> p,
      Subprocess::Start({BinaryPath("fedshare-node"), "--config", path}, path + ".err"));
  absl::StatusOr<std::string> line = p->ReadLine(absl::Seconds(30));
  if (line.ok()) {
    p->Signal(SIGTERM);
    return absl::InternalError(absl::StrCat("the node started: ", *line));
  }
  int status = p->Wait();
  ProcessOutcome outcome;
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  FEDSHARE_ASSIGN_OR_RETURN(outcome.err, ReadFile(path + ".err"));
  return outcome;
}

ProcessOutcome CheckConfig(const TempDir& tmp, const std::string& text) {
  static int n = 0;
  std::string path = tmp.Sub(absl::StrCat("node", ++n, ".textproto"));
  EXPECT_OK(WriteFileAtomic(path, text));
  auto outcome = RunToCompletion({BinaryPath("fedshare-node"), "--config", path, "--check-config"},
                                 path + ".err");
  EXPECT_OK(outcome.status());
  return outcome.ok() ? *outcome : ProcessOutcome();
}

// The harness itself: a child that hangs is reported with what it printed
// and what its threads wait on, since a hung CLI in a test otherwise shows
// only as silence.
TEST(RunToCompletionTest, ASilentChildIsReportedWithItsOutputAndThreads) {
  TempDir tmp("run_to_completion");
  absl::StatusOr<ProcessOutcome> o =
      RunToCompletion({"/bin/sh", "-c", "echo started; echo complaint >&2; exec sleep 60"},
                      tmp.Sub("sh.err"), absl::Milliseconds(300));
  EXPECT_THAT(o, StatusIs(absl::StatusCode::kDeadlineExceeded,
                          AllOf(HasSubstr("its stdout so far: \"started\n\""),
                                HasSubstr("its stderr: \"complaint\n\""),
                                HasSubstr("its threads: sleep S (sleeping)"))));
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

// TMPDIR set to `path` for this process and its children, until destroyed.
class ScopedTmpdir {
 public:
  explicit ScopedTmpdir(const std::string& path) {
    const char* saved = std::getenv("TMPDIR");
    if (saved != nullptr) saved_ = saved;
    ::setenv("TMPDIR", path.c_str(), 1);
  }
  ~ScopedTmpdir() {
    if (saved_.has_value()) {
      ::setenv("TMPDIR", saved_->c_str(), 1);
    } else {
      ::unsetenv("TMPDIR");
    }
  }

 private:
  std::optional<std::string> saved_;
};

// The fedshare-tls-* folders in `dir`, by name.
std::set<std::string> TlsCopies(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "fedshare-tls-")) names.insert(name);
  }
  return names;
}

// The node's checked copies of its TLS files (TlsMirror), key included, live
// in $TMPDIR: a killed node cannot remove its own, so the next node to start
// does, and never a live node's.
TEST_F(NodeBinaryTest, AKilledNodesKeyCopyIsRemovedByTheNextStartAndALiveOnesIsKept) {
  const std::string tmpdir = tmp_.Sub("tmpdir");
  std::filesystem::create_directory(tmpdir);
  ScopedTmpdir scoped(tmpdir);  // the nodes inherit it
  ASSERT_OK_AND_ASSIGN(std::string key, ReadFile(config_.tls().key_file()));

  std::string killed;
  {
    ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config_, tmp_.Sub("a.textproto")));
    std::set<std::string> copies = TlsCopies(tmpdir);
    ASSERT_EQ(copies.size(), 1u);
    killed = *copies.begin();
    absl::StatusOr<std::string> copy =
        ReadFile(absl::StrCat(tmpdir, "/", killed, "/current/key.pem"));
    ASSERT_OK(copy.status());
    EXPECT_EQ(*copy, key);
    struct stat st;
    ASSERT_EQ(::stat(absl::StrCat(tmpdir, "/", killed).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700);
    node.process->Signal(SIGKILL);
  }
  ASSERT_EQ(TlsCopies(tmpdir), std::set<std::string>{killed}) << "a killed node leaves its copy";
  // Left by an older node (no lock file): removed once a minute old, not younger.
  for (const char* name : {"fedshare-tls-oldold", "fedshare-tls-young1"}) {
    std::filesystem::create_directory(absl::StrCat(tmpdir, "/", name));
    ASSERT_OK(WriteFileAtomic(absl::StrCat(tmpdir, "/", name, "/key.pem"), key));
  }
  std::filesystem::last_write_time(
      tmpdir + "/fedshare-tls-oldold",
      std::filesystem::file_time_type::clock::now() - std::chrono::minutes(2));

  v1::NodeConfig other = config_;
  other.set_data_dir(tmp_.Sub("data-b"));
  ASSERT_OK_AND_ASSIGN(NodeProcess b, StartNodeProcess(other, tmp_.Sub("b.textproto")));
  std::set<std::string> copies = TlsCopies(tmpdir);
  EXPECT_EQ(copies.count(killed), 0u) << "the killed node's copy is removed";
  EXPECT_EQ(copies.count("fedshare-tls-oldold"), 0u);
  EXPECT_EQ(copies.count("fedshare-tls-young1"), 1u);
  ASSERT_EQ(copies.size(), 2u);
  copies.erase("fedshare-tls-young1");
  const std::string live = *copies.begin();

  ASSERT_OK_AND_ASSIGN(NodeProcess again, StartNodeProcess(config_, tmp_.Sub("a.textproto")));
  EXPECT_EQ(TlsCopies(tmpdir).count(live), 1u) << "a live node's copy is kept";
  EXPECT_EQ(TlsCopies(tmpdir).size(), 3u);
  EXPECT_EQ(WEXITSTATUS(again.process->Signal(SIGTERM)), 0);
  EXPECT_EQ(WEXITSTATUS(b.process->Signal(SIGTERM)), 0);
  EXPECT_EQ(TlsCopies(tmpdir), std::set<std::string>{"fedshare-tls-young1"})
      << "a clean stop removes the node's copy";
}

TEST_F(NodeBinaryTest, ASecondNodeOnAPortInUseExitsWithPortInUse) {
  ASSERT_OK_AND_ASSIGN(NodeProcess first, StartNodeProcess(config_, tmp_.Sub("first.textproto")));
  for (bool peer : {true, false}) {
    v1::NodeConfig second = config_;
    second.set_data_dir(tmp_.Sub(peer ? "data-peer" : "data-local"));
    if (peer) {
      second.set_peer_address(first.peer_address);
    } else {
      second.set_local_address(first.local_address);
    }
    ASSERT_OK_AND_ASSIGN(ProcessOutcome o, StartExpectingFailure(tmp_, second));
    EXPECT_EQ(o.exit_code, 1) << o.err;
    EXPECT_THAT(o.err, HasSubstr("port in use"));
    EXPECT_THAT(o.err, HasSubstr(peer ? first.peer_address : first.local_address));
  }
  EXPECT_EQ(WEXITSTATUS(first.process->Signal(SIGTERM)), 0);
}

class OwnCertificateTest : public NodeBinaryTest {
 protected:
  // config_ with the node certificate `options` describes (org partner-a,
  // role node unless set).
  v1::NodeConfig WithCertificate(const std::string& label, identity::IssueOptions options) {
    if (options.org.empty()) options.org = "partner-a";
    std::string dir = pki_.IssueWith(label, options);
    v1::NodeConfig config = config_;
    config.mutable_tls()->set_cert_file(dir + "/cert.pem");
    config.mutable_tls()->set_key_file(dir + "/key.pem");
    config.mutable_tls()->set_ca_file(dir + "/ca.pem");
    return config;
  }

  // Both --check-config (exit 2) and a real start (exit 1) refuse `config`
  // with a message holding every one of `parts`.
  void ExpectRefused(const v1::NodeConfig& config, const std::vector<std::string>& parts) {
    ProcessOutcome check = CheckConfig(tmp_, TextOf(config));
    EXPECT_EQ(check.exit_code, 2) << check.out;
    ASSERT_OK_AND_ASSIGN(ProcessOutcome start, StartExpectingFailure(tmp_, config));
    EXPECT_EQ(start.exit_code, 1) << start.err;
    for (const std::string& part : parts) {
      EXPECT_THAT(check.err, HasSubstr(part));
      EXPECT_THAT(start.err, HasSubstr(part));
    }
  }
};

TEST_F(OwnCertificateTest, AnExpiredCertificateRefusesToStartWithTheDateAndTheRenewCommand) {
  identity::IssueOptions options;
  options.not_after = absl::FromCivil(absl::CivilSecond(2026, 1, 2, 3, 4, 5), absl::UTCTimeZone());
  if (options.not_after > absl::Now()) GTEST_SKIP() << "the machine's clock is before 2026";
  options.not_before = *options.not_after - absl::Hours(24 * 10);
  v1::NodeConfig config = WithCertificate("expired", options);
  ExpectRefused(config, {"expired at 2026-01-02T03:04:05Z",
                         "fedshare certs issue --ca CA_DIR --org partner-a --role node --out "});
}

TEST_F(OwnCertificateTest, ACertificateNotYetValidRefusesToStart) {
  identity::IssueOptions options;
  options.not_before = absl::Now() + absl::Hours(48);
  ExpectRefused(WithCertificate("future", options),
                {"is not valid before", "fedshare certs issue"});
}

TEST_F(OwnCertificateTest, ACertificateOfAnotherOrgRefusesToStart) {
  identity::IssueOptions options;
  options.org = "partner-b";
  ExpectRefused(WithCertificate("other-org", options),
                {"names spiffe://fedshare.test/org/partner-b/node",
                 "needs spiffe://fedshare.test/org/partner-a/node"});
}

TEST_F(OwnCertificateTest, ACertificateOfAPersonRefusesToStart) {
  identity::IssueOptions options;
  options.role = identity::Role::kOperator;
  options.name = "olga";
  ExpectRefused(WithCertificate("person", options),
                {"names spiffe://fedshare.test/org/partner-a/operator/olga"});
}

TEST_F(OwnCertificateTest, AKeyThatIsNotTheCertificatesRefusesToStart) {
  v1::NodeConfig config = WithCertificate("mine", identity::IssueOptions());
  std::string other = pki_.Issue("partner-a", Role::kNode);
  config.mutable_tls()->set_key_file(other + "/key.pem");
  ExpectRefused(config, {"the private key does not belong to the certificate"});
}

TEST_F(OwnCertificateTest, ACertificateExpiringSoonStartsAndStatusWarns) {
  identity::IssueOptions options;
  options.days = 10;
  v1::NodeConfig config = WithCertificate("soon", options);
  ProcessOutcome check = CheckConfig(tmp_, TextOf(config));
  EXPECT_EQ(check.exit_code, 0) << check.err;
  EXPECT_THAT(check.err, HasSubstr("warning: this node's certificate"));
  EXPECT_THAT(check.err, HasSubstr("(in 9 days)"));

  ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config, tmp_.Sub("soon.textproto")));
  std::string operator_id = pki_.Issue("partner-a", Role::kOperator, "olga");
  ProcessOutcome status = RunCliAs(tmp_, operator_id, node.local_address, {"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("warning:       this node's certificate (tls.cert_file "));
  EXPECT_THAT(status.out, HasSubstr("fedshare certs issue --ca CA_DIR --org partner-a"));
  EXPECT_EQ(WEXITSTATUS(node.process->Signal(SIGTERM)), 0);
}

TEST_F(OwnCertificateTest, AHealthyNodeHasNoWarnings) {
  ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config_, tmp_.Sub("ok.textproto")));
  std::string operator_id = pki_.Issue("partner-a", Role::kOperator, "olga");
  ProcessOutcome status = RunCliAs(tmp_, operator_id, node.local_address, {"status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, Not(HasSubstr("warning")));
  EXPECT_EQ(WEXITSTATUS(node.process->Signal(SIGTERM)), 0);
}

}  // namespace
}  // namespace fedshare::testing
