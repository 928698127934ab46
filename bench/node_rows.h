// fedshare-bench's node rows: Q1 asked of a real fedshare-node process over
// gRPC+mTLS by 1, 4 and 16 clients at once, on the store the in-process rows
// wrote. The node runs in its own process so that its peak RSS (VmHWM) is its
// own; where each answer's time went inside the node is read from the node's
// metrics (fedshare_answer_stage_seconds) and printed per row.
//
// Before the questions, optionally, the ingest rows: the same records, as a
// CSV file, ingested through the real CLI (`fedshare ingest` over the node's
// local listener) into a node on an empty store, each run on a fresh one and
// timed from the command's start to its end; after the last, the consent
// records imported by the CLI too, the node stopped and started again on the
// store the CLI wrote (its cold start after a bulk ingest). The questions
// are then asked of that node, so their checksum checks the ingest too.
#ifndef FEDSHARE_BENCH_NODE_ROWS_H_
#define FEDSHARE_BENCH_NODE_ROWS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedshare/v1/query.pb.h"

namespace fedshare::bench {

struct NodeRowsOptions {
  std::string dir;               // certificates, the node's config and its log go here
  std::string data_dir;          // the store (closed by the caller)
  std::string node_binary;       // fedshare-node
  int runs = 7;                  // per client at least; the rows ask 20 and 60 in all
  size_t block_cache_bytes = 0;  // storage.block_cache_bytes; 0: the node's default
  int scan_threads = 0;          // limits.scan_threads; 0: the node's default
  bool unshared_scans = false;   // limits.unshared_scans
  std::vector<int> clients = {1, 4, 16};
  // The ingest rows, when `ingest_csv` is set: the records the store holds
  // (and `consent_csv`, their consents) as files, ingested `ingest_runs`
  // times by `cli_binary` (fedshare).
  std::string ingest_csv;
  std::string consent_csv;
  int ingest_runs = 3;
  std::string cli_binary;
};

// One `fedshare ingest` of the file into an empty store.
struct IngestRun {
  absl::Duration wall;           // the CLI, from its start to its end
  absl::Duration cli_cpu;        // the CLI's own CPU time
  absl::Duration node_cpu;       // the node's CPU time meanwhile
  int64_t node_peak_rss_kb = 0;  // the node's VmHWM during this run alone
  int64_t rows_written = 0;      // as the CLI reports them
};

struct NodeRow {
  int clients = 0;
  std::vector<double> latencies_ms;  // every timed question, as its client saw it
  double qps = 0;
  uint64_t checksum = 0;
  int64_t peak_rss_kb = 0;  // the node's VmHWM during this row alone
};

struct NodeRows {
  std::vector<NodeRow> rows;
  // From spawning the node to its ready line: on the store written in
  // process, or with the ingest rows on the first empty store.
  absl::Duration start;
  // With the ingest rows: each run, and the start (spawn to ready line) of
  // the node the questions are asked of, on the store the CLI wrote.
  std::vector<IngestRun> ingests;
  absl::Duration restart;
  // What the node's memory is bounded by: the block cache and, per question
  // answered at once (limits.scan_threads), limits.query_memory_budget_bytes.
  int64_t budget_bytes = 0;
  std::string budget_text;
};

// Starts the node on `options.data_dir`, runs the ingest rows if asked (and
// starts the node again), asks `q1` as a peer for each entry of
// `options.clients`, prints each row's stage breakdown, and stops the node.
// `checksum` turns an answer into the bench's checksum; every client of a
// row must agree.
absl::StatusOr<NodeRows> RunNodeRows(
    const NodeRowsOptions& options, const v1::AggregateQuery& q1,
    const std::function<uint64_t(const v1::AggregateResult&)>& checksum);

}  // namespace fedshare::bench

#endif  // FEDSHARE_BENCH_NODE_ROWS_H_
