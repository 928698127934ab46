// fedshare-sim-partners: measures a foundation's fan-out against N partners
// served from this one process (issue 13).
//
//   fedshare-sim-partners --partners 100 --mode call-home --dir /tmp/sim
//
// Each partner is a real node (server::Node: its own certificate, RocksDB
// store, agreements, audit log and answer path) holding a small synthetic
// program_outcomes dataset; it listens on its own loopback port (direct) or
// calls home to the foundation (call-home, no peer listener). The foundation
// is a separate fedshare-node process (found beside this binary), so its
// peak RSS and thread count are its own. The foundation's analyst asks
// --questions federated questions of all partners; the tool prints one line
// with fan-out latency p50/p99, coverage, and the foundation's peak RSS and
// threads.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/synthetic.h"
#include "client/node_client.h"
#include "google/protobuf/text_format.h"
#include "node/identity/cert_issuer.h"
#include "node/server/node.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace fedshare {
namespace {

constexpr char kTrustDomain[] = "sim.fedshare.test";

struct Foundation {
  pid_t pid = -1;
  int stdout_fd = -1;
  std::string peer_address;
  std::string local_address;
};

absl::StatusOr<std::string> ReadLine(int fd, absl::Duration timeout) {
  std::string line;
  const absl::Time deadline = absl::Now() + timeout;
  char c;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    if (read(fd, &c, 1) != 1) return absl::UnavailableError("closed");
    if (c == '\n') return line;
    line.push_back(c);
  }
  return absl::DeadlineExceededError("no line");
}

absl::StatusOr<Foundation> StartFoundation(const std::string& node_binary,
                                           const v1::NodeConfig& config,
                                           const std::string& config_path) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  std::ofstream(config_path) << text;
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return absl::InternalError("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, (config_path + ".log").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {node_binary, "--config", config_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Foundation f;
  if (posix_spawn(&f.pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) {
    return absl::InternalError("cannot start " + node_binary);
  }
  close(pipe_fds[1]);
  f.stdout_fd = pipe_fds[0];
  absl::StatusOr<std::string> ready = ReadLine(f.stdout_fd, absl::Seconds(60));
  if (!ready.ok()) return ready.status();
  for (absl::string_view part : absl::StrSplit(*ready, ' ')) {
    if (absl::ConsumePrefix(&part, "peer=")) f.peer_address = std::string(part);
    if (absl::ConsumePrefix(&part, "local=")) f.local_address = std::string(part);
  }
  return f;
}

int64_t ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, key + ":")) continue;
    int64_t value = -1;
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() >= 2 && absl::SimpleAtoi(f[1], &value)) return value;
  }
  return -1;
}

v1::NodeConfig NodeConfig(const std::string& org, const std::string& dir) {
  v1::NodeConfig config;
  config.set_org_id(org);
  config.set_trust_domain(kTrustDomain);
  config.set_data_dir(dir + "/data/" + org);
  config.set_peer_address("127.0.0.1:0");
  config.set_local_address("127.0.0.1:0");
  const std::string id = dir + "/pki/" + org + "-node";
  config.mutable_tls()->set_cert_file(id + "/cert.pem");
  config.mutable_tls()->set_key_file(id + "/key.pem");
  config.mutable_tls()->set_ca_file(id + "/ca.pem");
  for (const v1::Purpose& p : synthetic::Purposes()) *config.add_purposes() = p;
  return config;
}

absl::Status Issue(const std::string& dir, const std::string& org, identity::Role role,
                   const std::string& name) {
  identity::IssueOptions options;
  options.org = org;
  options.role = role;
  options.name = name;
  options.out_dir =
      absl::StrCat(dir, "/pki/", org, "-", identity::RoleName(role), name.empty() ? "" : "-", name);
  if (std::filesystem::exists(options.out_dir + "/cert.pem")) return absl::OkStatus();
  return identity::IssueCertificate(dir + "/pki/ca", options);
}

