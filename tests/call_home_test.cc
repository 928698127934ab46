// Issue 13, call-home, end to end: a foundation and two partners as real
// fedshare-node processes on loopback. partner-1 is direct; partner-2 has no
// peer listener at all and calls home to the foundation. The foundation's
// analyst must get the same combined answer as when both partners were
// direct, with the same agreements, refusals, audit and receipts on the
// partner's side, and coverage that stays right when the call-home partner
// is stopped, killed mid-question or restarted, or the foundation restarts.
#include <signal.h>
#include <sys/wait.h>

#include <future>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "query/sql.h"
#include "testing/netns_pair.h"
#include "testing/poll.h"
#include "testing/proc_sockets.h"
#include "testing/tcp_proxy.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";
const char* const kPrograms[] = {"literacy", "numeracy", "mentoring", "employment"};

// 400 people per partner, one record each, all consenting to
// program-evaluation; `offset` makes the partners' figures differ.
std::string RecordsCsv(const std::string& org, int offset) {
  std::string csv = kProgramOutcomesCsvHeader;
  for (int s = 0; s < 400; ++s) {
    absl::StrAppend(&csv, org, "-", s, ",", kPrograms[s % 4], ",north,", 2019 + (s / 4) % 5, ",",
                    20 + s % 40, ",true,", (s * 7 + offset) % 100, ",", s % 30, ",0\n");
  }
  return csv;
}

std::string ConsentCsv(const std::string& org) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int s = 0; s < 400; ++s) {
    absl::StrAppend(&csv, org, "-", s, ",program-evaluation,GIVEN,2025-06-01,,*\n");
  }
  return csv;
}

class CallHomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string org : {"partner-1", "partner-2"}) {
      node_ids_[org] = pki_.Issue(org, Role::kNode);
      operators_[org] = pki_.Issue(org, Role::kOperator, "op");
    }
    foundation_id_ = pki_.Issue("foundation", Role::kNode);
    analyst_ = pki_.Issue("foundation", Role::kAnalyst, "ana");

    // First both partners direct: the answer to compare with.
    ASSERT_NO_FATAL_FAILURE(StartPartner("partner-1", /*call_home=*/false, /*load=*/true));
    ASSERT_NO_FATAL_FAILURE(StartPartner("partner-2", /*call_home=*/false, /*load=*/true));
    ASSERT_NO_FATAL_FAILURE(StartFoundation(/*partner2_calls_home=*/false));
    ASSERT_OK_AND_ASSIGN(direct_, Ask());
    for (const v1::PartnerCoverage& c : direct_.coverage()) {
      ASSERT_EQ(c.state(), v1::PartnerCoverage::ANSWERED) << c.DebugString();
    }
    ASSERT_EQ(direct_.combined().cells_size(), 4) << direct_.DebugString();

    // Then partner-2 calls home instead, with no peer listener; the
    // foundation takes the new peers at SIGHUP.
    int status = partners_["partner-2"].process->Signal(SIGTERM);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    WriteFoundationConfig(/*partner2_calls_home=*/true);
    ASSERT_EQ(::kill(foundation_.process->pid(), SIGHUP), 0);
    ASSERT_OK_AND_ASSIGN(std::string reloaded, foundation_.process->ReadLine(absl::Seconds(30)));
    ASSERT_THAT(reloaded, ::testing::HasSubstr("peers=2"));
    ASSERT_NO_FATAL_FAILURE(StartPartner("partner-2", /*call_home=*/true, /*load=*/false));
    ASSERT_TRUE(WaitConnected(true)) << "partner-2 never called home";
  }

  // `peer_address`: where a restarted direct partner comes back.
  // `upstream`: where a call-home partner dials, if not the foundation.
  void StartPartner(const std::string& org, bool call_home, bool load,
                    const std::string& peer_address = "", const std::string& upstream = "",
                    const std::vector<std::string>& wrapper = {}) {
    absl::StatusOr<NodeProcess> started =
        StartNodeProcess(PartnerConfig(org, call_home, peer_address, upstream),
                         tmp_.Sub(org + ".textproto"), wrapper);
    ASSERT_OK(started.status());
    partners_[org] = std::move(started).value();
    if (!load) return;
    auto admin = Connect(partners_[org].local_address, operators_[org], kTrustDomain, org);
    ASSERT_NE(admin, nullptr);
    ASSERT_OK_AND_ASSIGN(auto ingested, admin->Ingest("program_outcomes", v1::CSV, false,
                                                      RecordsCsv(org, org == "partner-1" ? 3 : 5)));
    ASSERT_EQ(ingested.rows_written(), 400) << ingested.DebugString();
    ASSERT_OK_AND_ASSIGN(auto consented, admin->ImportConsent(ConsentCsv(org)));
    ASSERT_EQ(consented.events_rejected(), 0) << consented.DebugString();
  }

  v1::NodeConfig PartnerConfig(const std::string& org, bool call_home,
                               const std::string& peer_address, const std::string& upstream) {
    v1::NodeConfig config =
        BaseNodeConfig(org, kTrustDomain, tmp_.Sub(org + "-data"), node_ids_[org]);
    if (!peer_address.empty()) config.set_peer_address(peer_address);
    *config.add_datasets() = ProgramOutcomesSchema();
    v1::Agreement a = OpenAgreement("foundation-open", "foundation");
    a.mutable_disclosure()->set_repeat_limit(1000);
    *config.add_agreements() = a;
    if (call_home) {
      config.set_disable_peer_listener(true);
      v1::UpstreamConfig* upstream_config = config.add_upstreams();
      upstream_config->set_org_id("foundation");
      upstream_config->set_address(upstream.empty() ? foundation_.peer_address : upstream);
      config.set_call_home_max_backoff_ms(1000);
    }
    return config;
  }

  // `partner2_listed`: whether partner-2 is among the foundation's peers.
  v1::NodeConfig FoundationConfig(bool partner2_calls_home, bool partner2_listed = true) {
    v1::NodeConfig config =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_id_);
    // A restarted foundation comes back where its partners call home.
    if (!foundation_.peer_address.empty()) config.set_peer_address(foundation_.peer_address);
    config.set_peer_deadline_ms(10000);
    v1::PeerConfig* p1 = config.add_peers();
    p1->set_org_id("partner-1");
    p1->set_address(partners_["partner-1"].peer_address);
    if (!partner2_listed) return config;
    v1::PeerConfig* p2 = config.add_peers();
    p2->set_org_id("partner-2");
    if (partner2_calls_home) {
      p2->set_call_home(true);
    } else {
      p2->set_address(partners_["partner-2"].peer_address);
    }
    return config;
  }

  void WriteFoundationConfig(bool partner2_calls_home, bool partner2_listed = true) {
    std::string text;
    ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(
        FoundationConfig(partner2_calls_home, partner2_listed), &text));
    tmp_.Write("foundation.textproto", text);
  }

  void StartFoundation(bool partner2_calls_home, const std::vector<std::string>& wrapper = {}) {
    absl::StatusOr<NodeProcess> started = StartNodeProcess(
        FoundationConfig(partner2_calls_home), tmp_.Sub("foundation.textproto"), wrapper);
    ASSERT_OK(started.status());
    foundation_ = std::move(started).value();
  }

  std::unique_ptr<client::NodeClient> Analyst() {
    return Connect(foundation_.local_address, analyst_, kTrustDomain, "foundation");
  }

  absl::StatusOr<v1::PeerStatus> PeerStatus(const std::string& org) {
    return ListedPeer(Analyst().get(), org);
  }

  bool WaitConnected(bool connected) {
    return PollUntil([&] {
      absl::StatusOr<v1::PeerStatus> p = PeerStatus("partner-2");
      return p.ok() && p->connected() == connected;
    });
  }

  static std::string QuestionSql(const std::string& purpose = "program-evaluation") {
    return absl::StrCat(
        "SELECT program, COUNT(*), COUNT(DISTINCT subject), AVG(outcome_score), "
        "SUM(outcome_score) FROM program_outcomes WHERE cohort_year >= 2020 GROUP BY program "
        "PURPOSE '",
        purpose, "'");
  }

  // The analyst's CLI against the foundation, run after `prefix` (inside a
  // namespace, say).
  ProcessOutcome AnalystCli(const std::vector<std::string>& prefix,
                            const std::vector<std::string>& args) {
    std::vector<std::string> argv = prefix;
    argv.insert(argv.end(), {BinaryPath("fedshare"), "--node", foundation_.local_address,
                             "--identity", analyst_});
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(tmp_, argv);
  }

  // Asks with `stopped` stopped (SIGSTOP) and a deadline of 1.5 s: it is
  // TIMED_OUT with `reason`, the other partner alone counted, within the
  // deadline; woken, it answers the next question as before.
  void ExpectStoppedPartnerTimedOut(const std::string& stopped, const std::string& reason) {
    const std::string other = stopped == "partner-1" ? "partner-2" : "partner-1";
    const pid_t pid = partners_[stopped].process->pid();
    ASSERT_EQ(::kill(pid, SIGSTOP), 0);
    const absl::Time start = absl::Now();
    absl::StatusOr<v1::FederatedAggregateResponse> r = Ask("program-evaluation", 1500);
    const absl::Duration took = absl::Now() - start;
    ASSERT_EQ(::kill(pid, SIGCONT), 0);
    ASSERT_OK(r.status());
    EXPECT_EQ(Coverage(*r, other).state(), v1::PartnerCoverage::ANSWERED);
    EXPECT_EQ(Coverage(*r, stopped).state(), v1::PartnerCoverage::TIMED_OUT)
        << Coverage(*r, stopped).DebugString();
    EXPECT_EQ(Coverage(*r, stopped).reason(), reason);
    EXPECT_LT(took, absl::Milliseconds(1500) + absl::Seconds(3));
    ASSERT_EQ(r->combined().cells_size(), 4);
    for (const v1::Cell& cell : r->combined().cells()) EXPECT_EQ(cell.partners(), 1);
    ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse next, Ask());
    ExpectSameAsDirect(next);
  }

  absl::StatusOr<v1::FederatedAggregateResponse> Ask(
      const std::string& purpose = "program-evaluation", int deadline_ms = 0) {
    v1::FederatedAggregateRequest request;
    request.set_all_peers(true);
    request.set_deadline_ms(deadline_ms);
    absl::StatusOr<v1::AggregateQuery> query = ParseSql(QuestionSql(purpose));
    if (!query.ok()) return query.status();
    *request.mutable_query() = *query;
    auto client = Analyst();
    if (client == nullptr) return absl::InternalError("no client");
    return client->FederatedAggregate(request);
  }

  static const v1::PartnerCoverage& Coverage(const v1::FederatedAggregateResponse& r,
                                             const std::string& org) {
    for (const v1::PartnerCoverage& c : r.coverage()) {
      if (c.org_id() == org) return c;
    }
    ADD_FAILURE() << "no coverage for " << org;
    return r.coverage(0);
  }

  static const v1::AggregateResult* PartnerAnswer(const v1::FederatedAggregateResponse& r,
                                                  const std::string& org) {
    for (const v1::AggregateResult& a : r.partners()) {
      if (a.org_id() == org) return &a;
    }
    return nullptr;
  }

  // Both partners answered and the combined cells are the all-direct ones.
  void ExpectSameAsDirect(const v1::FederatedAggregateResponse& r) {
    EXPECT_EQ(Coverage(r, "partner-1").state(), v1::PartnerCoverage::ANSWERED);
    EXPECT_EQ(Coverage(r, "partner-2").state(), v1::PartnerCoverage::ANSWERED)
        << Coverage(r, "partner-2").DebugString();
    ASSERT_EQ(r.combined().cells_size(), direct_.combined().cells_size());
    for (int i = 0; i < r.combined().cells_size(); ++i) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(r.combined().cells(i),
                                                                     direct_.combined().cells(i)))
          << r.combined().cells(i).DebugString() << " vs "
          << direct_.combined().cells(i).DebugString();
    }
  }

  TempDir tmp_{"call_home"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::map<std::string, std::string> node_ids_;
  std::map<std::string, std::string> operators_;
  std::string foundation_id_;
  std::string analyst_;
  std::map<std::string, NodeProcess> partners_;
  NodeProcess foundation_;
  v1::FederatedAggregateResponse direct_;
};

