#include "bench/node_rows.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/node_process.h"
#include "bench/synthetic.h"
#include "client/node_client.h"
#include "node/common/status_macros.h"
#include "node/identity/cert_issuer.h"
#include "node/server/config.h"
#include "node/service/limits.h"
#include "node/storage/storage.h"

namespace fedshare::bench {
namespace {

constexpr char kTrustDomain[] = "bench.fedshare";
constexpr char kAsker[] = "foundation";
// The stages of fedshare_answer_stage_seconds, in answer order.
constexpr const char* kStages[] = {"checks", "queue",      "limits",  "consent",
                                   "scan",   "disclosure", "release", "audit"};

struct Pki {
  std::string ca, node, asker, operator_;
};

absl::StatusOr<Pki> MakePki(const std::string& dir) {
  std::filesystem::remove_all(dir);
  Pki pki{dir + "/ca", dir + "/node", dir + "/asker", dir + "/operator"};
  FEDSHARE_RETURN_IF_ERROR(identity::CreateCa(kTrustDomain, pki.ca, 400));
  identity::IssueOptions node;
  node.org = "bench";
  node.role = identity::Role::kNode;
  node.out_dir = pki.node;
  FEDSHARE_RETURN_IF_ERROR(identity::IssueCertificate(pki.ca, node));
  identity::IssueOptions asker;
  asker.org = kAsker;
  asker.role = identity::Role::kNode;
  asker.out_dir = pki.asker;
  FEDSHARE_RETURN_IF_ERROR(identity::IssueCertificate(pki.ca, asker));
  identity::IssueOptions operator_;  // the CLI's, for the ingest rows
  operator_.org = "bench";
  operator_.role = identity::Role::kOperator;
  operator_.name = "bench-operator";
  operator_.out_dir = pki.operator_;
  FEDSHARE_RETURN_IF_ERROR(identity::IssueCertificate(pki.ca, operator_));
  return pki;
}

v1::NodeConfig NodeConfigFor(const NodeRowsOptions& options, const Pki& pki) {
  v1::NodeConfig config;
  if (options.block_cache_bytes > 0) {
    config.mutable_storage()->set_block_cache_bytes(options.block_cache_bytes);
  }
  config.mutable_limits()->set_scan_threads(options.scan_threads);
  config.mutable_limits()->set_unshared_scans(options.unshared_scans);
  config.set_org_id("bench");
  config.set_trust_domain(kTrustDomain);
  config.set_data_dir(options.data_dir);
  config.set_peer_address("127.0.0.1:0");
  config.set_local_address("127.0.0.1:0");
  config.set_metrics_address("127.0.0.1:0");  // the port the ready line names
  config.mutable_tls()->set_cert_file(pki.node + "/cert.pem");
  config.mutable_tls()->set_key_file(pki.node + "/key.pem");
  config.mutable_tls()->set_ca_file(pki.node + "/ca.pem");
  for (const v1::Purpose& p : synthetic::Purposes()) *config.add_purposes() = p;
  *config.add_datasets() = synthetic::ProgramOutcomesSchema();
  // 16 concurrent questions from one asker; the defaults allow 4 calls per
  // caller and 8 questions at once.
  config.mutable_limits()->set_max_calls_per_caller(32);
  config.set_max_concurrent_questions(32);
  v1::Agreement* a = config.add_agreements();
  a->set_id("bench-q1");
  a->add_peers(kAsker);
  a->set_dataset("program_outcomes");
  a->add_purposes("program-evaluation");
  a->add_aggregates(v1::COUNT);
  a->add_aggregates(v1::SUM);
  a->add_aggregates(v1::AVG);
  for (const char* f : {"program", "region", "cohort_year"}) a->add_filter_fields(f);
  a->add_group_fields("program");
  a->add_group_fields("region");
  a->add_measure_fields("outcome_score");
  // The bench repeats one question many times.
  a->mutable_disclosure()->set_repeat_limit(1000000);
  a->mutable_disclosure()->set_repeat_window_seconds(1);
  a->mutable_rate_limit()->set_queries(1000000);
  a->mutable_rate_limit()->set_window_seconds(1);
  return config;
}

std::unique_ptr<client::NodeClient> ConnectAsker(const std::string& address, const Pki& pki) {
  identity::ClientTlsFiles files{pki.asker + "/cert.pem", pki.asker + "/key.pem",
                                 pki.asker + "/ca.pem"};
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  expect.org_id = "bench";
  auto client = client::NodeClient::Connect(address, files, expect);
  if (!client.ok()) return nullptr;
  return std::move(client).value();
}

using Clients = std::vector<std::unique_ptr<client::NodeClient>>;

// `clients` connections, each warmed with one question.
absl::StatusOr<Clients> ConnectClients(const std::string& address, const Pki& pki,
                                       const v1::AggregateQuery& q1, int clients) {
  Clients connected;
  for (int c = 0; c < clients; ++c) {
    connected.push_back(ConnectAsker(address, pki));
    if (connected.back() == nullptr) return absl::UnavailableError("cannot connect");
    FEDSHARE_RETURN_IF_ERROR(connected.back()->Aggregate(q1).status());
  }
  return connected;
}

// Each client asks Q1 `per_client` times at once with the others; fills the
// row's latencies, questions per second and checksum, or returns the first
// error.
absl::Status AskConcurrently(const Clients& connected, const v1::AggregateQuery& q1, int per_client,
                             const std::function<uint64_t(const v1::AggregateResult&)>& checksum,
                             NodeRow* row) {
  const int clients = static_cast<int>(connected.size());
  std::vector<std::vector<double>> ms(clients);
  std::vector<absl::Status> errors(clients);
  std::vector<uint64_t> sums(clients);
  absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < per_client; ++i) {
        absl::Time t = absl::Now();
        absl::StatusOr<v1::AggregateResult> r = connected[c]->Aggregate(q1);
        ms[c].push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
        if (!r.ok()) {
          errors[c] = r.status();
          return;
        }
        sums[c] = checksum(*r);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (int c = 0; c < clients; ++c) {
    FEDSHARE_RETURN_IF_ERROR(errors[c]);
    if (sums[c] != sums[0]) return absl::InternalError("clients got different answers");
    row->latencies_ms.insert(row->latencies_ms.end(), ms[c].begin(), ms[c].end());
  }
  row->checksum = sums[0];
  row->qps = clients * per_client / seconds;
  return absl::OkStatus();
}

// The body of GET `path` on 127.0.0.1:`port`.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError(absl::StrCat("cannot reach the node's metrics on port ", port));
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: bench\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("cannot send the metrics request");
  }
  std::string response;
  char buffer[8192];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos) return absl::UnavailableError("bad metrics response");
  return response.substr(body + 4);
}

