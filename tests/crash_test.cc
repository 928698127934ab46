// Issue 3: a node killed with SIGKILL while ingesting restarts with every
// acknowledged batch whole and no partial batch. Real process, real RocksDB,
// repeated over several kills on the same store.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/audit/checkpoint.h"
#include "node/audit/merkle.h"
#include "node/common/status_matchers.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";
// Every fourth batch is large enough that the node stages its write in
// table files (a bulk write) instead of one write batch.
int RowsInBatch(int b) { return b % 4 == 3 ? 60000 : 3000; }
constexpr int kRounds = 5;

// Batch `b`: RowsInBatch(b) rows whose subjects are "b<b>-<i>".
std::string Batch(int b) {
  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  for (int i = 0; i < RowsInBatch(b); ++i) {
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

// RowsPerBatch of everything program_outcomes holds, exported through `admin`.
absl::StatusOr<std::map<int, int>> StoredRowsPerBatch(client::NodeClient& admin) {
  std::string exported;
  absl::Status status = admin.Export("program_outcomes", v1::CSV, [&](const v1::ExportChunk& c) {
    exported += c.data();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return RowsPerBatch(exported);
}

// partner-a's node with program_outcomes in a fresh folder, its operator
// olga and foundation's node identity.
struct Partner {
  explicit Partner(const std::string& name)
      : tmp(name),
        pki(tmp.Sub("pki"), kTrustDomain),
        node_id(pki.Issue("partner-a", Role::kNode)),
        op(pki.Issue("partner-a", Role::kOperator, "olga")),
        foundation(pki.Issue("foundation", Role::kNode)),
        config(BaseNodeConfig("partner-a", kTrustDomain, tmp.Sub("data"), node_id)) {
    *config.add_datasets() = ProgramOutcomesSchema();
  }
  TempDir tmp;
  Pki pki;
  std::string node_id, op, foundation;
  v1::NodeConfig config;
};

// Waits until `reached` holds (asked under `mu`), then SIGKILLs `node`
// while `workers` are still at work, tells them to `stop` and joins them.
void KillWhen(absl::Mutex& mu, const std::function<bool()>& reached, NodeProcess& node,
              std::atomic<bool>& stop, std::vector<std::thread>& workers) {
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&reached));
  }
  int status = node.process->Signal(SIGKILL);
  stop.store(true);
  for (std::thread& t : workers) t.join();
  ASSERT_TRUE(WIFSIGNALED(status)) << "the node should have been killed";
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
    ASSERT_OK_AND_ASSIGN(auto rows, StoredRowsPerBatch(*admin));
    for (int b : acknowledged) EXPECT_EQ(rows[b], RowsInBatch(b)) << "acknowledged batch " << b;
    for (const auto& [b, n] : rows) EXPECT_EQ(n, RowsInBatch(b)) << "partial batch " << b;
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
        ASSERT_EQ(r->rows_written(), RowsInBatch(b));
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

// Issue 11: audit appends of concurrent questions share one synced write.
// Killed while many questions are answered at once, a node restarts with the
// entry of every answer it released: at its index, the very leaf the receipt
// holds, in a log that verifies and extends every released checkpoint.
TEST(CrashTest, KilledWhileAnsweringKeepsTheAuditEntryOfEveryReleasedAnswer) {
  Partner partner("crash-answers");
  const TempDir& tmp = partner.tmp;
  const std::string& op = partner.op;
  const std::string& foundation = partner.foundation;
  v1::NodeConfig& config = partner.config;
  v1::Agreement agreement = OpenAgreement("foundation-eval", "foundation");
  agreement.mutable_disclosure()->set_repeat_limit(1000000);
  *config.add_agreements() = agreement;
  config.mutable_limits()->set_max_calls_per_caller(16);
  config.set_max_concurrent_questions(16);
  constexpr int kAskers = 8;

  std::vector<v1::Receipt> released;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config, tmp.Sub("node.textproto")));
    auto admin = Connect(node.local_address, op, kTrustDomain);
    ASSERT_NE(admin, nullptr);
    // Every answer released before a kill is in the log as its receipt says.
    ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, admin->ListAudit(0, 1));
    ASSERT_TRUE(audit.chain_valid()) << audit.chain_error();
    for (const v1::Receipt& receipt : released) {
      ASSERT_OK(audit::VerifyReceipt(receipt, ""));
      v1::AuditProofRequest request;
      request.set_inclusion(true);
      request.set_leaf_index(receipt.audit_index());
      request.set_from_tree_size(receipt.checkpoint().tree_size());
      ASSERT_OK_AND_ASSIGN(v1::AuditProofResponse proof, admin->AuditProof(request));
      EXPECT_EQ(proof.leaf(), receipt.leaf()) << "audit leaf " << receipt.audit_index();
      const v1::SignedCheckpoint& now = proof.checkpoint();
      EXPECT_EQ(now.public_key(), receipt.checkpoint().public_key());
      EXPECT_OK(audit::VerifyInclusion(
          receipt.audit_index(), now.tree_size(), receipt.entry_hash(),
          {proof.inclusion_proof().begin(), proof.inclusion_proof().end()}, now.root_hash()));
      EXPECT_OK(audit::VerifyConsistency(
          receipt.checkpoint().tree_size(), now.tree_size(), receipt.checkpoint().root_hash(),
          now.root_hash(), {proof.consistency_proof().begin(), proof.consistency_proof().end()}));
    }
    if (round == 0) {
      ASSERT_OK(admin->Ingest("program_outcomes", v1::CSV, false, Batch(0)).status());
    }

    // kAskers askers at once; kill once 4 answers per asker are released.
    absl::Mutex mu;
    int released_this_round = 0;
    std::atomic<bool> stop{false};
    std::vector<std::thread> askers;
    for (int a = 0; a < kAskers; ++a) {
      askers.emplace_back([&] {
        auto peer = Connect(node.peer_address, foundation, kTrustDomain, "partner-a");
        v1::AggregateQuery query;
        query.set_dataset("program_outcomes");
        query.set_purpose("program-evaluation");
        query.add_aggregates()->set_kind(v1::COUNT);
        while (!stop.load()) {
          absl::StatusOr<v1::AggregateResult> r = peer->Aggregate(query);
          if (!r.ok()) break;  // the node died under us: nothing released
          absl::MutexLock lock(&mu);
          released.push_back(r->receipt());
          ++released_this_round;
        }
      });
    }
    KillWhen(
        mu, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return released_this_round >= 4 * kAskers; },
        node, stop, askers);
  }
  EXPECT_GE(released.size(), static_cast<size_t>(3 * 4 * kAskers));
}

