// fedshare-sim-partners: measures a foundation's fan-out against N simulated
// partners (issue 13; docs/performance.md "Fan-out").
//
//   fedshare-sim-partners --partners 1000 --mode call-home --dir build/bench-fanout
//
// Each partner identity has its own node certificate and the answer stack of
// a real node: its own RocksDB store holding a small synthetic
// program_outcomes dataset with consents, its agreement, audit log and
// receipts, per-caller gate and refusal throttle, behind the node's own
// PeerServiceImpl (direct) or CallHomeClient (call-home). What it does not
// have is servers of its own: in `direct` mode the partners of one partner
// process share one gRPC server, with one loopback port and TLS certificate
// per partner, and each call is dispatched to its partner by the port it came
// in on; in `call-home` mode each partner holds its stream to the foundation
// with the node's CallHomeClient and listens on nothing. Partners are served
// by --per-process partners per forked process (1,000 by default: each store
// keeps about 12 files open, and this machine allows 20,000 per process).
//
// The foundation is a separate fedshare-node process (found beside this
// binary), so its peak RSS (VmHWM), threads (sampled every 5 ms) and CPU
// time (/proc/PID/stat) are its own. Its analyst asks --questions federated
// questions of all partners (with FederatedAggregateStream, as `fedshare
// query` does) after one untimed question that warms channels up. Partner 0
// is also asked the same question directly, --questions times,
// with the foundation's node certificate: its own answer time plus the
// loopback round trip, the baseline of the target in issue 13.
//
// Prints one Markdown table row (--header prints the header first; with
// --baseline-row the baseline is a row of its own too). With --foundation-pid
// it measures a foundation someone else started instead
// (bench/real_partners_bench.sh). Certificates are kept in --dir and reused by
// later runs; partner data is made afresh.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/node_process.h"
#include "bench/sim_partner.h"
#include "bench/synthetic.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "node/audit/audit_log.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/engine/answerer.h"
#include "node/engine/engine.h"
#include "node/identity/authenticator.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/channel.h"
#include "node/server/call_home_client.h"
#include "node/service/limits.h"
#include "node/service/peer_service.h"
#include "node/storage/storage.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"
#include "query/sql.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace fedshare {
namespace {

using sim::DispatchingPeerService;
using sim::IdDir;
using sim::Issue;
using sim::kTrustDomain;
using sim::MakePartner;
using sim::NodeConfig;
using sim::ServeDirect;
using sim::SimPartner;

constexpr char kQuestion[] =
    "SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes GROUP BY program "
    "PURPOSE 'program-evaluation'";

// Runs fn(0..n-1) on `threads` threads; the first error wins.
absl::Status ParallelFor(int n, int threads, const std::function<absl::Status(int)>& fn) {
  std::atomic<int> next{0};
  absl::Mutex mu;
  absl::Status first;
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, std::min(threads, n)); ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        absl::Status s = fn(i);
        if (s.ok()) continue;
        absl::MutexLock lock(&mu);
        if (first.ok()) first = s;
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return first;
}

// Raises the open-file limit as far as the hard limit allows.
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

double Percentile(std::vector<double> ms, double p) {
  if (ms.empty()) return 0;
  std::sort(ms.begin(), ms.end());
  return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))];
}

struct Options {
  int partners = 10;
  std::string mode = "direct";
  std::string dir;
  int records = 300;
  int questions = 20;
  int deadline_ms = 120000;
  int setup_threads = 8;
  int per_process = 1000;
  bool header = false;
  bool baseline_row = false;
};

std::string OrgName(int i) { return absl::StrCat("partner-", i); }

// A process serving partners [lo, hi) (a "shard"). Each store holds about 12
// files open (RocksDB keeps its folders open to sync them), so one process
// cannot hold thousands of partners under a 20,000 open-file limit.
struct Shard {
  pid_t pid = -1;
  int to_shard = -1;    // the foundation's peer address, then EOF: stop
  int from_shard = -1;  // "ports P..." once loaded
  std::vector<int> ports;
};