// Per stage: the seconds and questions fedshare_answer_stage_seconds counted.
struct StageTotals {
  std::map<std::string, double> seconds;
  std::map<std::string, double> questions;
  double shared = 0;  // fedshare_shared_scan_questions_total
};

absl::StatusOr<StageTotals> ScrapeStages(int port) {
  FEDSHARE_ASSIGN_OR_RETURN(std::string text, HttpGet(port, "/metrics"));
  StageTotals totals;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::map<std::string, double>* into = nullptr;
    if (absl::ConsumePrefix(&line, "fedshare_shared_scan_questions_total ")) {
      if (!absl::SimpleAtod(line, &totals.shared)) totals.shared = 0;
      continue;
    }
    if (absl::ConsumePrefix(&line, "fedshare_answer_stage_seconds_sum{stage=\"")) {
      into = &totals.seconds;
    } else if (absl::ConsumePrefix(&line, "fedshare_answer_stage_seconds_count{stage=\"")) {
      into = &totals.questions;
    } else {
      continue;
    }
    const size_t end = line.find("\"} ");
    double value = 0;
    if (end == absl::string_view::npos || !absl::SimpleAtod(line.substr(end + 3), &value)) {
      continue;
    }
    (*into)[std::string(line.substr(0, end))] = value;
  }
  return totals;
}

