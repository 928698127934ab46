// Issue 12, the fedshare-node binary as operators run it in containers:
// --probe checks health over mTLS with the node's own identity (exit 0/1);
// --log-format json writes one JSON object a line, gRPC's own lines
// included; flags beat environment variables, which beat the config file;
// SIGHUP puts new agreements in force without dropping an open stream.
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedshare/v1/admin.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/identity/channel.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

class NodeOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string node_id = pki_.Issue("partner-a", Role::kNode);
    config_ = BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub("data"), node_id);
    *config_.add_datasets() = ProgramOutcomesSchema();
    std::string text;
    google::protobuf::TextFormat::PrintToString(config_, &text);
    ASSERT_OK(WriteFileAtomic(config_path_, text));
  }

  // Starts fedshare-node with `extra` arguments; waits for its ready line.
  void Start(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {BinaryPath("fedshare-node"), "--config", config_path_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_OK_AND_ASSIGN(node_, Subprocess::Start(argv, log_path_));
    ASSERT_OK_AND_ASSIGN(std::string line, node_->ReadLine(absl::Seconds(30)));
    for (absl::string_view part : absl::StrSplit(line, ' ')) {
      if (absl::ConsumePrefix(&part, "peer=")) peer_address_ = std::string(part);
    }
    ASSERT_FALSE(peer_address_.empty()) << line;
  }

  ProcessOutcome Probe(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {BinaryPath("fedshare-node"), "--config", config_path_,
                                     "--probe"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    absl::StatusOr<ProcessOutcome> o = RunToCompletion(argv, tmp_.Sub("probe.err"));
    EXPECT_OK(o.status());
    return o.ok() ? *o : ProcessOutcome();
  }

  TempDir tmp_{"node_ops"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  v1::NodeConfig config_;
  std::string config_path_ = tmp_.Sub("node.textproto");
  std::string log_path_ = tmp_.Sub("node.log");
  std::unique_ptr<Subprocess> node_;
  std::string peer_address_;
};

TEST_F(NodeOpsTest, ProbeExitsZeroWhileServingAndOneWhenStopped) {
  Start({});
  // The config says port 0, so the probe is told the bound address by flag.
  ProcessOutcome serving = Probe({"--peer-address", peer_address_});
  EXPECT_EQ(serving.exit_code, 0) << serving.err;
  EXPECT_THAT(serving.out, HasSubstr("SERVING"));
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
  ProcessOutcome stopped = Probe({"--peer-address", peer_address_});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_THAT(stopped.err, HasSubstr("probe failed"));
}

TEST_F(NodeOpsTest, JsonLogsAreOneObjectALineIncludingGrpcsOwnLines) {
  Start({"--log-format", "json"});
  // A plaintext client on the mTLS port makes gRPC log a failed handshake.
  std::string host_port = peer_address_.substr(peer_address_.rfind(':') + 1);
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(host_port, &port));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!::write(fd, garbage.data(), garbage.size());
  char buf[256];
  while (::read(fd, buf, sizeof(buf)) > 0) {
  }
  ::close(fd);
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);

  ASSERT_OK_AND_ASSIGN(std::string log, ReadFile(log_path_));
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    ++lines;
    EXPECT_TRUE(absl::StartsWith(line, "{\"time\":\"") && absl::EndsWith(line, "}")) << line;
  }
  EXPECT_GE(lines, 2);
  EXPECT_THAT(log,
              HasSubstr("\"level\":\"info\",\"event\":\"node_started\",\"org\":\"partner-a\""));
  EXPECT_THAT(log, HasSubstr("\"event\":\"node_stopped\""));
  EXPECT_THAT(log, HasSubstr("\"event\":\"grpc\""));
  // No raw gRPC line ("E1130 12:00:00.000 ...") is mixed in.
  EXPECT_THAT(log, ::testing::Not(::testing::ContainsRegex("(^|\n)[EWI][0-9]{4} ")));
}