// Consent batch `c`: kConsentPerBatch GIVEN events for subjects "k<c>-<i>".
constexpr int kConsentPerBatch = 200;
std::string ConsentBatch(int c) {
  std::string csv = "subject,purpose,event,time\n";
  for (int i = 0; i < kConsentPerBatch; ++i) {
    absl::StrAppend(&csv, "k", c, "-", i, ",program-evaluation,GIVEN,2025-01-01\n");
  }
  return csv;
}

// The crash harness (`make crash`): FEDSHARE_CRASH_TRIALS trials (seed
// FEDSHARE_CRASH_SEED, default 1). Each trial restarts the node and checks
// the store, then runs ingest, consent import and a question stream at once
// and SIGKILLs the node after a seeded random number of acknowledged
// operations, with the next ones in flight. After every restart: every
// acknowledged ingest batch is whole and no batch is partial; every consent
// batch is all there or not at all (re-importing it adds 0 or all events,
// 0 when acknowledged); every acknowledged answer is in the audit log and
// its hash chain verifies.
// Issue 11: a question's rate-limit count has no synced write of its own; it
// is written with the question's audit entry. Killed right after answering
// up to the limit, a node still refuses the next question.
TEST(CrashTest, KilledAfterAnsweringUpToTheRateLimitStillRefusesTheNext) {
  Partner partner("crash-rate");
  v1::Agreement agreement = OpenAgreement("foundation-eval", "foundation");
  agreement.mutable_rate_limit()->set_queries(3);
  agreement.mutable_rate_limit()->set_window_seconds(3600);
  *partner.config.add_agreements() = agreement;
  v1::AggregateQuery query;
  query.set_dataset("program_outcomes");
  query.set_purpose("program-evaluation");
  query.add_aggregates()->set_kind(v1::COUNT);
  {
    ASSERT_OK_AND_ASSIGN(NodeProcess node,
                         StartNodeProcess(partner.config, partner.tmp.Sub("node.textproto")));
    auto peer = Connect(node.peer_address, partner.foundation, kTrustDomain, "partner-a");
    for (int i = 0; i < 3; ++i) {
      SCOPED_TRACE(absl::StrCat("question ", i));
      ASSERT_OK(peer->Aggregate(query).status());
    }
    ASSERT_TRUE(WIFSIGNALED(node.process->Signal(SIGKILL)));
  }
  ASSERT_OK_AND_ASSIGN(NodeProcess node,
                       StartNodeProcess(partner.config, partner.tmp.Sub("node.textproto")));
  auto peer = Connect(node.peer_address, partner.foundation, kTrustDomain, "partner-a");
  EXPECT_THAT(peer->Aggregate(query).status(),
              StatusIs(absl::StatusCode::kResourceExhausted, ::testing::HasSubstr("rate-limit")));
}

