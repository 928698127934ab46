#include "node/service/lifecycle.h"

#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "node/audit/audit_log.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/engine/engine.h"
#include "node/service/limits.h"
#include "spdlog/spdlog.h"

namespace fedshare::service {

namespace {

std::string ErasureReason(const engine::Erasure& erasure) {
  std::vector<std::string> parts;
  for (const auto& [dataset, records] : erasure.datasets) {
    parts.push_back(absl::StrCat(dataset, ": ", records));
  }
  return absl::StrCat("erased one subject: ", erasure.records, " records",
                      parts.empty() ? "" : absl::StrCat(" (", absl::StrJoin(parts, ", "), ")"),
                      " and ", erasure.consent_events,
                      " consent events; the subject's id is deliberately not recorded");
}

}  // namespace

absl::StatusOr<v1::EraseSubjectResponse> EraseSubject(const ServiceEnv& env,
                                                      const std::string& caller,
                                                      absl::string_view subject_id) {
  if (subject_id.empty()) {
    return absl::InvalidArgumentError("name the subject to erase: --subject ID");
  }
  if (subject_id.size() > static_cast<size_t>(env.limits.max_string_bytes())) {
    return absl::InvalidArgumentError(absl::StrCat(
        OverLimit("max_string_bytes", env.limits.max_string_bytes(),
                  absl::StrCat("the subject id (", subject_id.size(), " bytes)"))
            .message(),
        "; to erase a longer id, raise limits { max_string_bytes } in the node config and restart "
        "the node"));
  }
  FEDSHARE_ASSIGN_OR_RETURN(OneAtATime::Turn turn, env.erasures.Begin());
  uint64_t audit_index = 0;
  FEDSHARE_ASSIGN_OR_RETURN(
      engine::Erasure erasure,
      env.engine->EraseSubject(subject_id, [&](const engine::Erasure& planned) -> absl::Status {
        v1::AuditEntry entry;
        entry.set_caller(caller);
        entry.set_method("AdminService.EraseSubject");
        if (planned.datasets.size() == 1) entry.set_dataset(planned.datasets[0].first);
        entry.set_decision(v1::AuditEntry::ANSWERED);
        entry.set_rule("erase-subject");
        entry.set_reason(ErasureReason(planned));
        FEDSHARE_ASSIGN_OR_RETURN(audit::AuditLog::Appended appended,
                                  env.audit->Append(std::move(entry)));
        audit_index = appended.index;
        return absl::OkStatus();
      }));
  v1::EraseSubjectResponse response;
  response.set_records_erased(erasure.records);
  response.set_consent_events_erased(erasure.consent_events);
  for (const auto& [dataset, records] : erasure.datasets) {
    v1::ErasedDataset* d = response.add_datasets();
    d->set_dataset(dataset);
    d->set_records(records);
  }
  response.set_audit_index(audit_index);
  response.set_physically_removed(erasure.physical.ok());
  response.set_physical_removal_error(std::string(erasure.physical.message()));
  spdlog::info(
      "event=subject_erased records={} consent_events={} datasets={} audit_index={} "
      "compacted={}",
      erasure.records, erasure.consent_events, erasure.datasets.size(), audit_index,
      erasure.physical.ok());
  if (!erasure.physical.ok()) {
    spdlog::warn("event=erasure_compaction_incomplete error=\"{}\"",
                 std::string(erasure.physical.message()));
  }
  return response;
}

absl::StatusOr<v1::RunRetentionResponse> RunRetention(const ServiceEnv& env,
                                                      const std::string& caller) {
  FEDSHARE_ASSIGN_OR_RETURN(OneAtATime::Turn turn, env.retention_runs.Begin());
  absl::flat_hash_map<std::string, uint64_t> audit_index;
  FEDSHARE_ASSIGN_OR_RETURN(
      std::vector<engine::RetentionPurge> purges,
      env.engine->PurgeExpired([&](const engine::RetentionPurge& p) -> absl::Status {
        v1::AuditEntry entry;
        entry.set_caller(caller);
        entry.set_method("AdminService.RunRetention");
        entry.set_dataset(p.dataset);
        entry.set_decision(v1::AuditEntry::ANSWERED);
        entry.set_rule("retention");
        entry.set_reason(absl::StrCat("purged ", p.records_purged, " records (", p.blocks_purged,
                                      " blocks) loaded before ", fedshare::FormatTime(p.cutoff),
                                      ": retention_days ", p.retention_days));
        FEDSHARE_ASSIGN_OR_RETURN(audit::AuditLog::Appended appended,
                                  env.audit->Append(std::move(entry)));
        audit_index[p.dataset] = appended.index;
        return absl::OkStatus();
      }));
  v1::RunRetentionResponse response;
  for (const engine::RetentionPurge& p : purges) {
    v1::RetentionPurge* out = response.add_datasets();
    out->set_dataset(p.dataset);
    out->set_retention_days(p.retention_days);
    *out->mutable_cutoff() =
        google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(p.cutoff));
    out->set_records_purged(p.records_purged);
    out->set_records_kept(p.records_kept);
    out->set_records_without_load_day(p.records_without_load_day);
    if (auto it = audit_index.find(p.dataset); it != audit_index.end()) {
      out->set_audit_index(it->second);
    }
    if (p.records_purged > 0) {
      spdlog::info("event=retention_purged dataset={} records={} kept={} cutoff={}", p.dataset,
                   p.records_purged, p.records_kept, fedshare::FormatTime(p.cutoff));
    }
  }
  return response;
}

}  // namespace fedshare::service