// An answer larger than one message the foundation's peer listener takes
// (limits.peer_max_message_bytes, 64 KiB) comes up the stream in pieces and
// is the partner's whole answer, as a direct call would return it.
TEST_F(CallHomeTest, AnswerLargerThanOneMessageComesUpTheStreamWhole) {
  std::string sql = "SELECT program, cohort_year";
  for (const char* field : {"outcome_score", "sessions_attended"}) {
    for (int i = 0; i < 6; ++i)
      absl::StrAppend(&sql, ", HISTOGRAM(", field, ", 0, ", 100 + i, ", 100)");
  }
  absl::StrAppend(&sql,
                  " FROM program_outcomes GROUP BY program, cohort_year "
                  "PURPOSE 'program-evaluation'");
  ASSERT_OK_AND_ASSIGN(v1::AggregateQuery query, ParseSql(sql));
  v1::FederatedAggregateRequest request;
  request.set_all_peers(true);
  *request.mutable_query() = query;
  auto client = Analyst();
  ASSERT_NE(client, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r, client->FederatedAggregate(request));
  EXPECT_EQ(Coverage(r, "partner-1").state(), v1::PartnerCoverage::ANSWERED);
  ASSERT_EQ(Coverage(r, "partner-2").state(), v1::PartnerCoverage::ANSWERED)
      << Coverage(r, "partner-2").DebugString();
  const v1::AggregateResult* direct = PartnerAnswer(r, "partner-1");
  const v1::AggregateResult* streamed = PartnerAnswer(r, "partner-2");
  ASSERT_NE(direct, nullptr);
  ASSERT_NE(streamed, nullptr);
  EXPECT_GT(streamed->ByteSizeLong(), 64u << 10);
  // The partners hold the same people in the same cells (their scores
  // differ): the same cells and bins, released alike.
  ASSERT_EQ(streamed->cells_size(), direct->cells_size());
  ASSERT_EQ(streamed->cells_size(), 20);
  for (int i = 0; i < streamed->cells_size(); ++i) {
    ASSERT_EQ(streamed->cells(i).values_size(), 12);
    for (int a = 0; a < 12; ++a) {
      EXPECT_EQ(streamed->cells(i).values(a).bins_size(), 100)
          << "cell " << i << " aggregate " << a;
    }
  }
  // The stream carries on.
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse next, Ask());
  ExpectSameAsDirect(next);
}

