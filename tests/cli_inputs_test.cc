// Issue 10 items 6, 9 and 12 through the real programs: inputs that were
// silently accepted are refused or warned about; refusals carry
// google.rpc.ErrorInfo and the CLI prints the rule; wrong listeners,
// port-less addresses, directories and unparsable requests are named;
// --version, `fedshare completion bash` and unknown commands.
#include <signal.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "policy/refusal.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

class CliInputsTest : public ::testing::Test {
 protected:
  ProcessOutcome Run(const std::vector<std::string>& argv) { return RunProcess(tmp_, argv); }
  ProcessOutcome Cli(const std::vector<std::string>& args) { return RunCli(tmp_, args); }
  void StartNode() {
    node_id_ = pki_.Issue("partner-a", Role::kNode);
    operator_ = pki_.Issue("partner-a", Role::kOperator, "olga");
    config_ = BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub("data"), node_id_);
    *config_.add_datasets() = ProgramOutcomesSchema();
    *config_.add_agreements() = OpenAgreement("open-foundation", "foundation");
    config_path_ = tmp_.Sub("node.textproto");
    ASSERT_OK_AND_ASSIGN(node_, StartNodeProcess(config_, config_path_));
  }

  TempDir tmp_{"cli_inputs"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::string node_id_, operator_, config_path_;
  v1::NodeConfig config_;
  NodeProcess node_;
};

