// Issue 13: a foundation's partners and groups in a peers_file, reloaded
// without a restart; a broken file leaves the roster in force and says so in
// `fedshare status`.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/server/node.h"
#include "query/sql.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

class PeersFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string org : {"partner-a", "partner-b"}) {
      // partner-b's certificate expires in 10 days.
      identity::IssueOptions short_lived;
      short_lived.org = org;
      short_lived.days = 10;
      v1::NodeConfig config =
          BaseNodeConfig(org, kTrustDomain, tmp_.Sub(org + "-data"),
                         org == "partner-b" ? pki_.IssueWith("partner-b-short", short_lived)
                                            : pki_.Issue(org, Role::kNode));
      *config.add_datasets() = ProgramOutcomesSchema();
      v1::Agreement a = OpenAgreement("foundation-open", "foundation");
      a.mutable_disclosure()->set_repeat_limit(1000);
      *config.add_agreements() = a;
      ASSERT_OK_AND_ASSIGN(partners_[org], server::Node::Create(config, server::NodeOptions()));
    }
    file_ = tmp_.Sub("peers.textproto");
    ASSERT_OK(
        WriteFileAtomic(file_, absl::StrCat("peers { org_id: \"partner-a\" address: \"",
                                            partners_["partner-a"]->peer_address(), "\" }\n")));
    v1::NodeConfig config = BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"),
                                           pki_.Issue("foundation", Role::kNode));
    config.set_peers_file(file_);
    ASSERT_OK_AND_ASSIGN(foundation_, server::Node::Create(config, server::NodeOptions()));
    analyst_dir_ = pki_.Issue("foundation", Role::kAnalyst, "ana");
    analyst_ = Connect(foundation_->local_address(), analyst_dir_, kTrustDomain, "foundation");
    ASSERT_NE(analyst_, nullptr);
  }

  absl::StatusOr<v1::FederatedAggregateResponse> AskGroup(const std::string& group) {
    v1::FederatedAggregateRequest request;
    request.set_group(group);
    request.set_sql(
        "SELECT program, COUNT(*) FROM program_outcomes GROUP BY program "
        "PURPOSE 'program-evaluation'");
    return analyst_->FederatedAggregate(request);
  }

  size_t RosterSize() {
    absl::StatusOr<v1::ListPeersResponse> peers = analyst_->ListPeers(false);
    return peers.ok() ? peers->peers_size() : 0;
  }

  TempDir tmp_{"peers_file"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::map<std::string, std::unique_ptr<server::Node>> partners_;
  std::unique_ptr<server::Node> foundation_;
  std::unique_ptr<client::NodeClient> analyst_;
  std::string file_;
  std::string analyst_dir_;
};

