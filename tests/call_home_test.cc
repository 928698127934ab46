// Issue 13, call-home, end to end: a foundation and two partners as real
// fedshare-node processes on loopback. partner-1 is direct; partner-2 has no
// peer listener at all and calls home to the foundation. The foundation's
// analyst must get the same combined answer as when both partners were
// direct, with the same agreements, refusals, audit and receipts on the
// partner's side, and coverage that stays right when the call-home partner
// is stopped, killed mid-question or restarted, or the foundation restarts.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "query/sql.h"
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

// A TCP socket of a process, from /proc/net/tcp{,6}.
struct Socket {
  std::string local_address;  // as the kernel prints it: hex address ":" hex port
  std::string remote_address;
  int state = 0;         // 0x0A listening, 0x01 established
  int64_t rx_queue = 0;  // bytes received and not yet read
};

std::set<std::string> SocketInodes(pid_t pid) {
  std::set<std::string> inodes;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return inodes;
  while (dirent* e = readdir(d)) {
    char target[256];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    absl::string_view t(target);
    if (absl::ConsumePrefix(&t, "socket:[") && absl::ConsumeSuffix(&t, "]")) {
      inodes.insert(std::string(t));
    }
  }
  closedir(d);
  return inodes;
}

// An IPv4-mapped IPv6 address as /proc/net/tcp6 prints it, in the IPv4
// spelling of /proc/net/tcp ("0100007F:1F90"); other addresses unchanged.
std::string Unmapped(const std::string& address) {
  constexpr absl::string_view kMapped = "0000000000000000FFFF0000";
  if (absl::StartsWith(address, kMapped)) return address.substr(kMapped.size());
  return address;
}

// Every TCP socket `pid` holds (what `ss -tanp` would show for it).
std::vector<Socket> TcpSockets(pid_t pid) {
  const std::set<std::string> inodes = SocketInodes(pid);
  std::vector<Socket> sockets;
  for (const char* table : {"tcp", "tcp6"}) {
    std::ifstream in(absl::StrCat("/proc/", pid, "/net/", table));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() < 10 || inodes.count(f[9]) == 0) continue;
      Socket s;
      s.local_address = Unmapped(f[1]);
      s.remote_address = Unmapped(f[2]);
      s.state = std::stoi(f[3], nullptr, 16);
      std::vector<std::string> queues = absl::StrSplit(f[4], ':');
      s.rx_queue = std::stoll(queues[1], nullptr, 16);
      sockets.push_back(s);
    }
  }
  return sockets;
}

// The kernel's spelling of 127.0.0.1:port in /proc/net/tcp.
std::string LoopbackSocketAddress(const std::string& host_port) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(host_port.substr(host_port.rfind(':') + 1), &port)) << host_port;
  char buf[32];
  snprintf(buf, sizeof buf, "0100007F:%04X", port);
  return buf;
}

