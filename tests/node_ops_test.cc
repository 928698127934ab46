// Issue 12, the fedshare-node binary as operators run it in containers:
// --probe checks health over mTLS with the node's own identity (exit 0/1);
// --log-format json writes one JSON object a line, gRPC's own lines
// included; flags beat environment variables, which beat the config file;
// SIGHUP puts new agreements in force without dropping an open stream, gives
// the next fan-out the config file's new peers, and serves new certificate
// files at once when they are valid (and keeps the old ones when not); a
// second stop signal while the node waits for calls in flight ends it at once.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedshare/v1/admin.grpc.pb.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/identity/channel.h"
#include "node/identity/x509_verify.h"
#include "testing/poll.h"
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
    node_id_ = pki_.Issue("partner-a", Role::kNode);
    config_ = BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub("data"), node_id_);
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
      if (absl::ConsumePrefix(&part, "local=")) local_address_ = std::string(part);
    }
    ASSERT_FALSE(peer_address_.empty()) << line;
  }

  // An operator's ingest stream into program_outcomes on the local listener
  // at `address`, its first message (the header and `rows`) sent, left open.
  struct OpenIngest {
    std::unique_ptr<v1::AdminService::Stub> admin;
    grpc::ClientContext context;
    v1::IngestResponse response;
    std::unique_ptr<grpc::ClientWriter<v1::IngestRequest>> stream;
  };
  std::unique_ptr<OpenIngest> StartIngest(const std::string& address, const std::string& op,
                                          const std::string& rows) {
    identity::ServerExpectation expect;
    expect.trust_domain = kTrustDomain;
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        identity::MakeChannel(address, Pki::Files(op), expect);
    EXPECT_OK(channel.status());
    if (!channel.ok()) return nullptr;
    auto open = std::make_unique<OpenIngest>();
    open->admin = v1::AdminService::NewStub(*channel);
    open->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    open->stream = open->admin->Ingest(&open->context, &open->response);
    v1::IngestRequest first;
    first.set_dataset("program_outcomes");
    first.set_format(v1::CSV);
    first.set_data(absl::StrCat(
        "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
        "income\n",
        rows));
    EXPECT_TRUE(open->stream->Write(first));
    return open;
  }

  ProcessOutcome Probe(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {BinaryPath("fedshare-node"), "--config", config_path_,
                                     "--probe"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProcess(tmp_, argv);
  }

  TempDir tmp_{"node_ops"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::string node_id_;
  v1::NodeConfig config_;
  std::string config_path_ = tmp_.Sub("node.textproto");
  std::string log_path_ = tmp_.Sub("node.log");
  std::unique_ptr<Subprocess> node_;
  std::string peer_address_, local_address_;
};

TEST_F(NodeOpsTest, ProbeExitsZeroWhileServingAndOneWhenStopped) {
  Start({});
  // The config says port 0: probing it as written names the problem and the
  // flag, rather than dialing port 0.
  ProcessOutcome unbound = Probe({});
  EXPECT_EQ(unbound.exit_code, 1);
  EXPECT_THAT(unbound.err, HasSubstr("has port 0, chosen anew at each start"));
  EXPECT_THAT(unbound.err, HasSubstr("--peer-address"));
  // Told the bound address by flag, the probe reaches the node.
  ProcessOutcome serving = Probe({"--peer-address", peer_address_});
  EXPECT_EQ(serving.exit_code, 0) << serving.err;
  EXPECT_THAT(serving.out, HasSubstr("SERVING"));
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
  ProcessOutcome stopped = Probe({"--peer-address", peer_address_});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_THAT(stopped.err, HasSubstr("probe failed"));
}

// A stop waits up to its grace for calls in flight; a second stop signal
// meanwhile ends the process at once with status 1 and says so, and the
// store opens again as it was.
TEST_F(NodeOpsTest, ASecondStopSignalWhileStoppingExitsAtOnce) {
  Start({});
  // An operator's ingest stream, open and waiting for its next slice, holds
  // the stop for its grace.
  std::string op = pki_.Issue("partner-a", Role::kOperator, "olga");
  std::unique_ptr<OpenIngest> ingest =
      StartIngest(local_address_, op, "s1,mentoring,north,2020,30,true,50,10,0\n");
  ASSERT_NE(ingest, nullptr);

  auto logged = [&](absl::string_view what) {
    absl::StatusOr<std::string> log = ReadFile(log_path_);
    return log.ok() && absl::StrContains(*log, what);
  };
  ASSERT_EQ(::kill(node_->pid(), SIGTERM), 0);
  ASSERT_TRUE(PollUntil([&] { return logged("event=stopping signal=SIGTERM"); }));
  ASSERT_EQ(::kill(node_->pid(), SIGTERM), 0);
  const int status = node_->Wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(logged("event=stop_forced signal=SIGTERM"));
  EXPECT_FALSE(logged("event=node_stopped"));
  ingest->context.TryCancel();

  // The store opens, and nothing the unfinished ingest sent was written.
  node_.reset();
  Start({});
  auto operator_client = Connect(local_address_, op, kTrustDomain, "partner-a");
  ASSERT_NE(operator_client, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse datasets, operator_client->ListDatasets());
  ASSERT_EQ(datasets.datasets_size(), 1);
  EXPECT_EQ(datasets.datasets(0).rows(), 0);
  operator_client.reset();  // an idle connection would hold this stop for its grace
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
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
  std::unique_ptr<OpenIngest> ingest = StartIngest(local_address, op, "");
  ASSERT_NE(ingest, nullptr);

  v1::AgreementSet permit;
  *permit.add_agreements() = OpenAgreement("foundation-eval", "foundation");
  std::string permit_text;
  google::protobuf::TextFormat::PrintToString(permit, &permit_text);
  ASSERT_OK(WriteFileAtomic(agreements_path, permit_text));
  ASSERT_EQ(::kill(node_->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string reloaded, node_->ReadLine(absl::Seconds(30)));
  // Nothing else changed: no peers configured, the same certificate files.
  EXPECT_EQ(reloaded, "reloaded agreements=1 peers=0 certificates=ok");

  v1::IngestRequest rest;
  rest.set_data("s1,mentoring,north,2020,30,true,50,10,0\n");
  rest.set_end_of_file(true);
  ASSERT_TRUE(ingest->stream->Write(rest));
  ASSERT_TRUE(ingest->stream->WritesDone());
  grpc::Status finished = ingest->stream->Finish();
  ASSERT_TRUE(finished.ok()) << finished.error_message();
  EXPECT_EQ(ingest->response.rows_written(), 1);

  // The next question is decided by the reloaded agreement, on the same
  // connection as the refused one.
  EXPECT_OK(peer->Aggregate(query).status());
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
}

// The serial of the certificate the node at `address` serves on a connection
// of its own, as seen by the holder of `identity`; "" if none was seen.
std::string ServedSerial(const std::string& address, const std::string& identity) {
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  expect.org_id = "partner-a";
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // never an older connection
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      identity::MakeChannel(address, Pki::Files(identity), expect, args);
  if (!channel.ok()) return "";
  auto stub = v1::PeerService::NewStub(*channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::DescribeResponse described;
  // Whatever the call's outcome, the handshake shows the certificate.
  (void)stub->Describe(&context, v1::DescribeRequest(), &described);
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  std::vector<grpc::string_ref> pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pem.empty()) return "";
  absl::StatusOr<identity::CertificateInfo> info =
      identity::InspectCertificate(absl::string_view(pem[0].data(), pem[0].size()));
  return info.ok() ? info->serial_hex : "";
}

std::string FileSerial(const std::string& cert_file) {
  absl::StatusOr<std::string> pem = ReadFile(cert_file);
  if (!pem.ok()) return "";
  absl::StatusOr<identity::CertificateInfo> info = identity::InspectCertificate(*pem);
  return info.ok() ? info->serial_hex : "";
}

void CopyIdentity(const std::string& from_dir, const std::string& to_dir) {
  for (const char* file : {"/cert.pem", "/key.pem"}) {
    absl::StatusOr<std::string> text = ReadFile(from_dir + file);
    ASSERT_OK(text.status());
    ASSERT_OK(WriteFileAtomic(to_dir + file, *text));
  }
}

TEST_F(NodeOpsTest, SighupServesNewValidCertificatesAtOnceAndKeepsTheOldForInvalidOnes) {
  // Only SIGHUP may reload here: the periodic check is an hour away.
  config_.mutable_tls()->set_reload_interval_seconds(3600);
  std::string text;
  google::protobuf::TextFormat::PrintToString(config_, &text);
  ASSERT_OK(WriteFileAtomic(config_path_, text));
  Start({});
  std::string foundation = pki_.Issue("foundation", Role::kNode);
  const std::string old_serial = FileSerial(node_id_ + "/cert.pem");
  ASSERT_FALSE(old_serial.empty());
  EXPECT_EQ(ServedSerial(peer_address_, foundation), old_serial);

  // A valid pair for the wrong org: refused as a set, the old one serves on.
  CopyIdentity(foundation, node_id_);
  ASSERT_EQ(::kill(node_->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string refused, node_->ReadLine(absl::Seconds(30)));
  EXPECT_EQ(refused,
            "reloaded agreements=0 peers=0 certificates=kept-old (the certificate names node of "
            "org foundation (spiffe://fedshare.test/org/foundation/node), not this node of org "
            "partner-a)");
  EXPECT_EQ(ServedSerial(peer_address_, foundation), old_serial);

  // A new valid certificate for this node: new connections get it without
  // waiting for the hour.
  identity::IssueOptions next;
  next.org = "partner-a";
  std::string renewed = pki_.IssueWith("partner-a-renewed", next);
  const std::string new_serial = FileSerial(renewed + "/cert.pem");
  ASSERT_NE(new_serial, old_serial);
  CopyIdentity(renewed, node_id_);
  ASSERT_EQ(::kill(node_->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string reloaded, node_->ReadLine(absl::Seconds(30)));
  EXPECT_EQ(reloaded, "reloaded agreements=0 peers=0 certificates=ok");
  // gRPC re-reads the node's validated copies every second.
  std::string served;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;) {
    served = ServedSerial(peer_address_, foundation);
    if (served == new_serial) break;
    absl::SleepFor(absl::Milliseconds(100));  // poll interval while gRPC picks the copy up
  }
  EXPECT_EQ(served, new_serial);
  EXPECT_EQ(WEXITSTATUS(node_->Signal(SIGTERM)), 0);
}

TEST_F(NodeOpsTest, SighupGivesTheNextFanOutTheConfigFilesNewPeers) {
  std::vector<NodeProcess> partners;
  for (const std::string org : {"partner-b", "partner-c"}) {
    v1::NodeConfig partner =
        BaseNodeConfig(org, kTrustDomain, tmp_.Sub(org), pki_.Issue(org, Role::kNode));
    *partner.add_datasets() = ProgramOutcomesSchema();
    *partner.add_agreements() = OpenAgreement("foundation-eval", "foundation");
    ASSERT_OK_AND_ASSIGN(NodeProcess p, StartNodeProcess(partner, tmp_.Sub(org + ".textproto")));
    partners.push_back(std::move(p));
  }
  v1::NodeConfig config = BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation"),
                                         pki_.Issue("foundation", Role::kNode));
  v1::PeerConfig* b = config.add_peers();
  b->set_org_id("partner-b");
  b->set_address(partners[0].peer_address);
  const std::string path = tmp_.Sub("foundation.textproto");
  ASSERT_OK_AND_ASSIGN(NodeProcess foundation, StartNodeProcess(config, path));
  auto analyst = Connect(foundation.local_address, pki_.Issue("foundation", Role::kAnalyst, "ana"),
                         kTrustDomain, "foundation");
  ASSERT_NE(analyst, nullptr);
  v1::FederatedAggregateRequest request;
  request.mutable_query()->set_dataset("program_outcomes");
  request.mutable_query()->set_purpose("program-evaluation");
  request.mutable_query()->add_aggregates()->set_kind(v1::COUNT);
  request.set_all_peers(true);
  auto asked = [&](const v1::FederatedAggregateResponse& r) {
    std::vector<std::string> orgs;
    for (const v1::PartnerCoverage& c : r.coverage()) {
      EXPECT_EQ(c.state(), v1::PartnerCoverage::ANSWERED) << c.org_id() << ": " << c.reason();
      orgs.push_back(c.org_id());
    }
    return orgs;
  };
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse first, analyst->FederatedAggregate(request));
  EXPECT_THAT(asked(first), ::testing::ElementsAre("partner-b"));

  // partner-c joins; a setting that applies only at start changes too.
  v1::PeerConfig* c = config.add_peers();
  c->set_org_id("partner-c");
  c->set_address(partners[1].peer_address);
  config.set_max_concurrent_questions(7);
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  ASSERT_OK(WriteFileAtomic(path, text));
  ASSERT_EQ(::kill(foundation.process->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string reloaded, foundation.process->ReadLine(absl::Seconds(30)));
  EXPECT_EQ(reloaded, "reloaded agreements=0 peers=2 certificates=ok");

  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse next, analyst->FederatedAggregate(request));
  EXPECT_THAT(asked(next), ::testing::ElementsAre("partner-b", "partner-c"));
  ASSERT_OK_AND_ASSIGN(v1::ListPeersResponse listed, analyst->ListPeers(false));
  EXPECT_EQ(listed.peers_size(), 2);

  // A config file that no longer loads keeps the peers in force.
  ASSERT_OK(WriteFileAtomic(path, "peers { org_id: \"Not Valid\" }\n"));
  ASSERT_EQ(::kill(foundation.process->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string kept, foundation.process->ReadLine(absl::Seconds(30)));
  EXPECT_THAT(kept, ::testing::StartsWith("reloaded agreements=0 peers=kept-old ("));
  EXPECT_THAT(kept, ::testing::EndsWith(" certificates=ok"));
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse after, analyst->FederatedAggregate(request));
  EXPECT_THAT(asked(after), ::testing::ElementsAre("partner-b", "partner-c"));

  EXPECT_EQ(WEXITSTATUS(foundation.process->Signal(SIGTERM)), 0);
  for (NodeProcess& p : partners) EXPECT_EQ(WEXITSTATUS(p.process->Signal(SIGTERM)), 0);
  ASSERT_OK_AND_ASSIGN(std::string log, ReadFile(path + ".log"));
  EXPECT_THAT(log, HasSubstr("event=reload_needs_restart settings=max_concurrent_questions "));
}

// A TCP listener on 127.0.0.1 that accepts and never answers: a partner that
// holds a fan-out call open for as long as the test wants.
class SilentPeer {
 public:
  SilentPeer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 && ::listen(fd_, 4) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
    }
  }
  ~SilentPeer() { Close(); }
  const std::string& address() const { return address_; }
  // Waits up to `timeout` for a connection; whether one came.
  bool AwaitConnection(absl::Duration timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) return false;
    accepted_ = ::accept(fd_, nullptr, nullptr);
    return accepted_ >= 0;
  }
  // Closes the connection and the listener: calls to it end UNAVAILABLE.
  void Close() {
    if (accepted_ >= 0) ::close(accepted_);
    if (fd_ >= 0) ::close(fd_);
    accepted_ = fd_ = -1;
  }

 private:
  int fd_ = -1;
  int accepted_ = -1;
  std::string address_;
};

