#include "node/server/node_metrics.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "node/common/files.h"
#include "node/engine/answerer.h"
#include "node/identity/x509_verify.h"

namespace fedshare::server {
namespace {

constexpr char kQuestions[] = "fedshare_questions_total";
constexpr char kAuditAppends[] = "fedshare_audit_appends_total";
constexpr char kAnswerStage[] = "fedshare_answer_stage_seconds";
constexpr char kSharedScans[] = "fedshare_shared_scan_questions_total";
constexpr char kPeerCall[] = "fedshare_peer_call_seconds";
constexpr char kFanOutPartners[] = "fedshare_fanout_partners_total";
constexpr char kIngestRows[] = "fedshare_ingest_rows_total";
constexpr char kAuditEntries[] = "fedshare_audit_entries";
constexpr char kCertDaysLeft[] = "fedshare_certificate_days_left";

// Days until the earliest notAfter among the certificates in `path`; -1 if
// the file cannot be read or holds none.
double DaysLeft(const std::string& path, absl::Time now) {
  absl::StatusOr<std::string> pem = ReadFile(path);
  if (!pem.ok()) return -1;
  double days = -1;
  bool found = false;
  absl::string_view rest = *pem;
  constexpr absl::string_view kEnd = "-----END CERTIFICATE-----";
  for (size_t end = rest.find(kEnd); end != absl::string_view::npos; end = rest.find(kEnd)) {
    absl::StatusOr<identity::CertificateInfo> info =
        identity::InspectCertificate(rest.substr(0, end + kEnd.size()));
    rest.remove_prefix(end + kEnd.size());
    if (!info.ok()) continue;
    double left = absl::ToDoubleHours(info->not_after - now) / 24;
    if (!found || left < days) days = left;
    found = true;
  }
  return days;
}

}  // namespace

void InstallNodeMetrics(metrics::Metrics* m, const v1::NodeConfig* config, audit::AuditLog* audit,
                        federation::FanOut* fanout, service::ServiceEnv* env,
                        const storage::Storage* storage, Clock* clock) {
  m->DefineCounter(kQuestions,
                   "Questions this node decided, by method, outcome (answered, refused, failed) "
                   "and deciding rule.");
  m->DefineCounter(kAuditAppends, "Audit log appends, by result (ok, error).");
  m->DefineHistogram(kPeerCall, "Latency of fan-out calls to each partner, in seconds.",
                     metrics::Metrics::LatencyBuckets());
  m->DefineHistogram(kAnswerStage,
                     "Time each answered question spent in each stage of the node, in seconds.",
                     metrics::Metrics::LatencyBuckets());
  m->DefineCounter(kSharedScans,
                   "Answered exact-mode questions that took the figures of the same question's "
                   "running scan instead of scanning.");
  m->DefineCounter(kFanOutPartners,
                   "Partners asked during fan-out, by partner and coverage state.");
  m->DefineCounter(kIngestRows, "Rows ingested, by dataset and result (written, rejected).");
  m->DefineGauge(kAuditEntries, "Entries in the audit log.");
  m->DefineGauge("fedshare_rocksdb_sst_bytes", "Live SST files of the store, in bytes.");
  m->DefineGauge("fedshare_rocksdb_memtable_bytes", "Memtables not yet flushed, in bytes.");
  m->DefineGauge("fedshare_rocksdb_estimated_keys", "Estimated number of keys in the store.");
  m->DefineGauge("fedshare_rocksdb_block_cache_usage_bytes", "Block cache in use, in bytes.");
  m->DefineGauge("fedshare_rocksdb_block_cache_pinned_bytes", "Block cache pinned, in bytes.");
  m->DefineGauge("fedshare_rocksdb_block_cache_capacity_bytes", "Block cache capacity, in bytes.");
  m->DefineGauge(kCertDaysLeft,
                 "Days until the node certificate (file=cert) or the earliest CA certificate "
                 "(file=ca) expires; -1 if unreadable.");

  audit->SetObserver([m](const v1::AuditEntry& entry, const absl::Status& status) {
    m->Increment(kAuditAppends, {{"result", status.ok() ? "ok" : "error"}});
    std::string outcome =
        status.ok() ? absl::AsciiStrToLower(v1::AuditEntry::Decision_Name(entry.decision()))
                    : "failed";
    std::string rule = status.ok() ? entry.rule() : "audit-unavailable";
    m->Increment(kQuestions, {{"method", entry.method()}, {"outcome", outcome}, {"rule", rule}});
  });
  env->answerer->SetStageObserver([m](const engine::AnswerStages& s) {
    for (const auto& [stage, took] : {std::pair<const char*, absl::Duration>{"checks", s.checks},
                                      {"queue", s.queue},
                                      {"limits", s.limits},
                                      {"consent", s.consent},
                                      {"scan", s.scan},
                                      {"disclosure", s.disclosure},
                                      {"release", s.release},
                                      {"audit", s.audit}}) {
      m->ObserveDuration(kAnswerStage, {{"stage", stage}}, took);
    }
    if (s.shared) m->Increment(kSharedScans, {});
  });
  fanout->SetPeerCallObserver([m](const std::string& org, v1::PartnerCoverage::State state,
                                  absl::Duration elapsed) {
    m->ObserveDuration(kPeerCall, {{"peer", org}}, elapsed);
    m->Increment(
        kFanOutPartners,
        {{"peer", org}, {"state", absl::AsciiStrToLower(v1::PartnerCoverage::State_Name(state))}});
  });
  env->on_ingested = [m](const std::string& dataset, const v1::IngestResponse& written) {
    m->Increment(kIngestRows, {{"dataset", dataset}, {"result", "written"}},
                 static_cast<uint64_t>(written.rows_written()));
    m->Increment(kIngestRows, {{"dataset", dataset}, {"result", "rejected"}},
                 static_cast<uint64_t>(written.rows_rejected()));
  };
  m->AddCollector([config, audit, storage, clock](metrics::Metrics& self) {
    self.SetGauge(kAuditEntries, {}, static_cast<double>(audit->size()));
    storage::Storage::Stats stats = storage->GetStats();
    self.SetGauge("fedshare_rocksdb_sst_bytes", {}, static_cast<double>(stats.sst_bytes));
    self.SetGauge("fedshare_rocksdb_memtable_bytes", {}, static_cast<double>(stats.memtable_bytes));
    self.SetGauge("fedshare_rocksdb_estimated_keys", {}, static_cast<double>(stats.estimated_keys));
    self.SetGauge("fedshare_rocksdb_block_cache_usage_bytes", {},
                  static_cast<double>(stats.block_cache_usage_bytes));
    self.SetGauge("fedshare_rocksdb_block_cache_pinned_bytes", {},
                  static_cast<double>(stats.block_cache_pinned_bytes));
    self.SetGauge("fedshare_rocksdb_block_cache_capacity_bytes", {},
                  static_cast<double>(stats.block_cache_capacity_bytes));
    absl::Time now = clock->Now();
    self.SetGauge(kCertDaysLeft, {{"file", "cert"}}, DaysLeft(config->tls().cert_file(), now));
    self.SetGauge(kCertDaysLeft, {{"file", "ca"}}, DaysLeft(config->tls().ca_file(), now));
  });
}

v1::StatusMetrics SummarizeNodeMetrics(metrics::Metrics* m) {
  m->Collect();
  auto count = [](double v) { return v > 0 ? static_cast<uint64_t>(v) : uint64_t{0}; };
  v1::StatusMetrics out;
  out.set_questions_answered(count(m->Sum(kQuestions, {{"outcome", "answered"}})));
  out.set_questions_refused(count(m->Sum(kQuestions, {{"outcome", "refused"}})));
  out.set_questions_failed(count(m->Sum(kQuestions, {{"outcome", "failed"}})));
  // Summed over methods, per (outcome, rule).
  std::map<std::pair<std::string, std::string>, double> by_rule;
  for (const auto& [labels, value] : m->Values(kQuestions)) {
    std::string outcome, rule;
    for (const auto& [name, label] : labels) {
      if (name == "outcome") outcome = label;
      if (name == "rule") rule = label;
    }
    if (outcome != "answered" && value > 0) by_rule[{outcome, rule}] += value;
  }
  std::vector<std::pair<std::pair<std::string, std::string>, double>> ranked(by_rule.begin(),
                                                                             by_rule.end());
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  constexpr size_t kTopRules = 5;
  for (size_t i = 0; i < ranked.size() && i < kTopRules; ++i) {
    v1::RuleCount* r = out.add_top_rules();
    r->set_outcome(ranked[i].first.first);
    r->set_rule(ranked[i].first.second);
    r->set_questions(count(ranked[i].second));
  }
  out.set_audit_appends_ok(count(m->Sum(kAuditAppends, {{"result", "ok"}})));
  out.set_audit_appends_failed(count(m->Sum(kAuditAppends, {{"result", "error"}})));
  out.set_ingest_rows_written(count(m->Sum(kIngestRows, {{"result", "written"}})));
  out.set_ingest_rows_rejected(count(m->Sum(kIngestRows, {{"result", "rejected"}})));
  out.set_fanout_partner_calls(count(m->Sum(kFanOutPartners)));
  out.set_fanout_partners_answered(count(m->Sum(kFanOutPartners, {{"state", "answered"}})));
  out.set_store_bytes(
      count(m->Sum("fedshare_rocksdb_sst_bytes") + m->Sum("fedshare_rocksdb_memtable_bytes")));
  out.set_certificate_days_left(m->Sum(kCertDaysLeft, {{"file", "cert"}}));
  out.set_ca_days_left(m->Sum(kCertDaysLeft, {{"file", "ca"}}));
  return out;
}

}  // namespace fedshare::server
