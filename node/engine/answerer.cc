#include "node/engine/answerer.h"

#include <algorithm>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/audit/receipt_payload.h"
#include "node/common/status_macros.h"
#include "node/common/utf8.h"
#include "node/engine/manifest.h"
#include "node/engine/query_executor.h"
#include "node/engine/shared_scans.h"
#include "policy/disclosure.h"
#include "policy/query_rules.h"
#include "policy/question.h"

namespace fedshare::engine {
namespace {

constexpr absl::string_view kRuleInvalidQuestion = "invalid-question";
// A refusal's reason is kept in the audit cut to this, on a character boundary.
constexpr size_t kMaxAuditedReasonBytes = 1024;

// Whether a scan's error is the question's own outcome over the data and
// consent it read, so that the same question over the same data and consent
// gets it too: ExecuteQuery's refusals, RESOURCE_EXHAUSTED (more cells than
// limits.max_answer_cells, over limits.query_memory_budget_bytes) and
// INVALID_ARGUMENT (a field the dataset does not have). A cancelled scan or
// a failed read is not.
bool RefusedForWhatItAsks(const absl::Status& status) {
  return absl::IsResourceExhausted(status) || absl::IsInvalidArgument(status);
}

std::string WithholdingReason(absl::string_view rule, const policy::DisclosureParams& params) {
  if (rule == policy::kRuleMinSubjects) {
    return absl::StrCat("cells with fewer than ", params.min_subjects,
                        " distinct people are withheld");
  }
  if (rule == policy::kRuleDominance) {
    return "cells where a few people make up most of a total are withheld";
  }
  if (rule == policy::kRuleSecondary) {
    return absl::StrCat("further cells withheld so that withheld cells cannot be derived from ",
                        "totals (together they hold at least ", params.min_subjects, " people)");
  }
  if (rule == policy::kRuleMargin) {
    return absl::StrCat("further cells withheld so that withheld cells cannot be derived from ",
                        "the same question grouped by fewer fields (each margin's withheld cells ",
                        "hold at least ", params.min_subjects, " people)");
  }
  if (rule == policy::kRuleIntervalAudit) {
    return "further cells withheld so that no withheld cell can be narrowed down from the "
           "released cells and the margins";
  }
  if (rule == policy::kRuleHistogramBin) {
    // Counts cells, not bins: each named cell has one or more bins withheld.
    return absl::StrCat("cells with histogram bins withheld: bins with fewer than ",
                        params.min_subjects,
                        " people, and complement bins, are shown as - and left out of the count");
  }
  return std::string(rule);
}

// Splits a question's time into its stages (AnswerStages).
class Laps {
 public:
  // The time since the last lap (or construction) goes to `stage`.
  void Lap(absl::Duration* stage) {
    const absl::Time t = absl::Now();
    *stage = t - mark_;
    mark_ = t;
  }