TEST_F(NodeOpsTest, SighupLetsAFanOutInFlightFinishWithThePeersItStartedWith) {
  v1::NodeConfig partner = BaseNodeConfig("partner-b", kTrustDomain, tmp_.Sub("b"),
                                          pki_.Issue("partner-b", Role::kNode));
  *partner.add_datasets() = ProgramOutcomesSchema();
  *partner.add_agreements() = OpenAgreement("foundation-eval", "foundation");
  ASSERT_OK_AND_ASSIGN(NodeProcess b, StartNodeProcess(partner, tmp_.Sub("b.textproto")));
  SilentPeer silent;
  ASSERT_FALSE(silent.address().empty());
  v1::NodeConfig config = BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation"),
                                         pki_.Issue("foundation", Role::kNode));
  v1::PeerConfig* peer = config.add_peers();
  peer->set_org_id("partner-b");
  peer->set_address(b.peer_address);
  peer = config.add_peers();
  peer->set_org_id("partner-x");
  peer->set_address(silent.address());
  const std::string path = tmp_.Sub("foundation.textproto");
  ASSERT_OK_AND_ASSIGN(NodeProcess foundation, StartNodeProcess(config, path));
  const std::string analyst_id = pki_.Issue("foundation", Role::kAnalyst, "ana");
  v1::FederatedAggregateRequest request;
  request.mutable_query()->set_dataset("program_outcomes");
  request.mutable_query()->set_purpose("program-evaluation");
  request.mutable_query()->add_aggregates()->set_kind(v1::COUNT);
  request.set_all_peers(true);
  request.set_deadline_ms(60000);  // partner-x holds the call until the test lets go

  absl::StatusOr<v1::FederatedAggregateResponse> in_flight;
  std::thread asking([&] {
    auto analyst = Connect(foundation.local_address, analyst_id, kTrustDomain, "foundation");
    in_flight = analyst != nullptr ? analyst->FederatedAggregate(request)
                                   : absl::UnavailableError("cannot dial the foundation");
  });
  // The fan-out is in flight once it has dialled partner-x.
  bool dialled = silent.AwaitConnection(absl::Seconds(30));
  EXPECT_TRUE(dialled);

  config.mutable_peers()->RemoveLast();  // partner-x leaves
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  ASSERT_OK(WriteFileAtomic(path, text));
  ASSERT_EQ(::kill(foundation.process->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string reloaded, foundation.process->ReadLine(absl::Seconds(30)));
  EXPECT_EQ(reloaded, "reloaded agreements=0 peers=1 certificates=ok");
  silent.Close();
  asking.join();

  // The fan-out in flight was not dropped: it finished, with both partners.
  ASSERT_OK(in_flight.status());
  ASSERT_EQ(in_flight->coverage_size(), 2);
  EXPECT_EQ(in_flight->coverage(0).org_id(), "partner-b");
  EXPECT_EQ(in_flight->coverage(0).state(), v1::PartnerCoverage::ANSWERED);
  EXPECT_EQ(in_flight->coverage(1).org_id(), "partner-x");
  EXPECT_NE(in_flight->coverage(1).state(), v1::PartnerCoverage::ANSWERED);
  // The next one asks only the peers now configured.
  auto analyst = Connect(foundation.local_address, analyst_id, kTrustDomain, "foundation");
  ASSERT_NE(analyst, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse next, analyst->FederatedAggregate(request));
  ASSERT_EQ(next.coverage_size(), 1);
  EXPECT_EQ(next.coverage(0).org_id(), "partner-b");
  EXPECT_EQ(next.coverage(0).state(), v1::PartnerCoverage::ANSWERED);

  EXPECT_EQ(WEXITSTATUS(foundation.process->Signal(SIGTERM)), 0);
  EXPECT_EQ(WEXITSTATUS(b.process->Signal(SIGTERM)), 0);
}

}  // namespace
}  // namespace fedshare::testing
