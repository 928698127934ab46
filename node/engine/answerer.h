// Answers one peer's aggregate question end to end (DESIGN §8, exact mode):
//
//   agreement decision -> schema check and range snapping -> rate and repeat
//   limits -> consent bitmap -> scan under one snapshot -> predicate-removal
//   rule -> cell rules (k, dominance, secondary suppression) -> cell-key
//   perturbation of counts when the agreement asks for it -> audit append
//   (synced) -> answer with receipt.
//
// The consent bitmap and scan may be those of the same question of the same
// org running now over unchanged data (shared_scans.h); the rest is always
// the question's own.
//
// Under a DIFFERENTIAL_PRIVACY agreement (answerer_dp.cc) the repeat limit
// does not apply; instead: a repeat of the same applied question on the same
// data version returns the answer kept for it at no cost -> the question's ε
// is reserved in the asker's ledger for the dataset (synced; RESOURCE_EXHAUSTED
// past the budget) -> scan -> contribution bounding, partition selection and
// secure noise seeded from the node secret -> audit append with ε spent ->
// the spend committed and the answer kept for repeats, in one write.
//
// Every outcome, answer or refusal, is appended to the audit log before the
// caller sees it. If the append fails the question fails with UNAVAILABLE and
// nothing is released (fail closed).
//
// Thread-safe. Everything passed to the constructor must outlive it.
#ifndef FEDSHARE_NODE_ENGINE_ANSWERER_H_
#define FEDSHARE_NODE_ENGINE_ANSWERER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fedshare/v1/peer.pb.h"
#include "fedshare/v1/query.pb.h"
#include "node/audit/audit_log.h"
#include "node/common/clock.h"
#include "node/engine/answerer_limits.h"
#include "node/engine/answerer_queue.h"
#include "node/engine/cell_keys.h"
#include "node/engine/dp_ledger.h"
#include "node/engine/engine.h"
#include "node/engine/shared_scans.h"
#include "node/storage/storage.h"
#include "policy/agreement.h"
#include "policy/cell_key.h"
#include "policy/disclosure.h"
#include "policy/refusal.h"

namespace fedshare::engine {

// Who asks: the org and the SPIFFE ID from its verified certificate, and,
// unverified and only recorded, the end user it says it asks for.
struct Caller {
  std::string org_id;
  std::string spiffe_id;
  std::string on_behalf_of;
  // The size of the last checkpoint of this node's audit log the caller
  // holds (0: none): an answer's receipt then proves consistency from it.
  uint64_t audit_known_size = 0;
  // Asked just before a refusal is audited (empty: never): OK to audit it,
  // or the status to answer instead, with nothing audited (the service's
  // refusal throttle, so that refusals arriving together are audited one by
  // one no more often than its limit).
  std::function<absl::Status()> refusal_gate;
};

// Where one answered question's time went in the node (exact mode), for the
// node's metrics (fedshare_answer_stage_seconds) and fedshare-bench.
struct AnswerStages {
  absl::Duration checks;      // agreement, schema, normalization
  absl::Duration queue;       // waiting for a slot (AnswerQueue)
  absl::Duration limits;      // rate and repeat windows: one synced write
  absl::Duration consent;     // the consent bitmap and the reader's snapshot
  absl::Duration scan;        // ExecuteQuery
  absl::Duration disclosure;  // predicate removal, cell rules, the answer built
  absl::Duration release;     // the scan's state (snapshot, cell statistics) freed
  absl::Duration audit;       // the audit append (synced) and the receipt
  // It took the figures of the same question's running scan (shared_scans.h):
  // `scan` is the wait for them, `consent` zero.
  bool shared = false;
};

class Answerer {
 public:
  Answerer(std::string org_id, Engine* engine, audit::AuditLog* audit, storage::Storage* storage,
           std::shared_ptr<const policy::AgreementSet> agreements,
           std::vector<v1::DatasetSchema> schemas, Clock* clock);