// The shard's side: loads its partners, serves them directly (direct mode;
// in call-home mode only partner 0, for the baseline), reports the ports,
// then (call-home) calls home to the address it is sent, and serves until
// its input ends. Never returns.
[[noreturn]] void ServeShard(const Options& o, int lo, int hi, int in_fd, int out_fd) {
  const bool call_home = o.mode == "call-home";
  auto fail = [&](const absl::Status& s) {
    const std::string line = absl::StrCat("error ", s.ToString(), "\n");
    (void)!write(out_fd, line.data(), line.size());
    std::_Exit(1);
  };
  absl::StatusOr<std::unique_ptr<identity::Authenticator>> auth =
      identity::Authenticator::Create(NodeConfig(OrgName(lo), o.dir).tls().ca_file(), kTrustDomain,
                                      absl::Seconds(3600), Clock::Real());
  if (!auth.ok()) fail(auth.status());
  std::vector<std::unique_ptr<SimPartner>> partners(hi - lo);
  absl::Status made = ParallelFor(hi - lo, o.setup_threads, [&](int k) {
    absl::StatusOr<std::unique_ptr<SimPartner>> p =
        MakePartner(OrgName(lo + k), o.dir, lo + k, o.records, auth->get());
    if (!p.ok()) {
      return absl::Status(p.status().code(), OrgName(lo + k) + ": " + p.status().ToString());
    }
    partners[k] = *std::move(p);
    return absl::OkStatus();
  });
  if (!made.ok()) fail(made);
  DispatchingPeerService dispatch;
  std::vector<SimPartner*> served;
  for (int k = 0; k < (call_home ? (lo == 0 ? 1 : 0) : hi - lo); ++k) {
    served.push_back(partners[k].get());
  }
  std::unique_ptr<grpc::Server> server;
  if (!served.empty()) {
    absl::StatusOr<std::unique_ptr<grpc::Server>> started = ServeDirect(served, &dispatch);
    if (!started.ok()) fail(started.status());
    server = *std::move(started);
  }
  std::string line = "ports";
  for (const auto& p : partners) absl::StrAppend(&line, " ", p->port);
  line += "\n";
  if (write(out_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(1);
  absl::StatusOr<std::string> address = bench::ReadLine(in_fd, absl::Hours(24));
  if (address.ok() && call_home) {
    // Partners join a few at a time, as they would over a day. All at once,
    // thousands of TLS handshakes on this machine's two cores outlast the
    // foundation's handshake timeout, and every partner retries in a storm
    // (seen at 5,000).
    constexpr size_t kJoinAtOnce = 50;
    for (size_t from = 0; from < partners.size(); from += kJoinAtOnce) {
      const size_t to = std::min(partners.size(), from + kJoinAtOnce);
      for (size_t k = from; k < to; ++k) {
        SimPartner& p = *partners[k];
        v1::UpstreamConfig upstream;
        upstream.set_org_id("foundation");
        upstream.set_address(*address);
        p.call_home = std::make_unique<server::CallHomeClient>(&p.config, upstream, &p.env);
        p.call_home->Start();
      }
      const absl::Time give_up = absl::Now() + absl::Seconds(60);
      for (size_t k = from; k < to && absl::Now() < give_up;) {
        if (partners[k]->call_home->connected()) {
          ++k;
        } else {
          absl::SleepFor(absl::Milliseconds(10));
        }
      }
    }
  }
  char c;
  while (read(in_fd, &c, 1) > 0) {
  }
  // The stores are thrown away: no orderly close (thousands of flushes).
  std::_Exit(0);
}

// `siblings`: the shards started before, whose pipes the new one must not
// hold open (a shard stops when its input ends).
absl::StatusOr<Shard> StartShard(const Options& o, int lo, int hi,
                                 const std::vector<Shard>& siblings) {
  int down[2], up[2];
  if (pipe(down) != 0 || pipe(up) != 0) return absl::InternalError("pipe");
  Shard shard;
  shard.pid = fork();
  if (shard.pid < 0) return absl::InternalError("fork");
  if (shard.pid == 0) {
    close(down[1]);
    close(up[0]);
    for (const Shard& sibling : siblings) {
      close(sibling.to_shard);
      close(sibling.from_shard);
    }
    ServeShard(o, lo, hi, down[0], up[1]);
  }
  close(down[0]);
  close(up[1]);
  shard.to_shard = down[1];
  shard.from_shard = up[0];
  return shard;
}

absl::Status AwaitPorts(Shard& shard) {
  absl::StatusOr<std::string> line = bench::ReadLine(shard.from_shard, absl::Minutes(30));
  if (!line.ok()) return absl::UnavailableError("a partner process ended while loading");
  absl::string_view rest = *line;
  if (!absl::ConsumePrefix(&rest, "ports")) return absl::InternalError(*line);
  for (absl::string_view part : absl::StrSplit(rest, ' ', absl::SkipEmpty())) {
    int port = 0;
    if (!absl::SimpleAtoi(part, &port)) return absl::InternalError(*line);
    shard.ports.push_back(port);
  }
  return absl::OkStatus();
}

// What a run measures of a started foundation (`target`) whose partners are
// all up: the timed questions, its footprint, and partner 0 alone.
struct Target {
  pid_t pid = -1;
  std::string local_address;
  std::string analyst_dir;  // the foundation's analyst identity
  std::string node_dir;     // the foundation's node identity, for the baseline
  std::string trust_domain;
  std::string partner0_address;  // partner 0's peer listener
  std::string partner0_org;
  int64_t rss_at_start_kb = 0;
  std::vector<pid_t> partner_pids;  // whose CPU time is the partners' (may be empty)
};

// Asks `request` as `fedshare query` does: the stream, its result's parts
// merged into `r`.
grpc::Status AskAsTheCli(v1::FederationService::Stub& analyst, grpc::ClientContext& context,
                         const v1::FederatedAggregateRequest& request,
                         v1::FederatedAggregateResponse* r) {
  std::unique_ptr<grpc::ClientReader<v1::FederatedAggregateEvent>> reader =
      analyst.FederatedAggregateStream(&context, request);
  v1::FederatedAggregateEvent event;
  while (reader->Read(&event)) {
    if (event.has_result_part()) r->MergeFrom(event.result_part());
    if (event.has_result()) r->MergeFrom(event.result());
  }
  return reader->Finish();
}

// Asks `questions` timed questions of all partners through the foundation,
// and partner 0 alone as many times; prints one Markdown table row (and the
// header, and the baseline row, when `o` says so).
void MeasureAndPrint(const Options& o, const Target& t, v1::FederationService::Stub& analyst) {
  const int64_t rss_at_start_kb = t.rss_at_start_kb;
  std::atomic<bool> sampling{true};
  std::atomic<int64_t> max_threads{0};
  std::thread sampler([&] {
    while (sampling.load()) {
      max_threads = std::max<int64_t>(max_threads.load(), bench::ProcStatusKb(t.pid, "Threads"));
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  v1::FederatedAggregateRequest request;
  request.set_all_peers(true);
  request.set_sql(kQuestion);
  std::vector<double> ms;
  int64_t answered = 0;
  absl::Duration cpu_before, partners_cpu_before, partners_cpu;
  for (int q = 0; q <= o.questions; ++q) {  // the first warms channels up
    if (q == 1) {
      cpu_before = bench::ProcCpu(t.pid);
      for (pid_t pid : t.partner_pids) partners_cpu_before += bench::ProcCpu(pid);
    }
    grpc::ClientContext context;
    v1::FederatedAggregateResponse r;
    const absl::Time start = absl::Now();
    grpc::Status s = AskAsTheCli(analyst, context, request, &r);
    const double took = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!s.ok()) {
      std::cerr << "question " << q << ": " << s.error_code() << " " << s.error_message() << "\n";
      continue;
    }
    if (q == 0) continue;
    ms.push_back(took);
    for (const v1::PartnerCoverage& c : r.coverage()) {
      answered += c.state() == v1::PartnerCoverage::ANSWERED ? 1 : 0;
    }
  }
  const absl::Duration cpu = bench::ProcCpu(t.pid) - cpu_before;
  for (pid_t pid : t.partner_pids) partners_cpu += bench::ProcCpu(pid);
  partners_cpu -= partners_cpu_before;
  sampling = false;
  sampler.join();
  const int64_t hwm_kb = bench::ProcStatusKb(t.pid, "VmHWM");
  const int64_t threads_idle = bench::ProcStatusKb(t.pid, "Threads");

  // The baseline: partner 0 asked directly, as the foundation's node asks it.
  std::vector<double> alone;
  if (!t.partner0_address.empty()) {
    auto files = identity::IdentityFromDir(t.node_dir);
    identity::ServerExpectation partner0;
    partner0.trust_domain = t.trust_domain;
    partner0.org_id = t.partner0_org;
    auto channel = identity::MakeChannel(t.partner0_address, *files, partner0);
    auto stub = v1::PeerService::NewStub(*channel);
    v1::AggregateRequest direct;
    *direct.mutable_query() = *ParseSql(kQuestion);
    for (int q = 0; q <= o.questions; ++q) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      v1::AggregateResponse r;
      const absl::Time start = absl::Now();
      grpc::Status s = stub->Aggregate(&context, direct, &r);
      if (!s.ok()) std::cerr << "partner-0 alone: " << s.error_message() << "\n";
      if (q > 0 && s.ok()) alone.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
  }
  const double p50 = Percentile(ms, 0.5), p99 = Percentile(ms, 0.99);
  const double alone_p50 = Percentile(alone, 0.5);
  const double peak_mib = static_cast<double>(hwm_kb) / 1024;
  const double per_partner_kib =
      static_cast<double>(hwm_kb - rss_at_start_kb) / std::max(1, o.partners);
  const double cpu_ms = ms.empty() ? 0 : absl::ToDoubleMilliseconds(cpu) / ms.size();
  const std::string partners_cpu_ms =
      t.partner_pids.empty() || ms.empty()
          ? "n/a"
          : absl::StrFormat("%.0f", absl::ToDoubleMilliseconds(partners_cpu) / ms.size());
  const int64_t expected = static_cast<int64_t>(ms.size()) * o.partners;
  if (o.header) {
    std::printf(
        "| partners | mode | p50 ms | p99 ms | p50 / (2 x alone) | foundation CPU ms per question "
        "| partners' CPU ms per question | peak RSS MiB | RSS per partner KiB | threads max "
        "| coverage |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  }
  if (o.baseline_row) {
    std::printf("| 1 | partner-0 alone (baseline) | %.1f | %.1f | | | | | | | %zu/%d |\n",
                alone_p50, Percentile(alone, 0.99), alone.size(), o.questions);
  }
  const std::string ratio = alone_p50 > 0 ? absl::StrFormat("%.1f", p50 / (2 * alone_p50)) : "n/a";
  std::printf("| %d | %s | %.1f | %.1f | %s | %.0f | %s | %.1f | %.0f | %lld | %lld/%lld |\n",
              o.partners, o.mode.c_str(), p50, p99, ratio.c_str(), cpu_ms, partners_cpu_ms.c_str(),
              peak_mib, per_partner_kib, static_cast<long long>(max_threads.load()),
              static_cast<long long>(answered), static_cast<long long>(expected));
  std::fflush(stdout);
  std::cerr << "partners=" << o.partners << " mode=" << o.mode << " alone_p50_ms=" << alone_p50
            << " foundation_rss_at_start_mib=" << rss_at_start_kb / 1024
            << " foundation_threads_idle=" << threads_idle << "\n";
}

// Measures a foundation started by someone else (bench/real_partners_bench.sh),
// whose partners are all up.
int MeasureExternal(const Options& o, Target t) {
  identity::ServerExpectation expect;
  expect.trust_domain = t.trust_domain;
  expect.org_id = "foundation";
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  absl::StatusOr<identity::ClientTlsFiles> files = identity::IdentityFromDir(t.analyst_dir);
  if (!files.ok()) {
    std::cerr << files.status() << "\n";
    return 1;
  }
  auto channel = identity::MakeChannel(t.local_address, *files, expect, args);
  if (!channel.ok()) {
    std::cerr << channel.status() << "\n";
    return 1;
  }
  t.rss_at_start_kb = bench::ProcStatusKb(t.pid, "VmRSS");
  MeasureAndPrint(o, t, *v1::FederationService::NewStub(*channel));
  return 0;
}

int Run(const Options& o, const std::string& node_binary) {
  const bool call_home = o.mode == "call-home";
  const std::string& dir = o.dir;
  RaiseFileLimit();
  const absl::Time setup_start = absl::Now();
  std::filesystem::create_directories(dir + "/pki");
  if (!std::filesystem::exists(dir + "/pki/ca/ca.pem")) {
    if (absl::Status s = identity::CreateCa(kTrustDomain, dir + "/pki/ca", 3650); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  absl::Status issued = ParallelFor(o.partners, o.setup_threads, [&](int i) {
    return Issue(dir, OrgName(i), identity::Role::kNode, "");
  });
  if (issued.ok()) issued = Issue(dir, "foundation", identity::Role::kNode, "");
  if (issued.ok()) issued = Issue(dir, "foundation", identity::Role::kAnalyst, "ana");
  if (!issued.ok()) {
    std::cerr << issued << "\n";
    return 1;
  }
  const absl::Duration certs_took = absl::Now() - setup_start;
  std::filesystem::remove_all(dir + "/data");
  std::filesystem::create_directories(dir + "/data");

  // Partner processes, forked before this process starts gRPC.
  std::vector<Shard> shards;
  for (int lo = 0; lo < o.partners; lo += o.per_process) {
    absl::StatusOr<Shard> shard =
        StartShard(o, lo, std::min(o.partners, lo + o.per_process), shards);
    if (!shard.ok()) {
      std::cerr << shard.status() << "\n";
      return 1;
    }
    shards.push_back(*shard);
  }
  auto stop_shards = [&] {
    for (Shard& shard : shards) close(shard.to_shard);
    for (Shard& shard : shards) waitpid(shard.pid, nullptr, 0);
  };
  std::vector<int> ports;
  for (Shard& shard : shards) {
    if (absl::Status s = AwaitPorts(shard); !s.ok()) {
      std::cerr << s << "\n";
      stop_shards();
      return 1;
    }
    ports.insert(ports.end(), shard.ports.begin(), shard.ports.end());
  }

  v1::NodeConfig foundation_config = NodeConfig("foundation", dir);
  foundation_config.set_peer_deadline_ms(o.deadline_ms);
  // Each call-home partner holds a connection; threads are not per partner.
  foundation_config.mutable_limits()->set_max_connections(std::max(512, o.partners + 64));
  foundation_config.mutable_limits()->set_peer_max_message_bytes(1 << 20);
  // The combined answer lists every partner's own answer.
  foundation_config.mutable_limits()->set_local_max_message_bytes(64 << 20);
  for (int i = 0; i < o.partners; ++i) {
    v1::PeerConfig* p = foundation_config.add_peers();
    p->set_org_id(OrgName(i));
    if (call_home) {
      p->set_call_home(true);
    } else {
      p->set_address(absl::StrCat("127.0.0.1:", ports[i]));
    }
  }
  absl::StatusOr<bench::NodeProcess> started =
      bench::NodeProcess::Start(node_binary, foundation_config, dir + "/foundation.textproto");
  if (!started.ok()) {
    std::cerr << "foundation: " << started.status() << "\n";
    stop_shards();
    return 1;
  }
  bench::NodeProcess foundation = *std::move(started);
  const int64_t rss_at_start_kb = foundation.StatusKb("VmRSS");
  for (Shard& shard : shards) {
    const std::string line = foundation.peer_address() + "\n";
    (void)!write(shard.to_shard, line.data(), line.size());
  }

  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  expect.org_id = "foundation";
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto analyst_channel = identity::MakeChannel(
      foundation.local_address(),
      *identity::IdentityFromDir(IdDir(dir, "foundation", identity::Role::kAnalyst, "ana")), expect,
      args);
  auto analyst = v1::FederationService::NewStub(*analyst_channel);
  if (call_home) {  // wait until every partner has called home
    const absl::Time deadline = absl::Now() + absl::Seconds(600);
    for (;;) {
      grpc::ClientContext context;
      v1::ListPeersRequest list;
      v1::ListPeersResponse peers;
      int connected = 0;
      if (analyst->ListPeers(&context, list, &peers).ok()) {
        for (const v1::PeerStatus& p : peers.peers()) connected += p.connected() ? 1 : 0;
      }
      if (connected == o.partners) break;
      if (absl::Now() > deadline) {
        std::cerr << "only " << connected << " of " << o.partners << " partners called home\n";
        foundation.Stop();
        stop_shards();
        return 1;
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  const absl::Duration setup_took = absl::Now() - setup_start;

  Target target;
  target.pid = foundation.pid();
  target.local_address = foundation.local_address();
  target.node_dir = IdDir(dir, "foundation", identity::Role::kNode, "");
  target.trust_domain = kTrustDomain;
  target.partner0_address = absl::StrCat("127.0.0.1:", ports[0]);
  target.partner0_org = OrgName(0);
  target.rss_at_start_kb = rss_at_start_kb;
  for (const Shard& shard : shards) target.partner_pids.push_back(shard.pid);
  MeasureAndPrint(o, target, *analyst);
  foundation.Stop();
  stop_shards();

  std::cerr << "partners=" << o.partners << " mode=" << o.mode
            << " partner_processes=" << shards.size()
            << " certs_s=" << absl::ToDoubleSeconds(certs_took)
            << " setup_s=" << absl::ToDoubleSeconds(setup_took) << "\n";
  return 0;
}

}  // namespace
}  // namespace fedshare

int main(int argc, char** argv) {
#ifdef NDEBUG
  // As fedshare-node does (node/server/main.cc): Abseil's lock-order check off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  CLI::App app{"measures a foundation's fan-out against N partners served from one process"};
  fedshare::Options o;
  app.add_option("--partners", o.partners, "partner identities to serve")
      ->check(CLI::Range(1, 100000));
  app.add_option("--mode", o.mode, "direct or call-home (a label only with --foundation-pid)");
  app.add_option("--dir", o.dir,
                 "folder for certificates (kept), data and the foundation's config");
  app.add_option("--records", o.records, "records per partner");
  app.add_option("--questions", o.questions, "federated questions to time");
  app.add_option("--deadline-ms", o.deadline_ms, "the foundation's peer_deadline_ms");
  app.add_option("--setup-threads", o.setup_threads,
                 "threads issuing certificates and loading data");
  app.add_option("--per-process", o.per_process,
                 "partners per partner process (each store holds ~12 files open)")
      ->check(CLI::Range(1, 100000));
  app.add_flag("--header", o.header, "print the table's header first");
  app.add_flag("--baseline-row", o.baseline_row, "print partner 0 alone as a row of its own");
  fedshare::Target external;
  app.add_option(
      "--foundation-pid", external.pid,
      "measure this running foundation instead of starting one (with --foundation-local, "
      "--analyst-dir, --node-dir, --trust-domain, --partner0-address, --partner0-org)");
  app.add_option("--foundation-local", external.local_address, "its local listener");
  app.add_option("--analyst-dir", external.analyst_dir, "its analyst's identity folder");
  app.add_option("--node-dir", external.node_dir, "its node identity folder (for the baseline)");
  app.add_option("--trust-domain", external.trust_domain, "the federation's trust domain");
  app.add_option("--partner0-address", external.partner0_address, "a partner's peer listener");
  app.add_option("--partner0-org", external.partner0_org, "that partner's org");
  CLI11_PARSE(app, argc, argv);
  if (external.pid > 0) {
    spdlog::set_level(spdlog::level::warn);
    return fedshare::MeasureExternal(o, external);
  }
  if (o.dir.empty() || (o.mode != "direct" && o.mode != "call-home")) {
    std::cerr << "--dir is required, and --mode is direct or call-home\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  // The foundation reads its config's paths relative to the config's folder.
  o.dir = std::filesystem::absolute(o.dir).string();
  const std::string node_binary =
      (std::filesystem::path(argv[0]).parent_path() / "fedshare-node").string();
  return fedshare::Run(o, node_binary);
}