// Prints where the node's time went between two scrapes, per question, and
// what the client saw beyond it.
void PrintStages(const NodeRow& row, const StageTotals& before, const StageTotals& after) {
  double mean_ms = 0;
  for (double ms : row.latencies_ms) mean_ms += ms;
  mean_ms /= std::max<size_t>(1, row.latencies_ms.size());
  std::string line;
  double inside_ms = 0;
  for (const char* stage : kStages) {
    auto delta = [&stage](const StageTotals& a, const StageTotals& b, bool seconds) {
      const auto& am = seconds ? a.seconds : a.questions;
      const auto& bm = seconds ? b.seconds : b.questions;
      auto ai = am.find(stage), bi = bm.find(stage);
      return (ai == am.end() ? 0 : ai->second) - (bi == bm.end() ? 0 : bi->second);
    };
    const double questions = delta(after, before, false);
    const double ms = questions > 0 ? 1000 * delta(after, before, true) / questions : 0;
    inside_ms += ms;
    absl::StrAppendFormat(&line, "%s %.2f, ", stage, ms);
  }
  const auto answered_before = before.questions.find("scan");
  const auto answered_after = after.questions.find("scan");
  const double answered = (answered_after == after.questions.end() ? 0 : answered_after->second) -
                          (answered_before == before.questions.end() ? 0 : answered_before->second);
  std::printf(
      "  node, %d client%s, mean ms per question: %sgRPC+TLS+auth and the client %.2f (of %.2f); "
      "%.0f of the %.0f answered took the figures of the same question's running scan\n",
      row.clients, row.clients == 1 ? "" : "s", line.c_str(), mean_ms - inside_ms, mean_ms,
      after.shared - before.shared, answered);
}

// The median time of `calls` calls of `call`. The one-client row times two
// calls beside the question, floors of the parts PrintStages reports:
// PeerService.Describe (gRPC, TLS, authorization and the client, no question
// work) and Q1 as a dry run (the same plus the checks and the synced audit
// append, nothing scanned).
absl::StatusOr<double> CallP50(const std::function<absl::Status()>& call, int calls) {
  std::vector<double> ms;
  for (int i = 0; i < calls; ++i) {
    const absl::Time t = absl::Now();
    FEDSHARE_RETURN_IF_ERROR(call());
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Before the timed rows: Q1 asked `warm` times (the block cache filled), then
// waits (up to a minute) until the node's RocksDB background threads have
// used no CPU for half a second: a store just bulk-loaded is compacted after
// the node starts, and the rows measure the node with its data settled.
// Prints the warm-up questions' p50 and the background CPU time.
absl::Status Settle(const NodeProcess& node, client::NodeClient& client,
                    const v1::AggregateQuery& q1, int warm) {
  const absl::Duration background = RocksDbCpu(node.pid());
  std::vector<double> ms;
  for (int i = 0; i < warm; ++i) {
    const absl::Time t = absl::Now();
    FEDSHARE_RETURN_IF_ERROR(client.Aggregate(q1).status());
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t));
  }
  const absl::Duration waited = WaitForRocksDbIdle(node.pid());
  std::sort(ms.begin(), ms.end());
  std::printf(
      "  node, before the rows: %d questions after its start, p50 %.2f ms, while its store's "
      "background work (compaction) took %.0f ms of CPU; then settled after %.1f s\n",
      warm, ms[ms.size() / 2], absl::ToDoubleMilliseconds(RocksDbCpu(node.pid()) - background),
      absl::ToDoubleSeconds(waited));
  return absl::OkStatus();
}