TEST_F(PeersFileTest, AddedPeerIsAskedWithoutRestartAndABrokenFileChangesNothing) {
  EXPECT_EQ(RosterSize(), 1u);
  EXPECT_THAT(AskGroup("pilot"), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("no peer is in group 'pilot'")));

  // partner-b and the group "pilot" are added by editing the file.
  ASSERT_OK(
      WriteFileAtomic(file_, absl::StrCat("peers { org_id: \"partner-a\" address: \"",
                                          partners_["partner-a"]->peer_address(), "\" }\n",
                                          "peers { org_id: \"partner-b\" address: \"",
                                          partners_["partner-b"]->peer_address(), "\" }\n",
                                          "groups { name: \"pilot\" members: \"partner-b\" }\n")));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (RosterSize() != 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));  // poll interval while the node reloads
  }
  ASSERT_EQ(RosterSize(), 2u) << "the edited peers_file was not reloaded";
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse asked, AskGroup("pilot"));
  ASSERT_EQ(asked.coverage_size(), 1);
  EXPECT_EQ(asked.coverage(0).org_id(), "partner-b");
  EXPECT_EQ(asked.coverage(0).state(), v1::PartnerCoverage::ANSWERED)
      << asked.coverage(0).DebugString();

  // A broken file keeps the roster, and the operator is told why.
  auto op = Connect(foundation_->local_address(), pki_.Issue("foundation", Role::kOperator, "op"),
                    kTrustDomain, "foundation");
  ASSERT_NE(op, nullptr);
  ASSERT_OK(WriteFileAtomic(file_, "peers { org_id: \"partner-c\" address: "));
  std::string warning;
  while (warning.empty() && absl::Now() < deadline + absl::Seconds(30)) {
    absl::StatusOr<v1::StatusResponse> status = op->Status();
    ASSERT_OK(status.status());
    for (const std::string& w : status->warnings()) {
      if (absl::StrContains(w, "peers_file")) warning = w;
    }
    if (warning.empty()) absl::SleepFor(absl::Milliseconds(50));  // poll interval
  }
  EXPECT_THAT(warning, HasSubstr(absl::StrCat("peers_file ", file_,
                                              " was not reloaded, the "
                                              "previous 2 peers stay in force: ",
                                              file_, ":1:")));
  EXPECT_EQ(RosterSize(), 2u);
  ASSERT_OK_AND_ASSIGN(asked, AskGroup("pilot"));
  ASSERT_EQ(asked.coverage_size(), 1);
  EXPECT_EQ(asked.coverage(0).state(), v1::PartnerCoverage::ANSWERED);

  // `fedshare status` shows it too.
  ProcessOutcome status = RunCliAs(tmp_, pki_.Issue("foundation", Role::kOperator, "op2"),
                                   foundation_->local_address(), {"status"});
  EXPECT_THAT(status.out, HasSubstr("peers_file"));
}

TEST_F(PeersFileTest, PeersShowRoundTripAndCertificateExpiryAndWarnOfExpiringOnes) {
  ASSERT_OK(WriteFileAtomic(
      file_, absl::StrCat("peers { org_id: \"partner-a\" address: \"",
                          partners_["partner-a"]->peer_address(), "\" groups: \"pilot\" }\n",
                          "peers { org_id: \"partner-b\" address: \"",
                          partners_["partner-b"]->peer_address(), "\" groups: \"pilot\" }\n")));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (RosterSize() != 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));  // poll interval while the node reloads
  }
  ASSERT_EQ(RosterSize(), 2u);

  // Never asked: nothing timed, no certificate seen.
  ASSERT_OK_AND_ASSIGN(v1::ListPeersResponse before, analyst_->ListPeers(false));
  for (const v1::PeerStatus& p : before.peers()) {
    EXPECT_EQ(p.round_trip_source(), v1::PeerStatus::ROUND_TRIP_SOURCE_UNSPECIFIED);
    EXPECT_FALSE(p.has_certificate_expires());
  }
  // A question: both answer, over TLS connections that show their certificates.
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse asked, AskGroup("pilot"));
  ASSERT_EQ(asked.coverage_size(), 2);
  ASSERT_OK_AND_ASSIGN(v1::ListPeersResponse after, analyst_->ListPeers(false));
  for (const v1::PeerStatus& p : after.peers()) {
    EXPECT_EQ(p.round_trip_source(), v1::PeerStatus::ROUND_TRIP_SOURCE_LAST_ANSWER) << p.org_id();
    EXPECT_GT(p.round_trip().nanos() + p.round_trip().seconds(), 0) << p.org_id();
    ASSERT_TRUE(p.has_certificate_expires()) << p.org_id();
    const absl::Duration left =
        absl::FromUnixSeconds(p.certificate_expires().seconds()) - absl::Now();
    if (p.org_id() == "partner-b") {
      EXPECT_LT(left, absl::Hours(24 * 10));
      EXPECT_GT(left, absl::Hours(24 * 9));
      EXPECT_THAT(p.certificate_warning(),
                  HasSubstr("peer partner-b's node certificate expires in 9 day(s)"));
    } else {
      EXPECT_GT(left, absl::Hours(24 * 300));
      EXPECT_EQ(p.certificate_warning(), "");
    }
  }

  // The CLI warns loudly in every format and in its exit code.
  const std::string node = foundation_->local_address();
  ProcessOutcome table = RunCliAs(tmp_, analyst_dir_, node, {"peers"});
  EXPECT_EQ(table.exit_code, 4) << table.err;
  EXPECT_THAT(table.out, ::testing::ContainsRegex(
                             "partner-b +direct +- +\\S+ +\\S+ +[0-9.]+ms probe +9d! +answered"));
  EXPECT_THAT(table.out, ::testing::ContainsRegex(
                             "partner-a +direct +- +\\S+ +\\S+ +[0-9.]+ms probe +3[0-9][0-9]d +"
                             "answered"));
  EXPECT_THAT(table.out,
              HasSubstr("CERTIFICATE: peer partner-b's node certificate expires in 9 day(s)"));
  EXPECT_THAT(table.err,
              HasSubstr("WARNING: peer partner-b's node certificate expires in 9 day(s)"));
  ProcessOutcome json = RunCliAs(tmp_, analyst_dir_, node, {"peers", "--output", "json"});
  EXPECT_EQ(json.exit_code, 4) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"certificate_warning\":\"peer partner-b's node certificate "
                                  "expires in 9 day(s)"));
  EXPECT_THAT(json.out, HasSubstr("\"round_trip_source\":\"ROUND_TRIP_SOURCE_PROBE\""));
  EXPECT_THAT(json.err, HasSubstr("WARNING: peer partner-b"));
  ProcessOutcome csv =
      RunCliAs(tmp_, analyst_dir_, node, {"peers", "--no-probe", "--output", "csv"});
  EXPECT_EQ(csv.exit_code, 4) << csv.err;
  EXPECT_THAT(csv.out, ::testing::ContainsRegex(
                           "partner-b,direct,-,[^,]+,[^,]+,[0-9.]+,last_answer,[^,]+,9,\"peer "
                           "partner-b's node certificate expires"));
  // Outside the threshold the operator sets, no warning.
  ProcessOutcome quiet = RunCliAs(tmp_, analyst_dir_, node, {"peers", "--warn-days", "5"});
  EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_THAT(quiet.out, ::testing::Not(HasSubstr("CERTIFICATE")));
}

