// Issue 13: a foundation that holds many call-home streams stops cleanly on
// SIGTERM. The foundation is a real fedshare-node process; the partners'
// streams are FederationService.Connect calls held from this process, each on
// its own connection with its own partner node certificate (as N partners
// behind NAT would hold them), and an analyst's connection stays open and
// idle, as a CLI or dashboard left open would. SIGTERM must end every stream
// (each partner sees its stream end, so it can reconnect elsewhere) and the
// process must exit 0 instead of waiting on the streams or the idle client.
#include <signal.h>
#include <sys/wait.h>

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";
// Partners holding a stream at once: enough that the foundation must end
// many reactors while it stops, few enough for certificates made per run.
constexpr int kPartners = 48;
// How long the test waits for things that take milliseconds when all is
// well; reaching it means the foundation is stuck, not slow.
constexpr absl::Duration kStuck = absl::Seconds(60);

// One partner's Connect stream, held open: reads until the foundation ends it.
class HeldStream final : public grpc::ClientBidiReactor<v1::CallHomeUp, v1::CallHomeDown> {
 public:
  explicit HeldStream(v1::FederationService::Stub* stub) {
    stub->async()->Connect(&context_, this);
    StartRead(&down_);
    StartCall();
  }
  // gRPC may call it until OnDone: the stream is ended first.
  ~HeldStream() override {
    Cancel();
    AwaitEnd(absl::InfiniteFuture());
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    if (down_.has_hello()) {
      absl::MutexLock lock(&mu_);
      hello_ = true;
    }
    StartRead(&down_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }

  // Whether the foundation accepted the stream (its hello came) by `deadline`.
  bool AwaitHello(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(absl::Condition(&hello_), deadline);
  }
  // The stream's final status, once it ended by `deadline`.
  std::optional<grpc::Status> AwaitEnd(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithDeadline(absl::Condition(&done_), deadline)) return std::nullopt;
    return status_;
  }
  void Cancel() { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  v1::CallHomeDown down_;
  absl::Mutex mu_;
  bool hello_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

std::string Partner(int i) { return absl::StrCat("partner-", i); }

TEST(CallHomeShutdownTest, AFoundationHoldingManyStreamsStopsOnSigterm) {
  TempDir tmp("call_home_shutdown");
  Pki pki(tmp.Sub("pki"), kTrustDomain);
  const std::string foundation_id = pki.Issue("foundation", Role::kNode);
  const std::string analyst_id = pki.Issue("foundation", Role::kAnalyst, "ana");
  v1::NodeConfig config =
      BaseNodeConfig("foundation", kTrustDomain, tmp.Sub("foundation-data"), foundation_id);
  std::vector<std::string> partner_ids;
  for (int i = 0; i < kPartners; ++i) {
    partner_ids.push_back(pki.Issue(Partner(i), Role::kNode));
    v1::PeerConfig* peer = config.add_peers();
    peer->set_org_id(Partner(i));
    peer->set_call_home(true);
  }
  config.mutable_limits()->set_max_connections(kPartners + 64);
  ASSERT_OK_AND_ASSIGN(NodeProcess foundation,
                       StartNodeProcess(config, tmp.Sub("foundation.textproto")));

  // Each partner on a channel (and connection) of its own.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::FederationService::Stub>> stubs;
  std::vector<std::unique_ptr<HeldStream>> streams;
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  expect.org_id = "foundation";
  for (const std::string& dir : partner_ids) {
    identity::ClientTlsPem pem;
    ASSERT_OK_AND_ASSIGN(pem.cert_pem, ReadFile(dir + "/cert.pem"));
    ASSERT_OK_AND_ASSIGN(pem.key_pem, ReadFile(dir + "/key.pem"));
    ASSERT_OK_AND_ASSIGN(pem.ca_pem, ReadFile(dir + "/ca.pem"));
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<grpc::Channel> channel,
                         identity::MakeChannelFromPem(foundation.peer_address, pem, expect, args));
    channels.push_back(channel);
    stubs.push_back(v1::FederationService::NewStub(channel));
    streams.push_back(std::make_unique<HeldStream>(stubs.back().get()));
  }
  const absl::Time connected_by = absl::Now() + kStuck;
  for (int i = 0; i < kPartners; ++i) {
    ASSERT_TRUE(streams[i]->AwaitHello(connected_by)) << Partner(i) << " was not accepted";
  }

  // The analyst's connection: used once, then left open and idle.
  std::unique_ptr<client::NodeClient> analyst =
      Connect(foundation.local_address, analyst_id, kTrustDomain, "foundation");
  ASSERT_OK_AND_ASSIGN(v1::ListPeersResponse peers, analyst->ListPeers(/*probe=*/false));
  int connected = 0;
  for (const v1::PeerStatus& p : peers.peers()) connected += p.connected() ? 1 : 0;
  EXPECT_EQ(connected, kPartners);

  std::future<int> stopped =
      std::async(std::launch::async, [&] { return foundation.process->Signal(SIGTERM); });
  if (stopped.wait_for(absl::ToChronoSeconds(kStuck)) != std::future_status::ready) {
    kill(foundation.process->pid(), SIGKILL);
    stopped.wait();
    for (auto& stream : streams) stream->Cancel();
    FAIL() << "the foundation did not stop on SIGTERM with " << kPartners
           << " call-home streams held";
  }
  const int wait_status = stopped.get();
  ASSERT_TRUE(WIFEXITED(wait_status)) << "ended by signal " << WTERMSIG(wait_status);
  EXPECT_EQ(WEXITSTATUS(wait_status), 0);
  // Every partner saw its stream end, with an error it reconnects after.
  const absl::Time ended_by = absl::Now() + kStuck;
  for (int i = 0; i < kPartners; ++i) {
    std::optional<grpc::Status> end = streams[i]->AwaitEnd(ended_by);
    ASSERT_TRUE(end.has_value()) << Partner(i) << "'s stream did not end";
    EXPECT_FALSE(end->ok()) << Partner(i);
  }
}

}  // namespace
}  // namespace fedshare::testing