// The CLI, as the operator, against the node's local listener: `args` after
// the global flags. Its run, or an error quoting what it printed.
absl::StatusOr<ProcessRun> RunCli(const NodeRowsOptions& options, const NodeProcess& node,
                                  const Pki& pki, std::vector<std::string> args,
                                  std::string* printed) {
  std::vector<std::string> argv = {options.cli_binary, "--node", node.local_address(), "--identity",
                                   pki.operator_};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string out = options.dir + "/cli.out";
  FEDSHARE_ASSIGN_OR_RETURN(ProcessRun run, RunProcess(argv, out, absl::Minutes(30)));
  std::ifstream in(out);
  printed->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (run.exit_status != 0) {
    return absl::InternalError(absl::StrCat("fedshare ", args[0], " exited with status ",
                                            run.exit_status, " and printed \"", *printed,
                                            "\" (see ", out, ".err)"));
  }
  return run;
}

// Each run: a node started on an empty store, `fedshare ingest` of
// options.ingest_csv timed, the node stopped. After the last ingest the
// consent records are imported too, so that the store the CLI wrote answers
// Q1 as the one written in process does. The store is left in `data_dir`.
absl::StatusOr<std::vector<IngestRun>> RunIngests(const NodeRowsOptions& options,
                                                  v1::NodeConfig config, const Pki& pki,
                                                  const std::string& data_dir,
                                                  absl::Duration* first_start) {
  config.set_data_dir(data_dir);
  std::vector<IngestRun> runs;
  for (int i = 0; i < options.ingest_runs; ++i) {
    std::filesystem::remove_all(data_dir);
    const absl::Time spawned = absl::Now();
    FEDSHARE_ASSIGN_OR_RETURN(
        NodeProcess node,
        NodeProcess::Start(options.node_binary, config, options.dir + "/ingest.textproto"));
    if (i == 0) *first_start = absl::Now() - spawned;
    ResetPeakRss(node.pid());
    const absl::Duration node_cpu = ProcCpu(node.pid());
    std::string printed;
    FEDSHARE_ASSIGN_OR_RETURN(
        ProcessRun run,
        RunCli(options, node, pki, {"ingest", "--dataset", "program_outcomes", options.ingest_csv},
               &printed));
    IngestRun r;
    r.wall = run.wall;
    r.cli_cpu = run.cpu;
    r.node_cpu = ProcCpu(node.pid()) - node_cpu;
    r.node_peak_rss_kb = node.StatusKb("VmHWM");
    // "wrote N rows to DATASET (...)"
    absl::string_view line = printed;
    if (!absl::ConsumePrefix(&line, "wrote ") ||
        !absl::SimpleAtoi(line.substr(0, line.find(' ')), &r.rows_written)) {
      return absl::InternalError(absl::StrCat("fedshare ingest printed \"", printed, "\""));
    }
    runs.push_back(r);
    if (i + 1 == options.ingest_runs) {
      FEDSHARE_RETURN_IF_ERROR(
          RunCli(options, node, pki, {"consent", "import", options.consent_csv}, &printed)
              .status());
    }
    if (int status = node.Stop(); status != 0) {
      return absl::InternalError(absl::StrCat("the node exited with status ", status));
    }
  }
  return runs;
}

}  // namespace

