// Issue 13, Describe over call-home: `fedshare describe --peer` and ListPeers'
// probe for a partner that calls home, with a foundation and a partner as real
// fedshare-node processes on loopback. The partner also keeps its peer
// listener here, only so the test can ask it directly as the foundation's node
// and check that the description through the stream is the same one.
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "testing/poll.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr int kPeerDeadlineMs = 3000;

class CallHomeDescribeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    partner_id_ = pki_.Issue("partner-2", Role::kNode);
    foundation_id_ = pki_.Issue("foundation", Role::kNode);
    analyst_ = pki_.Issue("foundation", Role::kAnalyst, "ana");

    // partner-2 calls home; partner-3 is configured to but never does.
    v1::NodeConfig foundation =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_id_);
    foundation.set_peer_deadline_ms(kPeerDeadlineMs);
    for (const char* org : {"partner-2", "partner-3"}) {
      v1::PeerConfig* peer = foundation.add_peers();
      peer->set_org_id(org);
      peer->set_call_home(true);
    }
    absl::StatusOr<NodeProcess> started =
        StartNodeProcess(foundation, tmp_.Sub("foundation.textproto"));
    ASSERT_OK(started.status());
    foundation_ = std::move(started).value();
    ASSERT_NO_FATAL_FAILURE(StartPartner());
  }

  // Two agreements for the foundation (one dataset) and one for another org,
  // which the foundation must not see.
  void StartPartner() {
    v1::NodeConfig config =
        BaseNodeConfig("partner-2", kTrustDomain, tmp_.Sub("partner-2-data"), partner_id_);
    *config.add_datasets() = ProgramOutcomesSchema();
    *config.add_agreements() = OpenAgreement("foundation-open", "foundation");
    v1::Agreement research = OpenAgreement("foundation-research", "foundation");
    research.clear_purposes();
    research.add_purposes("research");
    research.clear_measure_fields();
    research.add_measure_fields("outcome_score");
    research.set_description("research questions, outcome scores only");
    *config.add_agreements() = research;
    *config.add_agreements() = OpenAgreement("other-open", "other-org");
    v1::UpstreamConfig* upstream = config.add_upstreams();
    upstream->set_org_id("foundation");
    upstream->set_address(foundation_.peer_address);
    config.set_call_home_max_backoff_ms(1000);
    absl::StatusOr<NodeProcess> started = StartNodeProcess(config, tmp_.Sub("partner-2.textproto"));
    ASSERT_OK(started.status());
    partner_ = std::move(started).value();
    ASSERT_TRUE(WaitConnected(true)) << "partner-2 never called home";
  }

  std::unique_ptr<client::NodeClient> Analyst() {
    return Connect(foundation_.local_address, analyst_, kTrustDomain, "foundation");
  }

  absl::StatusOr<v1::PeerStatus> PeerStatus(const std::string& org, bool probe) {
    return ListedPeer(Analyst().get(), org, probe);
  }

  bool WaitConnected(bool connected) {
    return PollUntil([&] {
      absl::StatusOr<v1::PeerStatus> p = PeerStatus("partner-2", /*probe=*/false);
      return p.ok() && p->connected() == connected;
    });
  }

  absl::StatusOr<v1::DescribeResponse> DescribePeer(const std::string& org) {
    auto client = Analyst();
    if (client == nullptr) return absl::InternalError("no client");
    return client->DescribePeer(org);
  }

  // What partner-2 tells the foundation's node when it calls directly.
  absl::StatusOr<v1::DescribeResponse> DirectDescribe() {
    auto client = Connect(partner_.peer_address, foundation_id_, kTrustDomain, "partner-2");
    if (client == nullptr) return absl::InternalError("no client");
    return client->Describe();
  }

  TempDir tmp_{"call_home_describe"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::string partner_id_;
  std::string foundation_id_;
  std::string analyst_;
  NodeProcess foundation_;
  NodeProcess partner_;
};