// A roster of thousands: a named peer is found by lookup, and a name that is
// not configured gets an error naming a few dozen peers and how many more,
// not one message of every name.
TEST_F(PeersFileTest, ThousandsOfPeersAreFoundByNameAndErrorsNameAFew) {
  constexpr int kPeers = 2000;
  std::string roster = absl::StrCat("peers { org_id: \"partner-a\" address: \"",
                                    partners_["partner-a"]->peer_address(), "\" }\n");
  for (int i = 1; i < kPeers; ++i) {
    // Never dialled: only partner-a is asked.
    absl::StrAppend(&roster, "peers { org_id: \"roster-", i, "\" address: \"127.0.0.1:1\" }\n");
  }
  ASSERT_OK(WriteFileAtomic(file_, roster));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (RosterSize() != kPeers && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));  // poll interval while the node reloads
  }
  ASSERT_EQ(RosterSize(), static_cast<size_t>(kPeers)) << "the edited peers_file was not reloaded";

  v1::FederatedAggregateRequest request;
  request.set_sql(
      "SELECT program, COUNT(*) FROM program_outcomes GROUP BY program "
      "PURPOSE 'program-evaluation'");
  request.add_peers("partner-a");
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse asked, analyst_->FederatedAggregate(request));
  ASSERT_EQ(asked.coverage_size(), 1);
  EXPECT_EQ(asked.coverage(0).org_id(), "partner-a");
  EXPECT_EQ(asked.coverage(0).state(), v1::PartnerCoverage::ANSWERED)
      << asked.coverage(0).DebugString();

  request.clear_peers();
  request.add_peers("partner-z");
  absl::StatusOr<v1::FederatedAggregateResponse> unknown = analyst_->FederatedAggregate(request);
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("no peer 'partner-z' is configured; known: partner-a, "
                                          "roster-1, roster-2, ")));
  EXPECT_THAT(unknown.status().message(), HasSubstr(" and 1968 more"));
  EXPECT_LT(unknown.status().message().size(), 1024u);

  absl::StatusOr<v1::DescribeResponse> described = analyst_->DescribePeer("partner-z");
  EXPECT_THAT(described, StatusIs(absl::StatusCode::kNotFound,
                                  HasSubstr("configured peers: partner-a, roster-1, ")));
  EXPECT_THAT(described.status().message(), HasSubstr(" and 1968 more"));
  EXPECT_LT(described.status().message().size(), 1024u);
  ASSERT_OK_AND_ASSIGN(v1::DescribeResponse partner, analyst_->DescribePeer("partner-a"));
  EXPECT_GT(partner.datasets_size(), 0);
}