int Run(int partners, const std::string& mode, const std::string& dir, int records, int questions,
        int deadline_ms, const std::string& node_binary) {
  const bool call_home = mode == "call-home";
  std::filesystem::create_directories(dir + "/pki");
  if (!std::filesystem::exists(dir + "/pki/ca/ca.pem")) {
    if (absl::Status s = identity::CreateCa(kTrustDomain, dir + "/pki/ca", 3650); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  std::vector<std::string> orgs;
  for (int i = 0; i < partners; ++i) orgs.push_back(absl::StrCat("partner-", i));
  for (const std::string& org : orgs) {
    absl::Status s = Issue(dir, org, identity::Role::kNode, "");
    if (s.ok()) s = Issue(dir, org, identity::Role::kOperator, "op");
    if (!s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  if (absl::Status s = Issue(dir, "foundation", identity::Role::kNode, ""); !s.ok()) return 1;
  if (absl::Status s = Issue(dir, "foundation", identity::Role::kAnalyst, "ana"); !s.ok()) {
    return 1;
  }

  v1::NodeConfig foundation_config = NodeConfig("foundation", dir);
  foundation_config.set_peer_deadline_ms(deadline_ms);
  // Call-home partners each hold a thread of the peer listener (docs/operators.md).
  foundation_config.mutable_limits()->set_max_threads(std::max(64, partners + 16));
  foundation_config.mutable_limits()->set_max_connections(std::max(512, partners + 64));
  foundation_config.mutable_limits()->set_peer_max_message_bytes(1 << 20);
  std::filesystem::remove_all(dir + "/data");
  std::filesystem::create_directories(dir + "/data");
  Foundation foundation;
  if (call_home) {
    for (const std::string& org : orgs) {
      v1::PeerConfig* p = foundation_config.add_peers();
      p->set_org_id(org);
      p->set_call_home(true);
    }
    absl::StatusOr<Foundation> f =
        StartFoundation(node_binary, foundation_config, dir + "/foundation.textproto");
    if (!f.ok()) {
      std::cerr << "foundation: " << f.status() << "\n";
      return 1;
    }
    foundation = *f;
  }

  synthetic::Options data;
  data.rows = records;
  std::vector<std::unique_ptr<server::Node>> nodes;
  for (int i = 0; i < partners; ++i) {
    v1::NodeConfig config = NodeConfig(orgs[i], dir);
    *config.add_datasets() = synthetic::ProgramOutcomesSchema();
    v1::Agreement* a = config.add_agreements();
    google::protobuf::TextFormat::ParseFromString(
        R"pb(
          id: "open"
          peers: "foundation"
          dataset: "program_outcomes"
          purposes: "program-evaluation"
          aggregates: [ COUNT, COUNT_SUBJECTS, AVG ]
          group_fields: [ "program" ]
          measure_fields: [ "outcome_score" ]
          disclosure { repeat_limit: 1000000 }
        )pb",
        a);
    config.mutable_limits()->set_max_threads(4);
    if (call_home) {
      config.set_disable_peer_listener(true);
      v1::UpstreamConfig* u = config.add_upstreams();
      u->set_org_id("foundation");
      u->set_address(foundation.peer_address);
    }
    absl::StatusOr<std::unique_ptr<server::Node>> node = server::Node::Create(config, {});
    if (!node.ok()) {
      std::cerr << orgs[i] << ": " << node.status() << "\n";
      return 1;
    }
    identity::ServerExpectation expect;
    expect.trust_domain = kTrustDomain;
    expect.org_id = orgs[i];
    const std::string op = dir + "/pki/" + orgs[i] + "-operator-op";
    absl::StatusOr<identity::ClientTlsFiles> files = identity::IdentityFromDir(op);
    auto admin = client::NodeClient::Connect((*node)->local_address(), *files, expect);
    data.seed = static_cast<uint64_t>(i + 1);
    absl::StatusOr<v1::IngestResponse> ingested =
        (*admin)->Ingest("program_outcomes", v1::CSV, false, synthetic::RecordsCsv(data));
    absl::StatusOr<v1::ConsentImportResponse> consented =
        (*admin)->ImportConsent(synthetic::ConsentCsv(data));
    if (!ingested.ok() || !consented.ok()) {
      std::cerr << orgs[i] << ": cannot load data\n";
      return 1;
    }
    if (!call_home) {
      v1::PeerConfig* p = foundation_config.add_peers();
      p->set_org_id(orgs[i]);
      p->set_address((*node)->peer_address());
    }
    nodes.push_back(*std::move(node));
  }
  if (!call_home) {
    absl::StatusOr<Foundation> f =
        StartFoundation(node_binary, foundation_config, dir + "/foundation.textproto");
    if (!f.ok()) {
      std::cerr << "foundation: " << f.status() << "\n";
      return 1;
    }
    foundation = *f;
  }

  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  expect.org_id = "foundation";
  auto analyst = client::NodeClient::Connect(
      foundation.local_address, *identity::IdentityFromDir(dir + "/pki/foundation-analyst-ana"),
      expect);
  if (call_home) {  // wait until every partner has called home
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    for (;;) {
      absl::StatusOr<v1::ListPeersResponse> peers = (*analyst)->ListPeers(false);
      int connected = 0;
      if (peers.ok()) {
        for (const v1::PeerStatus& p : peers->peers()) connected += p.connected() ? 1 : 0;
      }
      if (connected == partners) break;
      if (absl::Now() > deadline) {
        std::cerr << "only " << connected << " of " << partners << " partners called home\n";
        return 1;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  std::atomic<bool> sampling{true};
  std::atomic<int64_t> max_threads{0};
  std::thread sampler([&] {
    while (sampling.load()) {
      max_threads = std::max<int64_t>(max_threads.load(), ProcStatus(foundation.pid, "Threads"));
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  v1::FederatedAggregateRequest request;
  request.set_all_peers(true);
  request.set_sql(
      "SELECT program, COUNT(*), AVG(outcome_score) FROM program_outcomes GROUP BY program "
      "PURPOSE 'program-evaluation'");
  std::vector<double> ms;
  int answered = 0;
  for (int q = 0; q <= questions; ++q) {  // the first warms channels up
    const absl::Time start = absl::Now();
    absl::StatusOr<v1::FederatedAggregateResponse> r = (*analyst)->FederatedAggregate(request);
    const double took = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!r.ok()) {
      std::cerr << r.status() << "\n";
      continue;
    }
    if (q == 0) continue;
    ms.push_back(took);
    for (const v1::PartnerCoverage& c : r->coverage()) {
      answered += c.state() == v1::PartnerCoverage::ANSWERED ? 1 : 0;
    }
  }
  sampling = false;
  sampler.join();
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  const int64_t hwm_kb = ProcStatus(foundation.pid, "VmHWM");
  const int64_t threads_idle = ProcStatus(foundation.pid, "Threads");
  std::printf(
      "mode=%s partners=%d records_per_partner=%d questions=%zu p50_ms=%.1f p99_ms=%.1f "
      "answered=%.1f%% foundation_peak_rss_mb=%.1f foundation_threads_max=%lld "
      "foundation_threads_idle=%lld\n",
      mode.c_str(), partners, records, ms.size(), pct(0.5), pct(0.99),
      ms.empty() ? 0.0 : 100.0 * answered / (ms.size() * partners), hwm_kb / 1024.0,
      static_cast<long long>(max_threads.load()), static_cast<long long>(threads_idle));
  kill(foundation.pid, SIGTERM);
  waitpid(foundation.pid, nullptr, 0);
  for (auto& node : nodes) node->Shutdown(absl::ZeroDuration());
  return 0;
}

}  // namespace
}  // namespace fedshare

int main(int argc, char** argv) {
  CLI::App app{"measures a foundation's fan-out against N partners served from one process"};
  int partners = 10, records = 300, questions = 20, deadline_ms = 30000;
  std::string mode = "direct", dir;
  app.add_option("--partners", partners, "partner nodes to serve")->check(CLI::Range(1, 100000));
  app.add_option("--mode", mode, "direct or call-home")
      ->check(CLI::IsMember({"direct", "call-home"}));
  app.add_option("--dir", dir, "folder for certificates, data and the foundation's config")
      ->required();
  app.add_option("--records", records, "records per partner");
  app.add_option("--questions", questions, "federated questions to time");
  app.add_option("--deadline-ms", deadline_ms, "the foundation's peer_deadline_ms");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  const std::string node_binary =
      (std::filesystem::path(argv[0]).parent_path() / "fedshare-node").string();
  return fedshare::Run(partners, mode, dir, records, questions, deadline_ms, node_binary);
}