TEST_F(CliInputsTest, VersionCompletionAndUnknownCommands) {
  ProcessOutcome cli = Cli({"--version"});
  EXPECT_EQ(cli.exit_code, 0);
  EXPECT_THAT(cli.out, HasSubstr("fedshare 0."));
  ProcessOutcome node = Run({BinaryPath("fedshare-node"), "--version"});
  EXPECT_EQ(node.exit_code, 0);
  EXPECT_THAT(node.out, HasSubstr("fedshare-node 0."));

  ProcessOutcome unknown = Cli({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command 'frobnicate'"));
  ProcessOutcome nested = Cli({"certs", "frob"});
  EXPECT_EQ(nested.exit_code, 2);
  EXPECT_THAT(nested.err, HasSubstr("fedshare certs: unknown command 'frob'; commands: ca, issue"));

  ProcessOutcome completion = Cli({"completion", "bash"});
  ASSERT_EQ(completion.exit_code, 0) << completion.err;
  std::string script = tmp_.Write("completion.bash", completion.out);
  EXPECT_EQ(Run({"/bin/bash", "-n", script}).exit_code, 0);
  for (const char* command : {"certs", "status", "query", "consent", "audit", "completion"}) {
    EXPECT_THAT(completion.out, HasSubstr(command));
  }
  // The script completes: "fedshare ce" gives certs, "certs issue --d" --days and --dns.
  ProcessOutcome completed = Run(
      {"/bin/bash", "-c",
       absl::StrCat("source ", script,
                    "; COMP_WORDS=(fedshare ce); COMP_CWORD=1; _fedshare; echo \"${COMPREPLY[*]}\";"
                    " COMP_WORDS=(fedshare certs issue --d); COMP_CWORD=3; _fedshare;"
                    " echo \"${COMPREPLY[*]}\"")});
  EXPECT_EQ(completed.out, "certs\n--days --dns\n");
}

TEST_F(CliInputsTest, CertificateDaysMustBePositive) {
  for (const char* days : {"0", "-1"}) {
    std::string out = tmp_.Sub(absl::StrCat("cert", days));
    ProcessOutcome r = Cli({"certs", "issue", "--ca", pki_.ca_dir(), "--org", "partner-a", "--role",
                            "node", "--out", out, "--days", days});
    EXPECT_EQ(r.exit_code, 2) << days;
    EXPECT_THAT(r.err, HasSubstr("days must be 1 to 36500"));
    EXPECT_FALSE(ReadFile(out + "/cert.pem").ok());
  }
}

TEST_F(CliInputsTest, AddressesWithoutPortAndDirectoriesAreNamed) {
  ProcessOutcome r = Cli({"status", "--node", "localhost", "--identity", tmp_.path()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--node localhost needs a port"));
  ProcessOutcome dir =
      Run({BinaryPath("fedshare-node"), "--config", tmp_.path(), "--check-config"});
  EXPECT_EQ(dir.exit_code, 2);
  EXPECT_THAT(dir.err, HasSubstr("is a directory, not a file"));
}

TEST_F(CliInputsTest, ConsentImportRefusesEndBeforeStartAndWarnsOfUnknownOrgs) {
  StartNode();
  std::vector<std::string> cli = {"--node",  node_.local_address, "--identity",
                                  operator_, "consent",           "import"};
  std::vector<std::string> swapped = cli;
  swapped.push_back(tmp_.Write("swapped.csv",
                               "subject,purpose,event,time,valid_until,scope\n"
                               "s1,program-evaluation,GIVEN,2024-06-01,2030-01-01,*\n"
                               "s2,program-evaluation,GIVEN,2030-01-01,2024-06-01,*\n"));
  ProcessOutcome refused = Cli(swapped);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr("nothing imported"));
  EXPECT_THAT(refused.err, HasSubstr("line 3, column valid_until"));

  std::vector<std::string> typo = cli;
  typo.push_back(tmp_.Write("typo.csv",
                            "subject,purpose,event,time,valid_until,scope\n"
                            "s1,program-evaluation,GIVEN,2024-06-01,,foundation\n"
                            "s2,program-evaluation,GIVEN,2024-06-01,,foundaton\n"));
  ProcessOutcome warned = Cli(typo);
  EXPECT_EQ(warned.exit_code, 0) << warned.err;
  EXPECT_THAT(warned.out, HasSubstr("read 2 consent events, 2 new"));
  EXPECT_THAT(warned.err, HasSubstr("line 3, column scope: org 'foundaton'"));
  EXPECT_THAT(warned.err, ::testing::Not(HasSubstr("'foundation'")));
}

TEST_F(CliInputsTest, RefusalsCarryErrorInfoAndWrongListenersGetAHint) {
  StartNode();
  std::string foundation = pki_.Issue("foundation", Role::kNode);
  auto client = Connect(node_.peer_address, foundation, kTrustDomain);
  v1::AggregateQuery query;
  query.set_dataset("program_outcomes");
  query.set_purpose("marketing");
  query.add_aggregates()->set_kind(v1::COUNT);
  absl::StatusOr<v1::AggregateResult> answer = client->Aggregate(query);
  ASSERT_EQ(answer.status().code(), absl::StatusCode::kPermissionDenied) << answer.status();
  std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(answer.status());
  ASSERT_TRUE(info.has_value()) << answer.status();
  EXPECT_EQ(info->reason(), "purpose");
  EXPECT_EQ(info->domain(), "fedshare");
  EXPECT_EQ(info->metadata().at("agreement"), "open-foundation");

  ProcessOutcome cli = Cli({"query", "--node", node_.peer_address, "--identity", foundation,
                            "--sql", "SELECT COUNT(*) FROM program_outcomes PURPOSE 'marketing'"});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_THAT(cli.err, HasSubstr("refused: rule purpose; agreement open-foundation"));

  ProcessOutcome wrong = Cli({"status", "--node", node_.peer_address, "--identity", operator_});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err,
              HasSubstr("fedshare: UNIMPLEMENTED: the node does not serve this call here\n"));
  EXPECT_THAT(wrong.err, HasSubstr("this is a peer listener; admin and fan-out calls go to the "
                                   "local listener, default port 7444"));
}

TEST_F(CliInputsTest, UnparsableRequestsAreInvalidArgumentWithAMessage) {
  StartNode();
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  ASSERT_OK_AND_ASSIGN(auto channel,
                       identity::MakeChannel(node_.local_address, Pki::Files(operator_), expect));
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::Slice garbage(std::string("\xff\xff\xff\xff garbage"));
  grpc::ByteBuffer request(&garbage, 1);
  grpc::ByteBuffer response;
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, "/fedshare.v1.AdminService/Status", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   absl::MutexLock lock(&mu);
                   status = s;
                   done = true;
                 });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("not a valid protobuf message"));
}

TEST_F(CliInputsTest, CheckConfigRefusesASchemaChangeTheNodeWouldRefuse) {
  StartNode();
  // A measure's type changed: the running node's store is checked read-only.
  v1::NodeConfig changed = config_;
  for (v1::FieldSchema& f : *changed.mutable_datasets(0)->mutable_fields()) {
    if (f.name() == "outcome_score") f.set_type(v1::FieldSchema::INT64);
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(changed, &text);
  std::string path = tmp_.Write("changed.textproto", text);
  ProcessOutcome running = Run({BinaryPath("fedshare-node"), "--config", path, "--check-config"});
  EXPECT_EQ(running.exit_code, 2) << running.out;
  EXPECT_THAT(running.err, HasSubstr("outcome_score"));
  node_.process->Signal(SIGTERM);
  ProcessOutcome stopped = Run({BinaryPath("fedshare-node"), "--config", path, "--check-config"});
  EXPECT_EQ(stopped.exit_code, 2) << stopped.out;
  EXPECT_EQ(stopped.err, running.err);
  // The unchanged config still passes.
  ProcessOutcome same =
      Run({BinaryPath("fedshare-node"), "--config", config_path_, "--check-config"});
  EXPECT_EQ(same.exit_code, 0) << same.err;
}

}  // namespace
}  // namespace fedshare::testing