TEST_F(CallHomeTest, PartnerWithoutAListeningPortGetsTheSameAnswerAsDirect) {
  // partner-2 listens on nothing but its loopback admin listener, as ss
  // and the kernel's own tables say.
  EXPECT_THAT(ListeningAddresses(tmp_, {}, partners_["partner-2"].process->pid()),
              ::testing::ElementsAre(partners_["partner-2"].local_address));
  std::vector<Socket> listening;
  for (const Socket& s : TcpSockets(partners_["partner-2"].process->pid())) {
    if (s.state == 0x0A) listening.push_back(s);
  }
  ASSERT_EQ(listening.size(), 1u);
  EXPECT_EQ(listening[0].local_address,
            LoopbackSocketAddress(partners_["partner-2"].local_address));
  EXPECT_EQ(partners_["partner-2"].peer_address, "none");

  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse mixed, Ask());
  ExpectSameAsDirect(mixed);

  // partner-2 answered under its own audit log: a receipt of its own, later
  // in its log than the direct answer's.
  const v1::AggregateResult* before = PartnerAnswer(direct_, "partner-2");
  const v1::AggregateResult* after = PartnerAnswer(mixed, "partner-2");
  ASSERT_NE(before, nullptr);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(after->receipt().org_id(), "partner-2");
  EXPECT_GT(after->receipt().audit_index(), before->receipt().audit_index());
  auto admin = Connect(partners_["partner-2"].local_address, operators_["partner-2"], kTrustDomain,
                       "partner-2");
  ASSERT_NE(admin, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit,
                       admin->ListAudit(after->receipt().audit_index(), 1));
  ASSERT_EQ(audit.entries_size(), 1);
  EXPECT_THAT(audit.entries(0).DebugString(),
              ::testing::HasSubstr("spiffe://fedshare.test/org/foundation/node"));
  EXPECT_THAT(audit.entries(0).DebugString(),
              ::testing::HasSubstr("spiffe://fedshare.test/org/foundation/analyst/ana"));

  // Its agreement refuses other purposes, with the rule, as a direct call is.
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse research, Ask("research"));
  const v1::PartnerCoverage& refused = Coverage(research, "partner-2");
  EXPECT_EQ(refused.state(), v1::PartnerCoverage::REFUSED) << refused.DebugString();
  EXPECT_EQ(refused.refusal().reason(), Coverage(research, "partner-1").refusal().reason());
  EXPECT_FALSE(refused.refusal().reason().empty()) << refused.DebugString();

  // The foundation lists each peer's mode and whether it is connected.
  ASSERT_OK_AND_ASSIGN(v1::PeerStatus p2, PeerStatus("partner-2"));
  EXPECT_EQ(p2.mode(), v1::PeerStatus::MODE_CALL_HOME);
  EXPECT_TRUE(p2.connected());
  EXPECT_TRUE(p2.has_last_contact());
  // Without a probe, timed by its last answer, and its
  // certificate as its stream presented it.
  EXPECT_EQ(p2.round_trip_source(), v1::PeerStatus::ROUND_TRIP_SOURCE_LAST_ANSWER);
  EXPECT_TRUE(p2.has_certificate_expires());
  EXPECT_EQ(p2.certificate_warning(), "");
  ASSERT_OK_AND_ASSIGN(v1::PeerStatus p1, PeerStatus("partner-1"));
  EXPECT_EQ(p1.mode(), v1::PeerStatus::MODE_DIRECT);
  ProcessOutcome peers = RunCliAs(tmp_, analyst_, foundation_.local_address, {"peers"});
  EXPECT_EQ(peers.exit_code, 0) << peers.err;
  EXPECT_THAT(peers.out, ::testing::ContainsRegex("partner-2 +call-home +connected"));
  EXPECT_THAT(peers.out, ::testing::ContainsRegex("partner-1 +direct"));
}