 private:
  absl::Time mark_ = absl::Now();
};

}  // namespace

Answerer::Answerer(std::string org_id, Engine* engine, audit::AuditLog* audit,
                   storage::Storage* storage,
                   std::shared_ptr<const policy::AgreementSet> agreements,
                   std::vector<v1::DatasetSchema> schemas, Clock* clock)
    : org_id_(std::move(org_id)),
      engine_(engine),
      audit_(audit),
      storage_(storage),
      schemas_(std::move(schemas)),
      clock_(clock),
      agreements_(std::move(agreements)),
      windows_(storage, clock),
      record_keys_(engine != nullptr ? engine->node_secret() : std::string()),
      dp_ledger_(storage),
      queue_(std::make_unique<AnswerQueue>(
          std::max(1, static_cast<int>(std::thread::hardware_concurrency())))) {
  // Counting a question in a limit's window costs no synced write of its
  // own: the window is written with the next audit append, which every
  // counted question makes before anything leaves.
  if (audit_ != nullptr) audit_->SetGroupHook(windows_.GroupHook());
}

std::shared_ptr<const policy::AgreementSet> Answerer::agreements() const {
  absl::MutexLock lock(&agreements_mu_);
  return agreements_;
}

void Answerer::SetAgreements(std::shared_ptr<const policy::AgreementSet> agreements) {
  absl::MutexLock lock(&agreements_mu_);
  agreements_ = std::move(agreements);
}

const v1::DatasetSchema* Answerer::FindSchema(const std::string& name) const {
  for (const v1::DatasetSchema& s : schemas_) {
    if (s.name() == name) return &s;
  }
  return nullptr;
}

absl::Status Answerer::Refuse(v1::AuditEntry entry, const std::string& agreement_id,
                              absl::string_view rule, const absl::Status& status,
                              const Caller& caller) {
  entry.set_decision(status.code() == absl::StatusCode::kPermissionDenied ||
                             status.code() == absl::StatusCode::kResourceExhausted ||
                             status.code() == absl::StatusCode::kInvalidArgument
                         ? v1::AuditEntry::REFUSED
                     : status.code() == absl::StatusCode::kCancelled ? v1::AuditEntry::CANCELLED
                                                                     : v1::AuditEntry::FAILED);
  entry.set_agreement_id(agreement_id);
  entry.set_rule(std::string(rule));
  entry.set_reason(TruncateUtf8(status.message(), kMaxAuditedReasonBytes));
  if (entry.decision() == v1::AuditEntry::REFUSED && caller.refusal_gate) {
    if (absl::Status turned_away = caller.refusal_gate(); !turned_away.ok()) return turned_away;
  }
  const bool refused =
      entry.decision() == v1::AuditEntry::REFUSED || status.code() == absl::StatusCode::kNotFound;
  absl::StatusOr<audit::AuditLog::Appended> appended =
      audit_->Append(std::move(entry), caller.audit_known_size);
  if (!appended.ok()) return appended.status();
  appended->receipt.set_org_id(org_id_);
  if (!refused || policy::RefusalOf(status).has_value()) {
    return audit::WithReceipt(status, appended->receipt);
  }
  return audit::WithReceipt(policy::WithRefusal(status, {std::string(rule), agreement_id, ""}),
                            appended->receipt);
}

std::vector<LimitWindows::Limit> Answerer::LimitsFor(const Caller& caller,
                                                     const v1::Agreement& agreement,
                                                     const policy::DisclosureParams& params,
                                                     const std::string& applied_hash, bool dp) {
  std::vector<LimitWindows::Limit> limits;
  const std::string prefix = absl::StrCat("refused by agreement '", agreement.id(), "' rule '");
  if (agreement.rate_limit().queries() > 0) {
    limits.push_back(
        {storage::QueriesRateWindowKey(caller.org_id, agreement.id()),
         agreement.rate_limit().queries(), absl::Seconds(agreement.rate_limit().window_seconds()),
         policy::kRuleRateLimit,
         absl::StrCat(prefix, "rate-limit': at most ", agreement.rate_limit().queries(),
                      " questions per ", agreement.rate_limit().window_seconds(),
                      " s; ask again later")});
  }
  // Under DP a repeat gets the same noisy answer at no cost: nothing to limit.
  if (!dp) {
    limits.push_back(
        {storage::QueriesRepeatWindowKey(caller.org_id, applied_hash), params.repeat_limit,
         params.repeat_window, policy::kRuleRepeatLimit,
         absl::StrCat(prefix, "repeat-limit': the same question may be answered at most ",
                      params.repeat_limit, " times per ",
                      absl::ToInt64Seconds(params.repeat_window), " s")});
  }
  return limits;
}

absl::StatusOr<v1::AggregateResult> Answerer::Answer(const Caller& caller,
                                                     const v1::AggregateQuery& query,
                                                     const std::function<bool()>& cancelled,
                                                     bool dry_run) {
  AnswerStages stages;
  Laps laps;
  // Bounded before any work: each question waiting for its turn holds a
  // thread and its request.
  struct InFlight {
    std::atomic<int>* n;
    ~InFlight() { n->fetch_sub(1); }
  } in_flight{&in_flight_};
  if (in_flight_.fetch_add(1) >= max_concurrent_.load()) {
    return policy::WithRefusal(absl::ResourceExhaustedError(absl::StrCat(
                                   "too many questions at once: max_concurrent_questions = ",
                                   max_concurrent_.load(), "; ask again shortly")),
                               {"max-concurrent-questions", "", "", absl::Seconds(1)});
  }
  const absl::Time now = clock_->Now();
  // Audited as asked, so the asking node's entry carries the same hash.
  const policy::CanonicalQuestion asked = policy::CanonicalizeQuestion(query);
  v1::AuditEntry audited;
  audited.set_caller(caller.spiffe_id);
  audited.set_on_behalf_of(caller.on_behalf_of);
  audited.set_method("PeerService.Aggregate");
  audited.set_question_hash(policy::QuestionHash(asked));
  *audited.mutable_question() = policy::QuestionShape(asked);
  audited.set_dataset(query.dataset());
  audited.set_purpose(query.purpose());
  std::shared_ptr<const policy::AgreementSet> agreement_set = agreements();

  policy::Decision decision = agreement_set->Decide(caller.org_id, query, now);
  if (!decision.allowed) {
    return Refuse(audited, decision.agreement_id, decision.rule, decision.ToStatus(), caller);
  }
  const v1::Agreement& agreement = *decision.agreement;
  const v1::DatasetSchema* schema = FindSchema(query.dataset());
  if (schema == nullptr) {
    return Refuse(audited, agreement.id(), policy::kRuleDataset,
                  absl::NotFoundError(absl::StrCat("no dataset '", query.dataset(), "'")), caller);
  }
  absl::StatusOr<v1::AggregateQuery> normalized = policy::NormalizeQuery(*schema, query);
  if (!normalized.ok()) {
    absl::string_view rule = normalized.status().code() == absl::StatusCode::kPermissionDenied
                                 ? policy::kRuleGranularity
                                 : kRuleInvalidQuestion;
    return Refuse(audited, agreement.id(), rule, normalized.status(), caller);
  }
  *audited.mutable_applied_where() = normalized->where();
  audited.set_applied_where_text(policy::DescribeWhere(*schema, normalized->where()));
  // Questions that snap alike are one question for the repeat limit.
  const std::string applied_hash = policy::QuestionHash(policy::CanonicalizeQuestion(*normalized));
  const policy::DisclosureParams params = policy::EffectiveDisclosure(agreement.disclosure());
  std::optional<policy::PTable> ptable;
  if (params.cell_key) {
    absl::StatusOr<policy::PTable> table = AgreementPTable(agreement.disclosure());
    if (!table.ok()) return Refuse(audited, agreement.id(), "execution", table.status(), caller);
    ptable = *std::move(table);
  }
  const bool dp = agreement.disclosure().mode() == v1::Disclosure::DIFFERENTIAL_PRIVACY;
  if (dry_run) return DryRun(audited, caller, query, *normalized, *schema, agreement, now);

  laps.Lap(&stages.checks);
  // The same question of the same asker being scanned now: its figures are
  // this question's too (shared_scans.h), so it takes no turn of its own.
  // Without a key (sharing off, or no hash) nothing is shared.
  std::string scan_key;
  std::shared_ptr<SharedScans::Flight> flight;
  if (!dp && share_scans_.load() && !applied_hash.empty()) {
    scan_key = ScanKey(caller.org_id, applied_hash, params.max_records_per_subject,
                       params.min_subjects, ptable.has_value() ? ptable->table_size() : 0);
    flight = FindSharedScan(scan_key, caller, query, now);
  }
  // Waiting costs nothing: no limit has counted the question yet.
  std::optional<AnswerQueue::Slot> slot;
  if (flight == nullptr) {
    FEDSHARE_ASSIGN_OR_RETURN(AnswerQueue::Slot entered, queue_->Enter(cancelled));
    slot.emplace(std::move(entered));
  }
  laps.Lap(&stages.queue);
  absl::string_view limit_rule;
  if (absl::Status admitted = windows_.Admit(LimitsFor(caller, agreement, params, applied_hash, dp),
                                             agreement.id(), &limit_rule);
      !admitted.ok()) {
    slot.reset();
    return Refuse(audited, agreement.id(), limit_rule, admitted, caller);
  }
  laps.Lap(&stages.limits);

  if (dp) {
    return AnswerDp(std::move(audited), caller, query, *normalized, applied_hash, *schema,
                    agreement, now, cancelled);
  }
  std::shared_ptr<const SharedScan> scan;
  if (flight != nullptr) {
    absl::StatusOr<std::shared_ptr<const SharedScan>> shared = flight->Await(cancelled);
    laps.Lap(&stages.scan);
    if (shared.ok()) {
      scan = *std::move(shared);
      stages.shared = true;
    } else if (cancelled && cancelled()) {
      return Refuse(audited, agreement.id(), "execution", shared.status(), caller);
    } else if (RefusedForWhatItAsks(shared.status())) {
      // The scan refused the question for what it asks of this data (more
      // cells than limits.max_answer_cells, over the memory budget): its
      // own scan would be refused the same way, so it is not run again.
      return Refuse(audited, agreement.id(), "execution", shared.status(), caller);
    } else {
      // The scanning question failed otherwise (its caller gave up, or a
      // read failed): this one scans for itself, in its turn.
      absl::StatusOr<AnswerQueue::Slot> entered = queue_->Enter(cancelled);
      if (!entered.ok())
        return Refuse(audited, agreement.id(), "execution", entered.status(), caller);
      slot.emplace(*std::move(entered));
      laps.Lap(&stages.queue);
    }
  }
  std::string rule;
  absl::StatusOr<v1::AggregateResult> result =
      AnswerExact(caller, query, *normalized, *schema, agreement, ptable, audited, now, cancelled,
                  scan_key, std::move(slot), &scan, &rule, &stages);
  // Freed here, timed as a stage of its own: freed inside AnswerExact it
  // fell between the stages and showed as gRPC time. The slot goes with the
  // last question done with the scan; the audit append waits for no slot.
  laps = Laps();
  scan.reset();
  laps.Lap(&stages.release);
  if (!result.ok()) {
    return Refuse(audited, agreement.id(), rule, result.status(), caller);
  }
  if (cancelled && cancelled()) {
    return Refuse(audited, agreement.id(), "execution",
                  absl::CancelledError("the caller gave up before the answer was released"),
                  caller);
  }

  v1::AuditEntry entry = std::move(audited);
  entry.set_decision(v1::AuditEntry::ANSWERED);
  entry.set_agreement_id(agreement.id());
  *result->mutable_manifest() = DisclosureManifest(agreement, *normalized, *schema, *result);
  *entry.mutable_manifest() = result->manifest();
  entry.set_result_hash(audit::MessageHash(*result));
  FEDSHARE_ASSIGN_OR_RETURN(audit::AuditLog::Appended appended,
                            audit_->Append(std::move(entry), caller.audit_known_size));
  *result->mutable_receipt() = std::move(appended.receipt);
  result->mutable_receipt()->set_org_id(org_id_);
  laps.Lap(&stages.audit);
  if (stage_observer_) stage_observer_(stages);
  return result;
}

std::shared_ptr<SharedScans::Flight> Answerer::FindSharedScan(const std::string& scan_key,
                                                              const Caller& caller,
                                                              const v1::AggregateQuery& query,
                                                              absl::Time now) const {
  if (!shared_scans_.Running(scan_key)) return nullptr;
  // Read before the bitmap, as a scanning question reads it before its
  // snapshot: equal generations then mean the same data.
  const uint64_t generation = engine_->data_generation();
  absl::StatusOr<policy::ConsentBitmap> consent =
      engine_->ConsentFor(query.dataset(), {query.purpose(), caller.org_id, now});
  if (!consent.ok()) return nullptr;  // its own scan will say why
  return shared_scans_.Find(scan_key, generation, *consent);
}

absl::StatusOr<std::shared_ptr<const SharedScan>> Answerer::Scan(
    const Caller& caller, const v1::AggregateQuery& query, const v1::AggregateQuery& normalized,
    const policy::DisclosureParams& params, const std::optional<policy::PTable>& ptable,
    absl::Time now, const std::function<bool()>& cancelled, const std::string& scan_key,
    std::optional<AnswerQueue::Slot> slot, AnswerStages* stages) {
  Laps laps;
  auto scan = std::make_shared<SharedScan>();
  const uint64_t generation = engine_->data_generation();
  policy::ConsentQuestion consent_question{query.purpose(), caller.org_id, now};
  FEDSHARE_ASSIGN_OR_RETURN(policy::ConsentBitmap consent,
                            engine_->ConsentFor(query.dataset(), consent_question));
  scan->consent = std::make_shared<const policy::ConsentBitmap>(std::move(consent));
  FEDSHARE_ASSIGN_OR_RETURN(scan->reader, engine_->OpenReader(query.dataset()));
  if (cancelled) scan->reader->set_cancelled(cancelled);
  scan->keys = std::make_shared<std::vector<uint32_t>>();
  if (ptable.has_value()) {
    FEDSHARE_ASSIGN_OR_RETURN(
        scan->keys, record_keys_.For(ptable->table_size(),
                                     static_cast<uint32_t>(scan->reader->subject_count())));
  }
  laps.Lap(&stages->consent);
  std::shared_ptr<SharedScans::Flight> flight =
      scan_key.empty() ? nullptr : shared_scans_.Begin(scan_key, generation, scan->consent);
  // The predicate-removal figures are needed only up to k (AnswerExact).
  absl::StatusOr<Execution> execution =
      ExecuteQuery(*scan->reader, normalized, *scan->consent, params.max_records_per_subject,
                   nullptr, *scan->keys, params.min_subjects);
  laps.Lap(&stages->scan);
  if (!execution.ok()) {
    if (flight != nullptr) shared_scans_.Publish(flight, execution.status());
    return execution.status();
  }
  scan->execution = *std::move(execution);
  // Lent to the rules (cell keys use the subjects): a cell's statistics
  // hold every subject's contribution, megabytes to copy.
  scan->stats.reserve(scan->execution.cells.size());
  for (ExecutedCell& cell : scan->execution.cells) {
    scan->stats.push_back(std::move(cell.stats));
    scan->stats.back().key.clear();
    for (const v1::Value& v : cell.key) scan->stats.back().key.push_back(v.SerializeAsString());
  }
  if (slot.has_value()) scan->slot.emplace(std::move(*slot));
  if (flight != nullptr) shared_scans_.Publish(flight, std::shared_ptr<const SharedScan>(scan));
  return scan;
}

absl::StatusOr<v1::AggregateResult> Answerer::AnswerExact(
    const Caller& caller, const v1::AggregateQuery& query, const v1::AggregateQuery& normalized,
    const v1::DatasetSchema& schema, const v1::Agreement& agreement,
    const std::optional<policy::PTable>& ptable, const v1::AuditEntry& audited, absl::Time now,
    const std::function<bool()>& cancelled, const std::string& scan_key,
    std::optional<AnswerQueue::Slot> slot, std::shared_ptr<const SharedScan>* scan,
    std::string* rule, AnswerStages* stages) {
  const policy::DisclosureParams params = policy::EffectiveDisclosure(agreement.disclosure());
  // Perturbed counts hide what one record adds to a cell, so a count-only
  // question under cell keys needs no predicate-removal rule; sums and means
  // stay exact and keep it.
  const bool counts_only_perturbed =
      ptable.has_value() && std::all_of(normalized.aggregates().begin(),
                                        normalized.aggregates().end(), [](const v1::Aggregate& a) {
                                          return a.kind() == v1::COUNT ||
                                                 a.kind() == v1::COUNT_SUBJECTS ||
                                                 a.kind() == v1::HISTOGRAM;
                                        });
  *rule = "execution";
  if (*scan == nullptr) {
    FEDSHARE_ASSIGN_OR_RETURN(*scan, Scan(caller, query, normalized, params, ptable, now, cancelled,
                                          scan_key, std::move(slot), stages));
  }
  Laps laps;
  const SharedScan& scanned = **scan;
  const Execution& execution = scanned.execution;
  *rule = std::string(policy::kRulePredicateRemoval);
  if (!counts_only_perturbed) {
    FEDSHARE_RETURN_IF_ERROR(
        policy::CheckPredicateRemovals(params, normalized, execution.removed_by_predicate));
    FEDSHARE_RETURN_IF_ERROR(
        policy::CheckPredicateCellRemovals(params, normalized, execution.removed_in_cells));
  }
  std::vector<policy::CellVerdict> verdicts =
      policy::ApplyCellRules(params, normalized, scanned.stats);

  bool keys_public = normalized.group_by_size() > 0;
  for (const std::string& name : normalized.group_by()) {
    for (const v1::FieldSchema& f : schema.fields()) {
      if (f.name() == name && !f.public_values()) keys_public = false;
    }
  }

  v1::AggregateResult result = ResultHeader(query, normalized, schema, agreement, audited);
  std::map<std::string, int> withheld_by_rule;
  std::vector<v1::Cell> withheld_listed;
  for (size_t i = 0; i < execution.cells.size(); ++i) {
    const ExecutedCell& executed = execution.cells[i];
    const policy::CellVerdict& verdict = verdicts[i];
    if (!verdict.released) {
      ++withheld_by_rule[verdict.rule];
      if (keys_public) {
        v1::Cell cell;
        for (const v1::Value& v : executed.key) *cell.add_key() = v;
        cell.set_withheld(true);
        cell.set_withheld_rule(verdict.rule);
        withheld_listed.push_back(std::move(cell));
      } else {
        result.set_unlisted_withheld_cells(result.unlisted_withheld_cells() + 1);
      }
      continue;
    }
    v1::Cell* cell = result.add_cells();
    for (const v1::Value& v : executed.key) *cell->add_key() = v;
    bool bins_withheld = false;
    for (size_t a = 0; a < executed.values.size(); ++a) {
      v1::AggregateValue value = executed.values[a];
      if (a < verdict.withheld_bins.size()) {
        for (int32_t bin : verdict.withheld_bins[a]) {
          if (bin >= 0 && bin < value.bins_size()) {
            value.set_value(value.value() - value.bins(bin));
            value.set_count(value.count() - value.bins(bin));
            value.set_bins(bin, 0);
            value.add_withheld_bins(bin);
            bins_withheld = true;
          }
        }
      }
      if (ptable.has_value()) {
        PerturbCounts(*ptable, *scanned.keys, normalized.aggregates(static_cast<int>(a)), executed,
                      scanned.stats[i], a, value);
      }
      *cell->add_values() = std::move(value);
    }
    if (bins_withheld) ++withheld_by_rule[std::string(policy::kRuleHistogramBin)];
  }
  for (v1::Cell& cell : withheld_listed) *result.add_cells() = std::move(cell);
  for (const auto& [withheld_rule, cells] : withheld_by_rule) {
    v1::Withholding* w = result.add_withholdings();
    w->set_rule(withheld_rule);
    w->set_reason(WithholdingReason(withheld_rule, params));
    w->set_cells(cells);
  }
  result.set_count_precision(ptable.has_value() ? v1::AggregateResult::PERTURBED
                                                : v1::AggregateResult::EXACT);
  result.set_answered_at_unix_ms(absl::ToUnixMillis(now));
  laps.Lap(&stages->disclosure);
  return result;
}

v1::AggregateResult Answerer::ResultHeader(const v1::AggregateQuery& query,
                                           const v1::AggregateQuery& normalized,
                                           const v1::DatasetSchema& schema,
                                           const v1::Agreement& agreement,
                                           const v1::AuditEntry& audited) const {
  v1::AggregateResult result;
  result.set_query_id(query.query_id());
  result.set_org_id(org_id_);
  result.set_agreement_id(agreement.id());
  for (const std::string& g : normalized.group_by()) {
    result.add_columns(g);
    for (const v1::FieldSchema& f : schema.fields()) {
      if (f.name() == g && policy::GridWidth(f) > 0) {
        v1::GroupBucket* bucket = result.add_group_buckets();
        bucket->set_field(g);
        bucket->set_width(policy::GridWidth(f));
      }
    }
  }
  for (const v1::Aggregate& a : normalized.aggregates()) {
    result.add_columns(policy::AggregateColumnName(a));
  }
  *result.mutable_applied_where() = normalized.where();
  result.set_applied_where_text(audited.applied_where_text());
  return result;
}

v1::DescribeResponse Answerer::Describe(const std::string& peer_org) const {
  v1::DescribeResponse response;
  response.set_org_id(org_id_);
  std::vector<v1::Agreement> permits = agreements()->ForPeer(peer_org, clock_->Now());
  for (const v1::DatasetSchema& schema : schemas_) {
    v1::DatasetOffer offer;
    for (const v1::Agreement& a : permits) {
      if (a.dataset() == schema.name()) *offer.add_agreements() = a;
    }
    if (offer.agreements_size() == 0) continue;
    v1::DatasetSchema* shown = offer.mutable_schema();
    shown->set_name(schema.name());
    shown->set_description(schema.description());
    shown->set_consent_basis(schema.consent_basis());
    for (const v1::FieldSchema& f : schema.fields()) {
      if (f.role() == v1::FieldSchema::PRIVATE || f.role() == v1::FieldSchema::SUBJECT) continue;
      *shown->add_fields() = f;
    }
    *response.add_datasets() = std::move(offer);
  }
  return response;
}

}  // namespace fedshare::engine