// Threads of this process now.
int ThreadCount() {
  int n = 0;
  for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

// `fedshare peers` probes every peer at once with asynchronous calls, within
// one peer_deadline_ms: a roster of a thousand peers that never answer takes
// neither a thread per peer nor a deadline per peer.
TEST_F(PeersFileTest, ProbingAThousandSilentPeersTakesNoThreadPerPeer) {
  // A port that takes connections and never says a word (no TLS handshake).
  const int silent = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(silent, 4096), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int silent_port = ntohs(addr.sin_port);

  constexpr int kSilent = 1000;
  std::string roster = absl::StrCat("peers { org_id: \"partner-a\" address: \"",
                                    partners_["partner-a"]->peer_address(), "\" }\n",
                                    "peers { org_id: \"home-1\" call_home: true }\n");
  for (int i = 1; i <= kSilent; ++i) {
    absl::StrAppend(&roster, "peers { org_id: \"silent-", i,
                    "\" address: \"127.0.0.1:", silent_port, "\" }\n");
  }
  const std::string file = tmp_.Sub("silent-peers.textproto");
  ASSERT_OK(WriteFileAtomic(file, roster));
  identity::IssueOptions node;
  node.org = "foundation";
  v1::NodeConfig config = BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("silent-data"),
                                         pki_.IssueWith("foundation-silent", node));
  config.set_peers_file(file);
  config.set_peer_deadline_ms(3000);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<server::Node> foundation,
                       server::Node::Create(config, server::NodeOptions()));
  std::unique_ptr<client::NodeClient> analyst =
      Connect(foundation->local_address(), analyst_dir_, kTrustDomain, "foundation");
  ASSERT_NE(analyst, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::ListPeersResponse listed, analyst->ListPeers(false));
  ASSERT_EQ(listed.peers_size(), kSilent + 2);

  const int before = ThreadCount();
  std::atomic<bool> probing{true};
  std::atomic<int> most{before};
  std::thread sampler([&] {
    while (probing.load()) {
      most.store(std::max(most.load(), ThreadCount()));
      absl::SleepFor(absl::Milliseconds(5));  // sampling interval, not synchronization
    }
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::ListPeersResponse> probed = analyst->ListPeers(true);
  const absl::Duration took = absl::Now() - start;
  probing.store(false);
  sampler.join();
  close(silent);
  ASSERT_OK(probed.status());
  ASSERT_EQ(probed->peers_size(), kSilent + 2);

  std::map<std::string, v1::PeerStatus> by_org;
  for (const v1::PeerStatus& p : probed->peers()) by_org[p.org_id()] = p;
  EXPECT_EQ(by_org["partner-a"].state(), v1::PartnerCoverage::ANSWERED)
      << by_org["partner-a"].DebugString();
  EXPECT_GT(by_org["partner-a"].datasets_offered(), 0);
  EXPECT_EQ(by_org["home-1"].state(), v1::PartnerCoverage::UNREACHABLE);
  EXPECT_THAT(by_org["home-1"].reason(), HasSubstr("is not connected"));
  int timed_out = 0;
  for (int i = 1; i <= kSilent; ++i) {
    timed_out += by_org[absl::StrCat("silent-", i)].state() == v1::PartnerCoverage::TIMED_OUT;
  }
  EXPECT_EQ(timed_out, kSilent) << by_org["silent-1"].DebugString();
  // One deadline for all, not one after another (a thousand would be 50 min).
  EXPECT_LT(took, absl::Seconds(60));
  // gRPC's own threads, not one per peer.
  EXPECT_LT(most.load() - before, 100)
      << "threads before the probe: " << before << ", most during it: " << most.load();
}

}  // namespace
}  // namespace fedshare::testing