// Polls `condition` every 20 ms until it holds or `timeout` passes.
template <typename Condition>
bool PollUntil(Condition condition, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// A TCP relay on 127.0.0.1 to `target`, whose connections a test can cut.
class TcpProxy {
 public:
  explicit TcpProxy(const std::string& target) {
    const size_t colon = target.rfind(':');
    target_port_ = std::stoi(target.substr(colon + 1));
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~TcpProxy() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    accept_thread_.join();
    Cut();
    for (std::thread& t : pumps_) t.join();
    for (int fd : fds_) close(fd);
    close(listen_fd_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // Ends every connection relayed now, as a broken link would; new ones are
  // still relayed.
  void Cut() {
    absl::MutexLock lock(&mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }

 private:
  void AcceptLoop() {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
      }
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int in = accept(listen_fd_, nullptr, nullptr);
      if (in < 0) continue;
      int out = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port_));
      if (connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(in);
        close(out);
        continue;
      }
      absl::MutexLock lock(&mu_);
      fds_.push_back(in);
      fds_.push_back(out);
      pumps_.emplace_back([in, out] { Pump(in, out); });
      pumps_.emplace_back([in, out] { Pump(out, in); });
    }
  }
  static void Pump(int from, int to) {
    char buf[16384];
    for (;;) {
      ssize_t n = read(from, buf, sizeof buf);
      if (n <= 0 || write(to, buf, static_cast<size_t>(n)) != n) break;
    }
    shutdown(from, SHUT_RDWR);
    shutdown(to, SHUT_RDWR);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_ = 0;
  std::thread accept_thread_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> pumps_;  // appended under mu_; joined after accept_thread_
};

// Whether a process stopped with SIGSTOP holds bytes it has not read on an
// established connection (a question sent to it).
bool HasUnreadBytes(pid_t pid) {
  for (const Socket& s : TcpSockets(pid)) {
    if (s.state == 0x01 && s.rx_queue > 0) return true;
  }
  return false;
}

// The local addresses of the listening TCP sockets `ss -ltnp` shows, run
// after `prefix` (e.g. `ip netns exec NAME`); with `pid` > 0, only that
// process's. Fails the test (non-fatally) if ss cannot run.
std::vector<std::string> ListeningAddresses(const TempDir& tmp,
                                            const std::vector<std::string>& prefix, pid_t pid = 0) {
  std::vector<std::string> argv = prefix;
  for (const char* ss : {"/usr/bin/ss", "/bin/ss", "/usr/sbin/ss"}) {
    if (access(ss, X_OK) == 0) {
      argv.push_back(ss);
      break;
    }
  }
  EXPECT_EQ(argv.size(), prefix.size() + 1) << "no ss (iproute2) on this machine";
  argv.insert(argv.end(), {"-ltnpH"});
  ProcessOutcome listed = RunProcess(tmp, argv);
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  std::vector<std::string> addresses;
  for (absl::string_view line : absl::StrSplit(listed.out, '\n', absl::SkipEmpty())) {
    // State Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=N,fd=M))]
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 5) continue;
    if (pid > 0 && !absl::StrContains(line, absl::StrCat("pid=", pid, ","))) continue;
    addresses.push_back(f[3]);
  }
  return addresses;
}

// Two fresh network namespaces, "near" and "far", joined by a veth pair
// (kNearAddress in near, kFarAddress in far), each with its loopback up.
// Traffic between them never leaves the pair. Names are unique per process
// and pair; the destructor deletes both, whatever the test did (a process
// still inside keeps its namespace alive, unnamed, until it exits).
class NetnsPair {
 public:
  static constexpr char kNearAddress[] = "10.213.0.1";
  static constexpr char kFarAddress[] = "10.213.0.2";