TEST_F(CallHomeTest, PartnerInItsOwnNetworkNamespaceGetsTheSameAnswerAsDirect) {
  std::string why;
  std::unique_ptr<NetnsPair> ns = NetnsPair::Make(tmp_, &why);
  if (ns == nullptr) {
    GTEST_SKIP() << "network namespaces cannot be made here (" << why
                 << "); PartnerWithoutAListeningPortGetsTheSameAnswerAsDirect still checks, "
                    "with ss, that the call-home partner listens on nothing but loopback";
  }
  // The nodes move into the namespaces with their stores: the foundation and
  // the direct partner-1 in "near" (partner-1 on near's loopback), partner-2
  // alone in "far", reaching the foundation only across the veth pair.
  for (NodeProcess* node : {&foundation_, &partners_["partner-1"], &partners_["partner-2"]}) {
    int status = node->process->Signal(SIGTERM);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  ASSERT_NO_FATAL_FAILURE(
      StartPartner("partner-1", /*call_home=*/false, /*load=*/false, "", "", ns->Near()));
  foundation_.peer_address = absl::StrCat(NetnsPair::kNearAddress, ":0");
  ASSERT_NO_FATAL_FAILURE(StartFoundation(/*partner2_calls_home=*/true, ns->Near()));
  ASSERT_TRUE(absl::StartsWith(foundation_.peer_address, NetnsPair::kNearAddress))
      << foundation_.peer_address;
  ASSERT_NO_FATAL_FAILURE(StartPartner("partner-2", /*call_home=*/true, /*load=*/false, "",
                                       foundation_.peer_address, ns->Far()));
  EXPECT_EQ(partners_["partner-2"].peer_address, "none");

  // partner-2's namespace has no listening socket but its admin listener on
  // its own loopback, which nothing outside "far" can reach.
  EXPECT_THAT(ListeningAddresses(tmp_, ns->Far()),
              ::testing::ElementsAre(partners_["partner-2"].local_address));
  EXPECT_TRUE(absl::StartsWith(partners_["partner-2"].local_address, "127.0.0.1:"));

  ASSERT_TRUE(PollUntil([&] {
    ProcessOutcome peers = AnalystCli(ns->Near(), {"peers", "--no-probe"});
    return peers.exit_code == 0 &&
           ::testing::Value(peers.out, ::testing::ContainsRegex("partner-2 +call-home +connected"));
  })) << "partner-2 never called home across the namespaces";

  ProcessOutcome asked =
      AnalystCli(ns->Near(), {"query", "--sql", QuestionSql(), "--all-peers", "--output", "json"});
  ASSERT_EQ(asked.exit_code, 0) << asked.err << asked.out;
  v1::FederatedAggregateResponse mixed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(asked.out, &mixed).ok()) << asked.out;
  ExpectSameAsDirect(mixed);
  const v1::AggregateResult* answer = PartnerAnswer(mixed, "partner-2");
  ASSERT_NE(answer, nullptr);
  EXPECT_EQ(answer->receipt().org_id(), "partner-2");
}