TEST(CrashHarness, SeededRandomKills) {
  const char* trials_env = std::getenv("FEDSHARE_CRASH_TRIALS");
  int trials = 0;
  if (trials_env == nullptr || !absl::SimpleAtoi(trials_env, &trials) || trials <= 0) {
    GTEST_SKIP() << "set FEDSHARE_CRASH_TRIALS (make crash runs 100)";
  }
  uint64_t seed = 1;
  if (const char* s = std::getenv("FEDSHARE_CRASH_SEED")) {
    ASSERT_TRUE(absl::SimpleAtoi(s, &seed));
  }
  std::mt19937_64 rng(seed);

  Partner partner("crash-harness");
  const TempDir& tmp = partner.tmp;
  const std::string& op = partner.op;
  const std::string& foundation = partner.foundation;
  v1::NodeConfig& config = partner.config;
  *config.add_agreements() = OpenAgreement("foundation-eval", "foundation");

  absl::Mutex mu;
  std::set<int> acked_batches;
  std::set<int> acked_consent;
  std::vector<int> sent_consent;  // of the last trial
  int answers_acked = 0;
  int next_batch = 0, next_consent = 0;
  int kills = 0;
  for (int trial = 0; trial <= trials; ++trial) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " trial ", trial));
    ASSERT_OK_AND_ASSIGN(NodeProcess node, StartNodeProcess(config, tmp.Sub("node.textproto")));
    auto admin = Connect(node.local_address, op, kTrustDomain);
    ASSERT_NE(admin, nullptr);
    ASSERT_OK_AND_ASSIGN(auto rows, StoredRowsPerBatch(*admin));
    for (int b : acked_batches) ASSERT_EQ(rows[b], RowsInBatch(b)) << "acknowledged batch " << b;
    for (const auto& [b, n] : rows) ASSERT_EQ(n, RowsInBatch(b)) << "partial batch " << b;
    for (int c : sent_consent) {
      ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse again, admin->ImportConsent(ConsentBatch(c)));
      ASSERT_TRUE(again.events_new() == 0 || again.events_new() == kConsentPerBatch)
          << "partial consent batch " << c << ": " << again.events_new();
      if (acked_consent.count(c) > 0) {
        ASSERT_EQ(again.events_new(), 0) << "consent batch " << c;
      }
    }
    sent_consent.clear();
    ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, admin->ListAudit(0, 1));
    ASSERT_TRUE(audit.chain_valid()) << audit.chain_error();
    ASSERT_GE(audit.total(), static_cast<uint64_t>(answers_acked));
    if (trial == trials) break;

    const int kill_after = static_cast<int>(rng() % 6);
    int acked_this_trial = 0;
    std::atomic<bool> stop{false};
    auto ack = [&] {
      absl::MutexLock lock(&mu);
      ++acked_this_trial;
    };
    std::vector<std::thread> workers;
    workers.emplace_back([&] {  // ingest
      auto client = Connect(node.local_address, op, kTrustDomain);
      while (!stop.load()) {
        int b;
        {
          absl::MutexLock lock(&mu);
          b = next_batch++;
        }
        absl::StatusOr<v1::IngestResponse> r =
            client->Ingest("program_outcomes", v1::CSV, false, Batch(b));
        if (!r.ok()) break;
        {
          absl::MutexLock lock(&mu);
          acked_batches.insert(b);
        }
        ack();
      }
    });
    workers.emplace_back([&] {  // consent import
      auto client = Connect(node.local_address, op, kTrustDomain);
      while (!stop.load()) {
        int c;
        {
          absl::MutexLock lock(&mu);
          c = next_consent++;
          sent_consent.push_back(c);
        }
        absl::StatusOr<v1::ConsentImportResponse> r = client->ImportConsent(ConsentBatch(c));
        if (!r.ok()) break;
        {
          absl::MutexLock lock(&mu);
          acked_consent.insert(c);
        }
        ack();
      }
    });
    workers.emplace_back([&] {  // question stream
      auto peer = Connect(node.peer_address, foundation, kTrustDomain, "partner-a");
      v1::AggregateQuery query;
      query.set_dataset("program_outcomes");
      query.set_purpose("program-evaluation");
      query.add_group_by("program");
      query.add_aggregates()->set_kind(v1::COUNT);
      while (!stop.load()) {
        absl::StatusOr<v1::AggregateResult> r = peer->Aggregate(query);
        if (!r.ok()) {
          // A refusal (e.g. a repeat limit) is audited too; a dead node is not.
          if (r.status().code() == absl::StatusCode::kUnavailable) break;
          continue;
        }
        {
          absl::MutexLock lock(&mu);
          ++answers_acked;
        }
        ack();
      }
    });
    KillWhen(
        mu, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return acked_this_trial >= kill_after; },
        node, stop, workers);
    ++kills;
  }
  std::cout << "crash harness: seed " << seed << ", " << kills << " SIGKILLs, "
            << acked_batches.size() << " ingest batches, " << acked_consent.size()
            << " consent batches and " << answers_acked
            << " answers acknowledged; every check passed\n";
}

}  // namespace
}  // namespace fedshare::testing