  // The answer, or the refusal as a status: PERMISSION_DENIED naming the
  // agreement and rule, RESOURCE_EXHAUSTED for rate and repeat limits,
  // INVALID_ARGUMENT for a malformed question, UNAVAILABLE when the audit log
  // cannot be written. RESOURCE_EXHAUSTED with rule "dp-budget" past a DP
  // budget, its ErrorInfo carrying epsilon_left, epsilon_cost and
  // retry_after_seconds.
  // `dry_run`: the answer has no cells, only (under DP) the privacy_budget the
  // question would draw on; nothing is scanned, spent or counted against a
  // limit, and the audit entry's decision is DRY_RUN. Refused as the question
  // would be (rule "execution") when its memory budget is too small for it,
  // which is decided before the scan without reading a record (AdmitQuery).
  // Under DP that refusal comes before the budget is looked at.
  // `cancelled`, when set, is asked between blocks of the scan: once it
  // returns true the scan stops and the question ends CANCELLED, audited as
  // such. More than max_concurrent() questions at once: RESOURCE_EXHAUSTED,
  // before any work and without an audit entry. Of those, answer_slots() are
  // answered at once and the rest wait their turn in arrival order (after the
  // agreement and the question's shape are checked, before any limit counts
  // it, anything is scanned or any budget is spent); one whose caller gives up
  // while waiting (`cancelled`) ends CANCELLED, having spent nothing, and is
  // not audited. A slot is held until the answer is built; the audit append
  // (group-committed with other questions' entries) comes after. The
  // exception: an exact-mode question that is the same question of the same
  // org as one scanning now, over unchanged data and consent, takes no slot
  // but, once its limits count it, that scan's figures (shared_scans.h); the
  // scanning question's slot is held until every question reading them is
  // done.
  absl::StatusOr<v1::AggregateResult> Answer(const Caller& caller, const v1::AggregateQuery& query,
                                             const std::function<bool()>& cancelled = nullptr,
                                             bool dry_run = false);

  // Questions answered at once (default 8); REQUIRES: max > 0.
  void set_max_concurrent(int max) { max_concurrent_.store(max); }
  int max_concurrent() const { return max_concurrent_.load(); }
  // Questions answered at once (the node: limits.scan_threads; default the
  // machine's cores). REQUIRES: slots > 0, called before the first Answer.
  void set_answer_slots(int slots) { queue_ = std::make_unique<AnswerQueue>(slots); }
  int answer_slots() const { return queue_->slots(); }
  // Whether the same question of the same org asked while it is scanned
  // takes that scan's figures (default true; limits.unshared_scans).
  void set_share_scans(bool share) { share_scans_.store(share); }
  // The line questions wait in (tests hold a slot to stand for a long
  // question).
  AnswerQueue& queue() { return *queue_; }
  // Exact-mode scans running now, and how many questions took their figures
  // from another's (shared_scans.h).
  const SharedScans& shared_scans() const { return shared_scans_; }
  // Called after each exact-mode question answered, with its stages.
  // REQUIRES: set before the first Answer, from one thread.
  void SetStageObserver(std::function<void(const AnswerStages&)> observer) {
    stage_observer_ = std::move(observer);
  }

  // What `peer_org` may ask now: datasets with at least one permit in force,
  // without PRIVATE fields.
  v1::DescribeResponse Describe(const std::string& peer_org) const;

  // Replaces the agreements (reload without restart).
  void SetAgreements(std::shared_ptr<const policy::AgreementSet> agreements);
  // The agreements in force now.
  std::shared_ptr<const policy::AgreementSet> agreements() const;