TEST_F(CallHomeTest, StreamedQuestionShowsEachPartnerAsItAnswersThenTheSameResult) {
  // partner-2 stays stopped until partner-1's progress event has arrived: the
  // event must come while partner-2 still owes its answer, not with the result.
  const pid_t pid = partners_["partner-2"].process->pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  v1::FederatedAggregateRequest request;
  request.set_all_peers(true);
  request.set_deadline_ms(20000);
  request.set_sql(QuestionSql());
  auto client = Analyst();
  ASSERT_NE(client, nullptr);
  std::vector<v1::FederatedAggregateProgress> events;
  absl::StatusOr<v1::FederatedAggregateResponse> streamed =
      client->FederatedAggregateStream(request, [&](const v1::FederatedAggregateProgress& p) {
        events.push_back(p);
        for (const v1::PartnerCoverage& c : p.partners()) {
          if (c.org_id() == "partner-1") ::kill(pid, SIGCONT);
        }
      });
  ::kill(pid, SIGCONT);
  ASSERT_OK(streamed.status());
  ASSERT_EQ(events.size(), 2u);
  ASSERT_EQ(events[0].partners_size(), 1);
  EXPECT_EQ(events[0].partners(0).org_id(), "partner-1");
  EXPECT_EQ(events[0].partners(0).state(), v1::PartnerCoverage::ANSWERED);
  EXPECT_EQ(events[0].partners(0).released_cells(), 4);
  EXPECT_EQ(events[0].finished(), 1);
  EXPECT_EQ(events[0].asked(), 2);
  ASSERT_EQ(events[1].partners_size(), 1);
  EXPECT_EQ(events[1].partners(0).org_id(), "partner-2");
  EXPECT_EQ(events[1].partners(0).state(), v1::PartnerCoverage::ANSWERED)
      << events[1].DebugString();
  EXPECT_EQ(events[1].finished(), 2);
  ExpectSameAsDirect(*streamed);
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse unary, Ask());
  ExpectSameAsDirect(unary);

  // The CLI: with --progress, one line per partner on stderr and the same
  // JSON on stdout as without it.
  const std::vector<std::string> query = {"query",       "--sql",    QuestionSql(),
                                          "--all-peers", "--output", "json"};
  std::vector<std::string> with_progress = query;
  with_progress.push_back("--progress");
  for (const std::vector<std::string>* args : {&std::as_const(with_progress), &query}) {
    ProcessOutcome asked = RunCliAs(tmp_, analyst_, foundation_.local_address, *args);
    ASSERT_EQ(asked.exit_code, 0) << asked.err;
    v1::FederatedAggregateResponse answer;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(asked.out, &answer).ok()) << asked.out;
    ExpectSameAsDirect(answer);
    if (args == &query) {
      EXPECT_THAT(asked.err, ::testing::Not(::testing::HasSubstr("progress")));
      continue;
    }
    for (const char* org : {"partner-1", "partner-2"}) {
      EXPECT_THAT(asked.err, ::testing::ContainsRegex(absl::StrCat(
                                 "progress [12]/2: ", org,
                                 " answered \\(4 cell\\(s\\) released, 0 withheld\\)")));
    }
  }
}

TEST_F(CallHomeTest, StoppedPartnerIsTimedOutWithinTheDeadline) {
  ExpectStoppedPartnerTimedOut("partner-2",
                               "call-home partner partner-2 did not answer within 1.5s");
}

TEST_F(CallHomeTest, StoppedDirectPartnerIsTimedOutWithinTheDeadlineAndSaysWhose) {
  // The same fault on the direct partner, over the connection the
  // foundation holds: its reason names it and the deadline, not gRPC's
  // bare words.
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse warm, Ask());
  ExpectSameAsDirect(warm);
  ExpectStoppedPartnerTimedOut("partner-1", "partner partner-1 did not answer within 1.5s");
}