absl::StatusOr<NodeRows> RunNodeRows(
    const NodeRowsOptions& options, const v1::AggregateQuery& q1,
    const std::function<uint64_t(const v1::AggregateResult&)>& checksum) {
  FEDSHARE_ASSIGN_OR_RETURN(Pki pki, MakePki(options.dir + "/pki"));
  const v1::NodeConfig config = NodeConfigFor(options, pki);
  FEDSHARE_RETURN_IF_ERROR(server::ValidateNodeConfig(config));
  NodeRows out;
  const v1::Limits limits = service::EffectiveLimits(config.limits());
  const int64_t cache = config.storage().block_cache_bytes() > 0
                            ? config.storage().block_cache_bytes()
                            : static_cast<int64_t>(storage::kDefaultBlockCacheBytes);
  out.budget_bytes = cache + limits.scan_threads() * limits.query_memory_budget_bytes();
  out.budget_text = absl::StrFormat(
      "block cache %d MiB + %d questions at once x %d MiB limits.query_memory_budget_bytes",
      cache >> 20, limits.scan_threads(), limits.query_memory_budget_bytes() >> 20);

  // With the ingest rows, the questions go to the store the CLI wrote.
  v1::NodeConfig asked_config = config;
  if (!options.ingest_csv.empty()) {
    const std::string cli_data = options.dir + "/cli-data";
    FEDSHARE_ASSIGN_OR_RETURN(out.ingests, RunIngests(options, config, pki, cli_data, &out.start));
    asked_config.set_data_dir(cli_data);
    // The ingests' files written back to disk now, not during the rows below
    // (the kernel's writeback took a core from the first questions).
    sync();
  }
  const absl::Time spawned = absl::Now();
  FEDSHARE_ASSIGN_OR_RETURN(NodeProcess asked, NodeProcess::Start(options.node_binary, asked_config,
                                                                  options.dir + "/node.textproto"));
  (options.ingest_csv.empty() ? out.start : out.restart) = absl::Now() - spawned;
  int metrics_port = 0;
  const std::string& metrics = asked.metrics_address();
  if (!absl::SimpleAtoi(metrics.substr(metrics.rfind(':') + 1), &metrics_port)) {
    return absl::InternalError("the node's ready line names no metrics listener");
  }
  {
    std::unique_ptr<client::NodeClient> client = ConnectAsker(asked.peer_address(), pki);
    if (client == nullptr) return absl::UnavailableError("cannot connect");
    FEDSHARE_RETURN_IF_ERROR(Settle(asked, *client, q1, std::max(options.runs, 20)));
  }
  for (int clients : options.clients) {
    NodeRow row;
    row.clients = clients;
    const int per_client =
        clients == 1 ? std::max(options.runs, 20) : std::max(options.runs, 60 / clients);
    FEDSHARE_ASSIGN_OR_RETURN(Clients connected,
                              ConnectClients(asked.peer_address(), pki, q1, clients));
    ResetPeakRss(asked.pid());
    FEDSHARE_ASSIGN_OR_RETURN(StageTotals before, ScrapeStages(metrics_port));
    FEDSHARE_RETURN_IF_ERROR(AskConcurrently(connected, q1, per_client, checksum, &row));
    FEDSHARE_ASSIGN_OR_RETURN(StageTotals after, ScrapeStages(metrics_port));
    row.peak_rss_kb = asked.StatusKb("VmHWM");
    PrintStages(row, before, after);
    if (clients == 1) {
      FEDSHARE_ASSIGN_OR_RETURN(
          double round_trip_ms,
          CallP50([&] { return connected[0]->Describe().status(); }, per_client));
      std::printf(
          "  node, 1 client: a call with no question (PeerService.Describe) on the same "
          "connection, p50 %.2f ms\n",
          round_trip_ms);
      v1::AggregateRequest dry_run;
      *dry_run.mutable_query() = q1;
      dry_run.set_dry_run(true);
      FEDSHARE_ASSIGN_OR_RETURN(
          double dry_run_ms,
          CallP50([&] { return connected[0]->Aggregate(dry_run).status(); }, per_client));
      std::printf(
          "  node, 1 client: Q1 as a dry run (checked and audited with a synced write, not "
          "scanned), p50 %.2f ms\n",
          dry_run_ms);
    }
    out.rows.push_back(std::move(row));
  }
  std::fflush(stdout);
  if (int status = asked.Stop(); status != 0) {
    return absl::InternalError(absl::StrCat("the node exited with status ", status));
  }
  return out;
}

}  // namespace fedshare::bench