TEST_F(NodeOpsTest, FlagBeatsEnvironmentWhichBeatsTheConfigFile) {
  std::string from_env = tmp_.Sub("data-env");
  std::string from_flag = tmp_.Sub("data-flag");
  ::setenv("FEDSHARE_DATA_DIR", from_env.c_str(), 1);
  Start({});
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
  EXPECT_TRUE(Exists(from_env));
  EXPECT_FALSE(Exists(tmp_.Sub("data")));

  Start({"--data-dir", from_flag});
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
  ::unsetenv("FEDSHARE_DATA_DIR");
  EXPECT_TRUE(Exists(from_flag));
  EXPECT_FALSE(Exists(tmp_.Sub("data")));

  // A bad override is refused naming where it came from.
  ::setenv("FEDSHARE_PEER_ADDRESS", "no-port", 1);
  absl::StatusOr<ProcessOutcome> bad =
      RunToCompletion({BinaryPath("fedshare-node"), "--config", config_path_, "--check-config"},
                      tmp_.Sub("bad.err"));
  ::unsetenv("FEDSHARE_PEER_ADDRESS");
  ASSERT_OK(bad.status());
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_THAT(bad->err, HasSubstr("FEDSHARE_PEER_ADDRESS"));
}

TEST_F(NodeOpsTest, SighupChangesTheNextDecisionWithoutDroppingAnOpenStream) {
  std::string agreements_path = tmp_.Sub("agreements.textproto");
  ASSERT_OK(WriteFileAtomic(agreements_path, ""));
  v1::NodeConfig config = config_;
  config.set_agreements_file(agreements_path);
  // Only SIGHUP may reload here: the periodic check is an hour away.
  config.mutable_tls()->set_reload_interval_seconds(3600);
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  ASSERT_OK(WriteFileAtomic(config_path_, text));
  std::string local_address;
  {
    std::vector<std::string> argv = {BinaryPath("fedshare-node"), "--config", config_path_};
    ASSERT_OK_AND_ASSIGN(node_, Subprocess::Start(argv, log_path_));
    ASSERT_OK_AND_ASSIGN(std::string line, node_->ReadLine(absl::Seconds(30)));
    for (absl::string_view part : absl::StrSplit(line, ' ')) {
      if (absl::ConsumePrefix(&part, "peer=")) peer_address_ = std::string(part);
      if (absl::ConsumePrefix(&part, "local=")) local_address = std::string(part);
    }
  }
  std::string foundation = pki_.Issue("foundation", Role::kNode);
  std::string op = pki_.Issue("partner-a", Role::kOperator, "olga");
  auto peer = Connect(peer_address_, foundation, kTrustDomain, "partner-a");
  ASSERT_NE(peer, nullptr);
  v1::AggregateQuery query;
  query.set_dataset("program_outcomes");
  query.set_purpose("program-evaluation");
  query.add_aggregates()->set_kind(v1::COUNT);
  EXPECT_THAT(peer->Aggregate(query).status(),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));

  // An operator's ingest stream is open across the reload.
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  ASSERT_OK_AND_ASSIGN(auto channel, identity::MakeChannel(local_address, Pki::Files(op), expect));
  auto admin = v1::AdminService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  v1::IngestResponse ingested;
  std::unique_ptr<grpc::ClientWriter<v1::IngestRequest>> stream =
      admin->Ingest(&context, &ingested);
  v1::IngestRequest first;
  first.set_dataset("program_outcomes");
  first.set_format(v1::CSV);
  first.set_data(
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n");
  ASSERT_TRUE(stream->Write(first));

  v1::AgreementSet permit;
  *permit.add_agreements() = OpenAgreement("foundation-eval", "foundation");
  std::string permit_text;
  google::protobuf::TextFormat::PrintToString(permit, &permit_text);
  ASSERT_OK(WriteFileAtomic(agreements_path, permit_text));
  ASSERT_EQ(::kill(node_->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string reloaded, node_->ReadLine(absl::Seconds(30)));
  EXPECT_EQ(reloaded, "reloaded agreements=1");

  v1::IngestRequest rest;
  rest.set_data("s1,mentoring,north,2020,30,true,50,10,0\n");
  rest.set_end_of_file(true);
  ASSERT_TRUE(stream->Write(rest));
  ASSERT_TRUE(stream->WritesDone());
  grpc::Status finished = stream->Finish();
  ASSERT_TRUE(finished.ok()) << finished.error_message();
  EXPECT_EQ(ingested.rows_written(), 1);

  // The next question is decided by the reloaded agreement, on the same
  // connection as the refused one.
  EXPECT_OK(peer->Aggregate(query).status());
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
}

}  // namespace
}  // namespace fedshare::testing