TEST_F(CallHomeTest, PartnerKilledMidQuestionIsUnreachableAndReconnectsWhenRestarted) {
  const pid_t pid = partners_["partner-2"].process->pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const absl::Time start = absl::Now();
  std::future<absl::StatusOr<v1::FederatedAggregateResponse>> asked =
      std::async(std::launch::async, [this] { return Ask("program-evaluation", 20000); });
  // The question has reached partner-2 when bytes wait unread on its stream.
  ASSERT_TRUE(PollUntil([&] { return HasUnreadBytes(pid); }))
      << "the question never reached partner-2";
  partners_["partner-2"].process->Signal(SIGKILL);
  absl::StatusOr<v1::FederatedAggregateResponse> r = asked.get();
  ASSERT_OK(r.status());
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  EXPECT_EQ(Coverage(*r, "partner-1").state(), v1::PartnerCoverage::ANSWERED);
  EXPECT_EQ(Coverage(*r, "partner-2").state(), v1::PartnerCoverage::UNREACHABLE)
      << Coverage(*r, "partner-2").DebugString();
  ASSERT_TRUE(WaitConnected(false));

  // Restarted, it calls home by itself and answers the next question.
  ASSERT_NO_FATAL_FAILURE(StartPartner("partner-2", /*call_home=*/true, /*load=*/false));
  ASSERT_TRUE(WaitConnected(true));
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse next, Ask());
  ExpectSameAsDirect(next);
}

TEST_F(CallHomeTest, PartnersReconnectWhenTheFoundationRestarts) {
  int status = foundation_.process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_NO_FATAL_FAILURE(StartFoundation(/*partner2_calls_home=*/true));
  ASSERT_TRUE(WaitConnected(true)) << "partner-2 did not call home again";
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r, Ask());
  ExpectSameAsDirect(r);
}

TEST_F(CallHomeTest, OnlyPeersConfiguredToCallHomeMayConnect) {
  // partner-1 is a direct peer: its node may not hold a stream.
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  expect.org_id = "foundation";
  ASSERT_OK_AND_ASSIGN(
      std::shared_ptr<grpc::Channel> channel,
      identity::MakeChannel(foundation_.peer_address, Pki::Files(node_ids_["partner-1"]), expect));
  auto stub = v1::FederationService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  auto stream = stub->Connect(&context);
  v1::CallHomeDown down;
  EXPECT_FALSE(stream->Read(&down));
  grpc::Status finished = stream->Finish();
  EXPECT_EQ(finished.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(finished.error_message(), ::testing::HasSubstr("call_home: true"));
}

TEST_F(CallHomeTest, ConnectionCutMidQuestionIsUnreachableAndThePartnerReconnects) {
  // partner-2 calls home through a link the test can cut.
  TcpProxy link(foundation_.peer_address);
  int status = partners_["partner-2"].process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_TRUE(WaitConnected(false));
  ASSERT_NO_FATAL_FAILURE(
      StartPartner("partner-2", /*call_home=*/true, /*load=*/false, "", link.address()));
  ASSERT_TRUE(WaitConnected(true));

  const pid_t pid = partners_["partner-2"].process->pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const absl::Time start = absl::Now();
  std::future<absl::StatusOr<v1::FederatedAggregateResponse>> asked =
      std::async(std::launch::async, [this] { return Ask("program-evaluation", 20000); });
  ASSERT_TRUE(PollUntil([&] { return HasUnreadBytes(pid); }))
      << "the question never reached partner-2";
  link.Cut();
  absl::StatusOr<v1::FederatedAggregateResponse> r = asked.get();
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_OK(r.status());
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  EXPECT_EQ(Coverage(*r, "partner-1").state(), v1::PartnerCoverage::ANSWERED);
  EXPECT_EQ(Coverage(*r, "partner-2").state(), v1::PartnerCoverage::UNREACHABLE)
      << Coverage(*r, "partner-2").DebugString();

  // It notices the broken link and calls home again by itself.
  ASSERT_TRUE(WaitConnected(true));
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse next, Ask());
  ExpectSameAsDirect(next);
}