 private:
  const v1::DatasetSchema* FindSchema(const std::string& name) const;
  // The parts of an answer every mode shares: ids, columns, group buckets
  // and the applied predicates.
  v1::AggregateResult ResultHeader(const v1::AggregateQuery& query,
                                   const v1::AggregateQuery& normalized,
                                   const v1::DatasetSchema& schema, const v1::Agreement& agreement,
                                   const v1::AuditEntry& audited) const;
  // The scan and disclosure control of an exact-mode answer, before its
  // audit: the answer without manifest and receipt, or the refusal with its
  // rule in `rule`. With `*scan` null it scans first (Scan, holding `slot`)
  // and leaves the scan there, for the caller to free (the reader's
  // snapshot, the consent bitmap, the cells' per-subject statistics); with
  // `*scan` set (another question's) it only reads it.
  absl::StatusOr<v1::AggregateResult> AnswerExact(
      const Caller& caller, const v1::AggregateQuery& query, const v1::AggregateQuery& normalized,
      const v1::DatasetSchema& schema, const v1::Agreement& agreement,
      const std::optional<policy::PTable>& ptable, const v1::AuditEntry& audited, absl::Time now,
      const std::function<bool()>& cancelled, const std::string& scan_key,
      std::optional<AnswerQueue::Slot> slot, std::shared_ptr<const SharedScan>* scan,
      std::string* rule, AnswerStages* stages);
  // Consent bitmap, snapshot and ExecuteQuery for an exact-mode question,
  // shared with the questions that join it (shared_scans.h) while it runs;
  // with an empty `scan_key`, with none.
  // `slot` (the question's turn) is held by the scan until the last
  // question reading it is done.
  absl::StatusOr<std::shared_ptr<const SharedScan>> Scan(
      const Caller& caller, const v1::AggregateQuery& query, const v1::AggregateQuery& normalized,
      const policy::DisclosureParams& params, const std::optional<policy::PTable>& ptable,
      absl::Time now, const std::function<bool()>& cancelled, const std::string& scan_key,
      std::optional<AnswerQueue::Slot> slot, AnswerStages* stages);
  // The running scan of the same question for the same asker over the same
  // data and consent that this one may take its figures from, or null.
  std::shared_ptr<SharedScans::Flight> FindSharedScan(const std::string& scan_key,
                                                      const Caller& caller,
                                                      const v1::AggregateQuery& query,
                                                      absl::Time now) const;
  // The dry run of Answer (answerer_dp.cc).
  absl::StatusOr<v1::AggregateResult> DryRun(v1::AuditEntry audited, const Caller& caller,
                                             const v1::AggregateQuery& query,
                                             const v1::AggregateQuery& normalized,
                                             const v1::DatasetSchema& schema,
                                             const v1::Agreement& agreement, absl::Time now);
  // The rest of Answer under a DIFFERENTIAL_PRIVACY agreement, after the
  // agreement, schema and rate-limit checks (answerer_dp.cc).
  absl::StatusOr<v1::AggregateResult> AnswerDp(v1::AuditEntry audited, const Caller& caller,
                                               const v1::AggregateQuery& query,
                                               const v1::AggregateQuery& normalized,
                                               const std::string& applied_hash,
                                               const v1::DatasetSchema& schema,
                                               const v1::Agreement& agreement, absl::Time now,
                                               const std::function<bool()>& cancelled);
  // Appends `entry` (who asked what) with the refusal's decision, rule and
  // reason; returns `status` for a refusal (carrying `rule` and `agreement_id`
  // as policy/refusal.h's ErrorInfo unless it carries one already, and the
  // append's receipt, audit/receipt_payload.h, with a consistency proof from
  // the caller's audit_known_size as for an answer), or UNAVAILABLE if the
  // append failed. A refusal (decision REFUSED) the caller's refusal_gate
  // turns away is not appended: its status is returned instead.
  absl::Status Refuse(v1::AuditEntry entry, const std::string& agreement_id, absl::string_view rule,
                      const absl::Status& status, const Caller& caller);
  // The windows that count a question of `caller` under `agreement`.
  static std::vector<LimitWindows::Limit> LimitsFor(const Caller& caller,
                                                    const v1::Agreement& agreement,
                                                    const policy::DisclosureParams& params,
                                                    const std::string& applied_hash, bool dp);

  const std::string org_id_;
  Engine* const engine_;
  audit::AuditLog* const audit_;
  storage::Storage* const storage_;
  const std::vector<v1::DatasetSchema> schemas_;
  Clock* const clock_;
  mutable absl::Mutex agreements_mu_;
  std::shared_ptr<const policy::AgreementSet> agreements_ ABSL_GUARDED_BY(agreements_mu_);
  LimitWindows windows_;    // rate and repeat limits
  RecordKeys record_keys_;  // cell-key perturbation, keyed by the node secret
  DpLedger dp_ledger_;
  SharedScans shared_scans_;  // exact-mode scans running now, for the same question asked again
  std::atomic<int> max_concurrent_{8};
  std::atomic<bool> share_scans_{true};
  std::atomic<int> in_flight_{0};
  std::unique_ptr<AnswerQueue> queue_;
  std::function<void(const AnswerStages&)> stage_observer_;
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_ANSWERER_H_
