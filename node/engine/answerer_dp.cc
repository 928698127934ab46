// Answerer's differential-privacy path and dry runs (answerer.h).
#include <cmath>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"
#include "node/engine/answerer.h"
#include "node/engine/dp_release.h"
#include "node/engine/manifest.h"
#include "node/engine/query_executor.h"
#include "node/storage/keys.h"
#include "policy/disclosure.h"
#include "policy/dp_random.h"
#include "policy/dp_settings.h"

namespace fedshare::engine {
namespace {

constexpr absl::string_view kRuleDpBudget = "dp-budget";

// FNV-1a, 64-bit: stable across builds and restarts (absl::Hash is not).
class Fnv64 {
 public:
  void Add(absl::string_view bytes) {
    for (unsigned char c : bytes) h_ = (h_ ^ c) * 0x100000001b3ULL;
  }
  void Add(uint64_t v) { Add(storage::EncodeFixed64BE(v)); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

// The data version a DP answer is kept for: the dataset's counters, which
// subjects' consent lets their records count for this asker and purpose,
// and the agreement as it stands. Any ingest, consent change or agreement
// change makes a new version, so the question costs again.
uint64_t DataVersion(const DatasetReader& reader, const policy::ConsentBitmap& consent,
                     const v1::Agreement& agreement) {
  Fnv64 h;
  h.Add(reader.rows());
  h.Add(reader.blocks());
  h.Add(reader.subjects());
  h.Add(reader.subject_count());
  uint64_t word = 0;
  for (uint32_t i = 0; i < reader.subject_count(); ++i) {
    if (consent.Test(i)) word |= uint64_t{1} << (i & 63);
    if ((i & 63) == 63) {
      h.Add(word);
      word = 0;
    }
  }
  h.Add(word);
  h.Add(agreement.SerializeAsString());
  return h.value();
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t us = absl::ToUnixMicros(t);
  ts.set_seconds(us / 1000000 - (us % 1000000 < 0 ? 1 : 0));
  ts.set_nanos(static_cast<int32_t>(((us % 1000000) + 1000000) % 1000000 * 1000));
  return ts;
}

void SetBudget(const policy::DpSettings& settings, const DpPlan& plan,
               const policy::BudgetView& view, double spent, v1::PrivacyBudget* budget) {
  budget->set_epsilon_spent(spent);
  budget->set_epsilon_cost(settings.epsilon_per_question);
  budget->set_epsilon_left(policy::MicrosToEpsilon(view.remaining));
  budget->set_epsilon_budget(settings.budget_epsilon);
  budget->set_window_seconds(absl::ToInt64Seconds(settings.window));
  if (view.next_renewal != absl::InfiniteFuture()) {
    *budget->mutable_renews_at() = ToTimestamp(view.next_renewal);
  }
  budget->set_delta(plan.select_partitions ? settings.delta : 0);
}

// The budget refusal with ε left and cost in its ErrorInfo, and when the
// cost fits again as retry_after_seconds.
absl::Status BudgetRefusal(const absl::Status& exhausted, const std::string& agreement_id,
                           const DpLedger::Shortfall& shortfall, const policy::DpSettings& settings,
                           absl::Time now) {
  const absl::Duration retry_after =
      shortfall.fits_at == absl::InfiniteFuture() ? absl::ZeroDuration() : shortfall.fits_at - now;
  absl::Status status = policy::WithRefusal(
      absl::ResourceExhaustedError(absl::StrCat("refused by agreement '", agreement_id, "' rule '",
                                                kRuleDpBudget, "': ", exhausted.message())),
      {std::string(kRuleDpBudget), agreement_id, "", retry_after});
  std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(status);
  if (info.has_value()) {
    (*info->mutable_metadata())[std::string(policy::kMetaEpsilonLeft)] =
        absl::StrCat(policy::MicrosToEpsilon(shortfall.remaining));
    (*info->mutable_metadata())[std::string(policy::kMetaEpsilonCost)] =
        absl::StrCat(settings.epsilon_per_question);
    status.SetPayload(policy::kErrorInfoTypeUrl, absl::Cord(info->SerializeAsString()));
  }
  return status;
}

// The answer kept for this applied question if it was made on `version`.
std::optional<v1::AggregateResult> KeptAnswer(const std::optional<std::string>& kept,
                                              uint64_t version) {
  v1::AggregateResult result;
  if (!kept.has_value() || kept->size() < 8 || storage::DecodeFixed64BE(*kept) != version ||
      !result.ParseFromArray(kept->data() + 8, static_cast<int>(kept->size() - 8))) {
    return std::nullopt;
  }
  return result;
}

// Scans and releases a fresh answer's cells with noise from the stream
// seeded by the node secret, `seed_input` and the data version.
absl::StatusOr<std::vector<v1::Cell>> FreshCells(const Engine& engine, const DatasetReader& reader,
                                                 const policy::ConsentBitmap& consent,
                                                 const v1::AggregateQuery& normalized,
                                                 const v1::DatasetSchema& schema,
                                                 const policy::DpSettings& settings,
                                                 const std::string& seed_input, uint64_t version) {
  ScannedRecords records;
  FEDSHARE_ASSIGN_OR_RETURN(
      Execution execution,
      ExecuteQuery(reader, normalized, consent, /*max_records_per_subject=*/0, &records));
  FEDSHARE_ASSIGN_OR_RETURN(policy::NoiseSeed seed,
                            policy::DeriveNoiseSeed(engine.node_secret(), seed_input, version));
  FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<policy::AesCtrStream> rng,
                            policy::AesCtrStream::Create(seed));
  return ReleaseDpCells(normalized, schema, execution, records, settings, *rng);
}

}  // namespace

absl::StatusOr<v1::AggregateResult> Answerer::DryRun(v1::AuditEntry audited, const Caller& caller,
                                                     const v1::AggregateQuery& query,
                                                     const v1::AggregateQuery& normalized,
                                                     const v1::DatasetSchema& schema,
                                                     const v1::Agreement& agreement,
                                                     absl::Time now) {
  const bool dp = agreement.disclosure().mode() == v1::Disclosure::DIFFERENTIAL_PRIVACY;
  // Told now what the question itself would be told before its scan: the
  // memory refusal depends on no record's value or consent (ExecuteQuery).
  // Nothing else of the data is looked at.
  absl::StatusOr<std::unique_ptr<DatasetReader>> reader = engine_->OpenReader(query.dataset());
  absl::Status admitted = reader.status();
  if (admitted.ok()) {
    const policy::DisclosureParams params = policy::EffectiveDisclosure(agreement.disclosure());
    admitted = dp ? AdmitQuery(**reader, normalized, (*reader)->subject_count(),
                               /*max_records_per_subject=*/0, /*keeps_records=*/true)
                  : AdmitQuery(**reader, normalized, (*reader)->subject_count(),
                               params.max_records_per_subject, /*keeps_records=*/false,
                               params.min_subjects);
  }
  if (!admitted.ok()) {
    return Refuse(audited, agreement.id(), "execution", admitted, caller);
  }

  v1::AggregateResult result = ResultHeader(query, normalized, schema, agreement, audited);
  if (dp) {
    const policy::DpSettings settings = policy::EffectiveDp(agreement.disclosure());
    absl::StatusOr<policy::BudgetView> view =
        dp_ledger_.View(caller.org_id, query.dataset(), settings.budget(), now);
    if (!view.ok()) return Refuse(audited, agreement.id(), kRuleDpBudget, view.status(), caller);
    v1::PrivacyBudget* budget = result.mutable_privacy_budget();
    SetBudget(settings, PlanDp(normalized, schema, settings), *view, 0, budget);
    budget->set_dry_run(true);
  }
  result.set_answered_at_unix_ms(absl::ToUnixMillis(now));
  audited.set_decision(v1::AuditEntry::DRY_RUN);
  audited.set_agreement_id(agreement.id());
  *result.mutable_manifest() = DisclosureManifest(agreement, normalized, schema, result);
  *audited.mutable_manifest() = result.manifest();
  audited.set_result_hash(audit::MessageHash(result));
  FEDSHARE_ASSIGN_OR_RETURN(audit::AuditLog::Appended appended,
                            audit_->Append(std::move(audited), caller.audit_known_size));
  *result.mutable_receipt() = std::move(appended.receipt);
  result.mutable_receipt()->set_org_id(org_id_);
  return result;
}

absl::StatusOr<v1::AggregateResult> Answerer::AnswerDp(
    v1::AuditEntry audited, const Caller& caller, const v1::AggregateQuery& query,
    const v1::AggregateQuery& normalized, const std::string& applied_hash,
    const v1::DatasetSchema& schema, const v1::Agreement& agreement, absl::Time now,
    const std::function<bool()>& cancelled) {
  const policy::DpSettings settings = policy::EffectiveDp(agreement.disclosure());
  const policy::BudgetPolicy budget_policy = settings.budget();
  const DpPlan plan = PlanDp(normalized, schema, settings);
  const std::string& dataset = query.dataset();
  auto refuse = [&](absl::string_view rule, const absl::Status& status) {
    return Refuse(audited, agreement.id(), rule, status, caller);
  };

  policy::ConsentQuestion consent_question{query.purpose(), caller.org_id, now};
  absl::StatusOr<policy::ConsentBitmap> consent = engine_->ConsentFor(dataset, consent_question);
  if (!consent.ok()) return refuse("execution", consent.status());
  absl::StatusOr<std::unique_ptr<DatasetReader>> reader = engine_->OpenReader(dataset);
  if (!reader.ok()) return refuse("execution", reader.status());
  if (cancelled) (*reader)->set_cancelled(cancelled);
  // No bound on cells here: how many groups the data has is what partition
  // selection hides, and a refusal past limits.max_answer_cells would tell
  // it exactly (a group of one person would tip it). The scan's memory
  // budget still bounds the question.
  (*reader)->set_max_answer_cells(0);
  const uint64_t version = DataVersion(**reader, *consent, agreement);

  // A repeat on the same data: the answer kept for it, at no cost.
  const std::string repeat_key = storage::QueriesDpAnswerKey(caller.org_id, dataset, applied_hash);
  absl::StatusOr<std::optional<std::string>> kept =
      storage_->Get(storage::ColumnFamily::kQueries, repeat_key);
  if (!kept.ok()) return refuse("execution", kept.status());
  std::optional<v1::AggregateResult> kept_result = KeptAnswer(*kept, version);
  const bool repeat = kept_result.has_value();
  v1::AggregateResult result;
  if (repeat) {
    result = *std::move(kept_result);
    result.set_query_id(query.query_id());
  }

  uint64_t spend_id = 0;
  if (!repeat) {
    // A question its memory budget refuses is refused before it reserves
    // anything: no synced ledger write for a question that cannot run.
    if (absl::Status admitted = AdmitQuery(**reader, normalized, consent->size(),
                                           /*max_records_per_subject=*/0, /*keeps_records=*/true);
        !admitted.ok()) {
      return refuse("execution", admitted);
    }
    absl::StatusOr<int64_t> cost = policy::EpsilonToMicros(settings.epsilon_per_question);
    if (!cost.ok()) return refuse(kRuleDpBudget, cost.status());
    DpLedger::Shortfall shortfall;
    absl::StatusOr<uint64_t> reserved =
        dp_ledger_.Reserve(caller.org_id, dataset, budget_policy, *cost, now, &shortfall);
    if (!reserved.ok()) {
      return refuse(kRuleDpBudget,
                    reserved.status().code() == absl::StatusCode::kResourceExhausted
                        ? BudgetRefusal(reserved.status(), agreement.id(), shortfall, settings, now)
                        : reserved.status());
    }
    spend_id = *reserved;
    // From here on, any failure before release returns the reservation.
    auto fail = [&](absl::string_view rule, const absl::Status& status) {
      (void)dp_ledger_.Cancel(caller.org_id, dataset, spend_id);
      return refuse(rule, status);
    };

    // The same applied question, data version, asker and agreement always get
    // the same noise, so repeating cannot average it away.
    absl::StatusOr<std::vector<v1::Cell>> cells =
        FreshCells(*engine_, **reader, *consent, normalized, schema, settings,
                   absl::StrCat(applied_hash, std::string(1, '\0'), caller.org_id,
                                std::string(1, '\0'), agreement.id()),
                   version);
    if (!cells.ok()) return fail("execution", cells.status());

    result = ResultHeader(query, normalized, schema, agreement, audited);
    for (v1::Cell& cell : *cells) *result.add_cells() = std::move(cell);
    result.set_count_precision(v1::AggregateResult::NOISY);
    result.set_answered_at_unix_ms(absl::ToUnixMillis(now));
    if (cancelled && cancelled()) {
      return fail("execution",
                  absl::CancelledError("the caller gave up before the answer was released"));
    }
  }

  absl::StatusOr<policy::BudgetView> view =
      dp_ledger_.View(caller.org_id, dataset, budget_policy, now);
  if (!view.ok()) {
    if (!repeat) (void)dp_ledger_.Cancel(caller.org_id, dataset, spend_id);
    return refuse(kRuleDpBudget, view.status());
  }
  // Kept for repeats without receipt and budget, which differ per asking.
  std::string kept_answer = storage::EncodeFixed64BE(version) + result.SerializeAsString();
  const double spent = repeat ? 0 : settings.epsilon_per_question;
  SetBudget(settings, plan, *view, spent, result.mutable_privacy_budget());
  result.mutable_privacy_budget()->set_repeat(repeat);

  v1::AuditEntry entry = std::move(audited);
  entry.set_decision(v1::AuditEntry::ANSWERED);
  entry.set_agreement_id(agreement.id());
  entry.set_epsilon_spent(spent);
  *result.mutable_manifest() = DisclosureManifest(agreement, normalized, schema, result);
  *entry.mutable_manifest() = result.manifest();
  entry.set_result_hash(audit::MessageHash(result));
  absl::StatusOr<audit::AuditLog::Appended> appended =
      audit_->Append(std::move(entry), caller.audit_known_size);
  if (!appended.ok()) {
    if (!repeat) (void)dp_ledger_.Cancel(caller.org_id, dataset, spend_id);
    return appended.status();
  }
  if (!repeat) {
    storage::WriteBatch also;
    also.Put(storage::ColumnFamily::kQueries, repeat_key, kept_answer);
    // If this fails the reservation stays spent (it counts until it leaves
    // the window) and the answer is not released.
    FEDSHARE_RETURN_IF_ERROR(dp_ledger_.Commit(caller.org_id, dataset, spend_id, std::move(also)));
  }
  *result.mutable_receipt() = std::move(appended->receipt);
  result.mutable_receipt()->set_org_id(org_id_);
  return result;
}

}  // namespace fedshare::engine