TEST_F(CallHomeDescribeTest, DescribePeerOverTheStreamIsThePartnersOwnDescribe) {
  ASSERT_OK_AND_ASSIGN(v1::DescribeResponse direct, DirectDescribe());
  ASSERT_EQ(direct.datasets_size(), 1) << direct.DebugString();
  ASSERT_EQ(direct.datasets(0).agreements_size(), 2) << direct.DebugString();
  EXPECT_EQ(direct.datasets(0).agreements(0).id(), "foundation-open");
  EXPECT_EQ(direct.datasets(0).agreements(1).id(), "foundation-research");

  ASSERT_OK_AND_ASSIGN(v1::DescribeResponse streamed, DescribePeer("partner-2"));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(streamed, direct))
      << streamed.DebugString() << " vs " << direct.DebugString();

  // The CLI prints the same description either way.
  ProcessOutcome via_foundation =
      RunCliAs(tmp_, analyst_, foundation_.local_address, {"describe", "--peer", "partner-2"});
  ASSERT_EQ(via_foundation.exit_code, 0) << via_foundation.err;
  ProcessOutcome asked_directly =
      RunCliAs(tmp_, foundation_id_, partner_.peer_address, {"describe"});
  ASSERT_EQ(asked_directly.exit_code, 0) << asked_directly.err;
  EXPECT_EQ(via_foundation.out, asked_directly.out);
  EXPECT_THAT(via_foundation.out, HasSubstr("agreement foundation-research"));
  EXPECT_THAT(via_foundation.out, ::testing::Not(HasSubstr("other-open")));

  // ListPeers' probe asks it the same way and times that round trip.
  ASSERT_OK_AND_ASSIGN(v1::PeerStatus probed, PeerStatus("partner-2", /*probe=*/true));
  EXPECT_EQ(probed.state(), v1::PartnerCoverage::ANSWERED) << probed.DebugString();
  EXPECT_EQ(probed.datasets_offered(), 1);
  EXPECT_EQ(probed.round_trip_source(), v1::PeerStatus::ROUND_TRIP_SOURCE_PROBE);
  EXPECT_TRUE(probed.has_round_trip());
  EXPECT_TRUE(probed.has_last_contact());
  ProcessOutcome peers = RunCliAs(tmp_, analyst_, foundation_.local_address, {"peers"});
  EXPECT_EQ(peers.exit_code, 0) << peers.err;
  EXPECT_THAT(peers.out, ::testing::ContainsRegex(
                             "partner-2 +call-home +connected .*1 dataset\\(s\\) offered"));
}

TEST_F(CallHomeDescribeTest, PartnerNotConnectedIsUnavailableSayingWhenItWasLastSeen) {
  absl::StatusOr<v1::DescribeResponse> never = DescribePeer("partner-3");
  EXPECT_EQ(never.status().code(), absl::StatusCode::kUnavailable) << never.status();
  EXPECT_THAT(std::string(never.status().message()), HasSubstr("is not connected"));
  EXPECT_THAT(std::string(never.status().message()), HasSubstr("calls home"));
  EXPECT_THAT(std::string(never.status().message()), HasSubstr("not seen since this node started"));
  ASSERT_OK_AND_ASSIGN(v1::PeerStatus p3, PeerStatus("partner-3", /*probe=*/true));
  EXPECT_EQ(p3.state(), v1::PartnerCoverage::UNREACHABLE);
  EXPECT_THAT(p3.reason(), HasSubstr("is not connected"));

  int status = partner_.process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_TRUE(WaitConnected(false));
  absl::StatusOr<v1::DescribeResponse> gone = DescribePeer("partner-2");
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kUnavailable) << gone.status();
  EXPECT_THAT(std::string(gone.status().message()), HasSubstr("is not connected"));
  EXPECT_THAT(std::string(gone.status().message()),
              ::testing::ContainsRegex("last seen 20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T"));
  ProcessOutcome cli =
      RunCliAs(tmp_, analyst_, foundation_.local_address, {"describe", "--peer", "partner-2"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_THAT(cli.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(cli.err, HasSubstr("last seen"));

  // Back, it answers again.
  ASSERT_NO_FATAL_FAILURE(StartPartner());
  ASSERT_OK_AND_ASSIGN(v1::DescribeResponse back, DescribePeer("partner-2"));
  EXPECT_EQ(back.org_id(), "partner-2");
}

TEST_F(CallHomeDescribeTest, StoppedPartnerIsDeadlineExceededWithinPeerDeadline) {
  const pid_t pid = partner_.process->pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::DescribeResponse> stalled = DescribePeer("partner-2");
  const absl::Duration took = absl::Now() - start;
  // ListPeers' probe gives up on it at the same deadline.
  const absl::Time probe_start = absl::Now();
  absl::StatusOr<v1::PeerStatus> probed = PeerStatus("partner-2", /*probe=*/true);
  const absl::Duration probe_took = absl::Now() - probe_start;
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_OK(probed.status());
  EXPECT_EQ(probed->state(), v1::PartnerCoverage::TIMED_OUT) << probed->DebugString();
  EXPECT_THAT(probed->reason(), HasSubstr("did not answer within"));
  EXPECT_THAT(probed->reason(), HasSubstr("peer_deadline_ms"));
  EXPECT_GE(probe_took, absl::Milliseconds(kPeerDeadlineMs));
  EXPECT_LT(probe_took, absl::Milliseconds(kPeerDeadlineMs) + absl::Seconds(3));
  EXPECT_EQ(stalled.status().code(), absl::StatusCode::kDeadlineExceeded) << stalled.status();
  EXPECT_THAT(std::string(stalled.status().message()), HasSubstr("peer_deadline_ms"));
  EXPECT_GE(took, absl::Milliseconds(kPeerDeadlineMs));
  EXPECT_LT(took, absl::Milliseconds(kPeerDeadlineMs) + absl::Seconds(3));

  // Woken, it answers the next one on the same stream (its late reply to the
  // first is dropped).
  ASSERT_OK_AND_ASSIGN(v1::DescribeResponse next, DescribePeer("partner-2"));
  EXPECT_EQ(next.datasets_size(), 1);
}

}  // namespace
}  // namespace fedshare::testing