TEST_F(CallHomeTest, PartnerRemovedAtReloadLosesItsStreamAndComesBackWhenListedAgain) {
  const std::string foundation = LoopbackSocketAddress(foundation_.peer_address);
  const pid_t pid = partners_["partner-2"].process->pid();
  auto streams_to_foundation = [&] {
    int n = 0;
    for (const Socket& s : TcpSockets(pid)) {
      n += s.state == 0x01 && s.remote_address == foundation ? 1 : 0;
    }
    return n;
  };
  ASSERT_EQ(streams_to_foundation(), 1);

  WriteFoundationConfig(/*partner2_calls_home=*/true, /*partner2_listed=*/false);
  ASSERT_EQ(::kill(foundation_.process->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(std::string reloaded, foundation_.process->ReadLine(absl::Seconds(30)));
  ASSERT_THAT(reloaded, ::testing::HasSubstr("peers=1"));
  // Its stream is closed at once, and its attempts to call home are refused.
  EXPECT_TRUE(PollUntil([&] { return streams_to_foundation() == 0; }));

  WriteFoundationConfig(/*partner2_calls_home=*/true);
  ASSERT_EQ(::kill(foundation_.process->pid(), SIGHUP), 0);
  ASSERT_OK_AND_ASSIGN(reloaded, foundation_.process->ReadLine(absl::Seconds(30)));
  ASSERT_THAT(reloaded, ::testing::HasSubstr("peers=2"));
  ASSERT_TRUE(WaitConnected(true));
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r, Ask());
  ExpectSameAsDirect(r);
}

TEST_F(CallHomeTest, DirectPartnerIsAskedOverOneLongLivedConnection) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r, Ask());
    ExpectSameAsDirect(r);
  }
  // The foundation holds one connection to partner-1's peer listener, kept
  // across the questions (not one per question, closed after it).
  const std::string partner1 = LoopbackSocketAddress(partners_["partner-1"].peer_address);
  int connections = 0;
  for (const Socket& s : TcpSockets(foundation_.process->pid())) {
    if (s.state == 0x01 && s.remote_address == partner1) ++connections;
  }
  EXPECT_EQ(connections, 1);

  // partner-1 stops: unreachable at once, well within the deadline.
  const std::string address = partners_["partner-1"].peer_address;
  int status = partners_["partner-1"].process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse down, Ask());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(Coverage(down, "partner-1").state(), v1::PartnerCoverage::UNREACHABLE)
      << Coverage(down, "partner-1").DebugString();
  EXPECT_EQ(Coverage(down, "partner-2").state(), v1::PartnerCoverage::ANSWERED);

  // Back on the same address, it answers the very next question (the failed
  // channel does not wait out gRPC's reconnect backoff).
  ASSERT_NO_FATAL_FAILURE(StartPartner("partner-1", /*call_home=*/false, /*load=*/false, address));
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse back, Ask());
  ExpectSameAsDirect(back);
}

TEST_F(CallHomeTest, HeldStreamsDoNotTakeThePeerListenersThreads) {
  // A foundation whose peer listener may run 2 handler threads holds the
  // streams of 3 call-home partners and asks all of them: a held stream
  // costs no thread (a synchronous handler would hold one per partner, and
  // the third partner would be refused RESOURCE_EXHAUSTED).
  int status = foundation_.process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  v1::NodeConfig config = FoundationConfig(/*partner2_calls_home=*/true);
  config.mutable_limits()->set_max_threads(2);
  const std::vector<std::string> more = {"partner-3", "partner-4"};
  for (const std::string& org : more) {
    node_ids_[org] = pki_.Issue(org, Role::kNode);
    operators_[org] = pki_.Issue(org, Role::kOperator, "op");
    v1::PeerConfig* p = config.add_peers();
    p->set_org_id(org);
    p->set_call_home(true);
  }
  absl::StatusOr<NodeProcess> started =
      StartNodeProcess(config, tmp_.Sub("foundation-2-threads.textproto"));
  ASSERT_OK(started.status());
  foundation_ = std::move(started).value();
  for (const std::string& org : more) {
    ASSERT_NO_FATAL_FAILURE(StartPartner(org, /*call_home=*/true, /*load=*/true));
  }
  ASSERT_TRUE(PollUntil([&] {
    auto client = Analyst();
    absl::StatusOr<v1::ListPeersResponse> peers = client->ListPeers(false);
    int connected = 0;
    if (peers.ok()) {
      for (const v1::PeerStatus& p : peers->peers()) connected += p.connected() ? 1 : 0;
    }
    return connected == 3;
  })) << "not every call-home partner holds a stream";
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse r, Ask());
  for (const std::string org : {"partner-1", "partner-2", "partner-3", "partner-4"}) {
    EXPECT_EQ(Coverage(r, org).state(), v1::PartnerCoverage::ANSWERED)
        << Coverage(r, org).DebugString();
  }
}

}  // namespace
}  // namespace fedshare::testing