  // Null, saying why in `*why`, where namespaces cannot be made (not root,
  // no `ip`, a kernel or container that forbids them).
  static std::unique_ptr<NetnsPair> Make(const TempDir& tmp, std::string* why) {
    if (geteuid() != 0) {
      *why = "not root";
      return nullptr;
    }
    std::string ip;
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (access(path, X_OK) == 0) {
        ip = path;
        break;
      }
    }
    if (ip.empty()) {
      *why = "no ip (iproute2) command";
      return nullptr;
    }
    static std::atomic<int> made{0};
    const std::string base = absl::StrCat("fedshare-test-", getpid(), "-", ++made);
    auto pair = std::unique_ptr<NetnsPair>(new NetnsPair(tmp, ip, base + "-near", base + "-far"));
    // Interfaces are made inside their namespaces, so their names clash with
    // nothing on the host or in other tests' pairs.
    const std::vector<std::vector<std::string>> steps = {
        {"netns", "add", pair->near_},
        {"netns", "add", pair->far_},
        {"link", "add", "fs-near", "netns", pair->near_, "type", "veth", "peer", "name", "fs-far",
         "netns", pair->far_},
        {"-n", pair->near_, "addr", "add", absl::StrCat(kNearAddress, "/30"), "dev", "fs-near"},
        {"-n", pair->far_, "addr", "add", absl::StrCat(kFarAddress, "/30"), "dev", "fs-far"},
        {"-n", pair->near_, "link", "set", "fs-near", "up"},
        {"-n", pair->far_, "link", "set", "fs-far", "up"},
        {"-n", pair->near_, "link", "set", "lo", "up"},
        {"-n", pair->far_, "link", "set", "lo", "up"},
    };
    for (const std::vector<std::string>& step : steps) {
      if (std::string failed = pair->Ip(step); !failed.empty()) {
        *why = failed;
        return nullptr;  // the destructor deletes what was made
      }
    }
    return pair;
  }

  ~NetnsPair() {
    for (const std::string* name : {&near_, &far_}) Ip({"netns", "delete", *name});
  }

  // What runs a command inside a namespace: `ip netns exec NAME`, which execs it.
  std::vector<std::string> Near() const { return {ip_, "netns", "exec", near_}; }
  std::vector<std::string> Far() const { return {ip_, "netns", "exec", far_}; }

 private:
  NetnsPair(const TempDir& tmp, std::string ip, std::string near, std::string far)
      : tmp_(tmp), ip_(std::move(ip)), near_(std::move(near)), far_(std::move(far)) {}

  // Runs `ip ARGS...`; "" if it succeeded, else what it said.
  std::string Ip(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {ip_};
    argv.insert(argv.end(), args.begin(), args.end());
    static std::atomic<int> runs{0};
    absl::StatusOr<ProcessOutcome> ran =
        RunToCompletion(argv, tmp_.Sub(absl::StrCat("ip-", ++runs, ".err")));
    if (!ran.ok()) return std::string(ran.status().message());
    if (ran->exit_code == 0) return "";
    return absl::StrCat("`ip ", absl::StrJoin(args, " "), "` failed: ", ran->err);
  }

  const TempDir& tmp_;
  std::string ip_;
  std::string near_;
  std::string far_;
};

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
    auto client = Analyst();
    if (client == nullptr) return absl::InternalError("no client");
    absl::StatusOr<v1::ListPeersResponse> peers = client->ListPeers(false);
    if (!peers.ok()) return peers.status();
    for (const v1::PeerStatus& p : peers->peers()) {
      if (p.org_id() == org) return p;
    }
    return absl::NotFoundError(org);
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
  // Timed by its last answer (its stream carries no probe), and its
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
        if (p.partner().org_id() == "partner-1") ::kill(pid, SIGCONT);
      });
  ::kill(pid, SIGCONT);
  ASSERT_OK(streamed.status());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].partner().org_id(), "partner-1");
  EXPECT_EQ(events[0].partner().state(), v1::PartnerCoverage::ANSWERED);
  EXPECT_EQ(events[0].partner().released_cells(), 4);
  EXPECT_EQ(events[0].finished(), 1);
  EXPECT_EQ(events[0].asked(), 2);
  EXPECT_EQ(events[1].partner().org_id(), "partner-2");
  EXPECT_EQ(events[1].partner().state(), v1::PartnerCoverage::ANSWERED) << events[1].DebugString();
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
  const pid_t pid = partners_["partner-2"].process->pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::FederatedAggregateResponse> r = Ask("program-evaluation", 1500);
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_OK(r.status());
  EXPECT_EQ(Coverage(*r, "partner-1").state(), v1::PartnerCoverage::ANSWERED);
  EXPECT_EQ(Coverage(*r, "partner-2").state(), v1::PartnerCoverage::TIMED_OUT)
      << Coverage(*r, "partner-2").DebugString();
  EXPECT_LT(took, absl::Milliseconds(1500) + absl::Seconds(3));
  ASSERT_EQ(r->combined().cells_size(), 4);
  for (const v1::Cell& cell : r->combined().cells()) EXPECT_EQ(cell.partners(), 1);

  // Woken, it answers the next question on the same stream.
  ASSERT_OK_AND_ASSIGN(v1::FederatedAggregateResponse next, Ask());
  ExpectSameAsDirect(next);
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
