// Issue 3: a node killed with SIGKILL while ingesting restarts with every
// acknowledged batch whole and no partial batch. Real process, real RocksDB,
// repeated over several kills on the same store.
#include <signal.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr int kRowsPerBatch = 3000;
constexpr int kRounds = 5;

// Batch `b`: kRowsPerBatch rows whose subjects are "b<b>-<i>".
std::string Batch(int b) {
  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  for (int i = 0; i < kRowsPerBatch; ++i) {
    absl::StrAppend(&csv, "b", b, "-", i, ",literacy,north,2021,", 20 + i % 40, ",true,", i % 100,
                    ",", i % 50, ",1\n");
  }
  return csv;
}

// Rows per batch number in an exported CSV.
std::map<int, int> RowsPerBatch(const std::string& csv) {
  std::map<int, int> rows;
  bool header = true;
  for (absl::string_view line : absl::StrSplit(csv, '\n', absl::SkipEmpty())) {
    if (header) {
      header = false;
      continue;
    }
    absl::string_view subject = line.substr(0, line.find(','));
    int batch = 0;
    if (subject.size() > 1 && subject[0] == 'b' &&
        absl::SimpleAtoi(subject.substr(1, subject.find('-') - 1), &batch)) {
      ++rows[batch];
    } else {
      ADD_FAILURE() << "unexpected row: " << line;
    }
  }
  return rows;
}

TEST(CrashTest, KilledDuringIngestKeepsEveryAcknowledgedBatchAndNoPartialOne) {
  TempDir tmp("crash");
  Pki pki(tmp.Sub("pki"), kTrustDomain);
  std::string node_id = pki.Issue("partner-a", Role::kNode);
  std::string op = pki.Issue("partner-a", Role::kOperator, "olga");
  v1::NodeConfig config = BaseNodeConfig("partner-a", kTrustDomain, tmp.Sub("data"), node_id);
  *config.add_datasets() = ProgramOutcomesSchema();

  std::set<int> acknowledged;
  int next_batch = 0;
  // Each round restarts the node and checks the store; all but the last then
  // ingest and kill.
  for (int round = 0; round <= kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config, tmp.Sub("node.textproto")));

    // Everything acknowledged so far is there, whole; nothing else is partial.
    auto admin = Connect(node.local_address, op, kTrustDomain);
    ASSERT_NE(admin, nullptr);
    std::string exported;
    ASSERT_OK(admin->Export("program_outcomes", v1::CSV, [&](const v1::ExportChunk& c) {
      exported += c.data();
      return absl::OkStatus();
    }));
    std::map<int, int> rows = RowsPerBatch(exported);
    for (int b : acknowledged) EXPECT_EQ(rows[b], kRowsPerBatch) << "acknowledged batch " << b;
    for (const auto& [b, n] : rows) EXPECT_EQ(n, kRowsPerBatch) << "partial batch " << b;
    if (round == kRounds) break;

    // Ingest batches from another thread; kill the node once a few are
    // acknowledged, while the next one is on its way.
    absl::Mutex mu;
    int acked_this_round = 0;
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      auto client = Connect(node.local_address, op, kTrustDomain);
      while (!stop.load()) {
        int b;
        {
          absl::MutexLock lock(&mu);
          b = next_batch++;
        }
        absl::StatusOr<v1::IngestResponse> r =
            client->Ingest("program_outcomes", v1::CSV, false, Batch(b));
        if (!r.ok()) break;  // the node died under us: not acknowledged
        ASSERT_EQ(r->rows_written(), kRowsPerBatch);
        absl::MutexLock lock(&mu);
        acknowledged.insert(b);
        ++acked_this_round;
      }
    });
    const int target = 1 + round % 3;
    {
      auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return acked_this_round >= target; };
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(&reached));
    }
    int status = node.process->Signal(SIGKILL);
    stop.store(true);
    writer.join();
    ASSERT_TRUE(WIFSIGNALED(status)) << "the node should have been killed";
  }

  EXPECT_GE(acknowledged.size(), static_cast<size_t>(kRounds));
}

}  // namespace
}  // namespace fedshare::testing
