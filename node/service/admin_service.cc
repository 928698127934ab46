#include "node/service/admin_service.h"

#include <chrono>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "node/audit/audit_log.h"
#include "node/common/status_macros.h"
#include "node/engine/answerer.h"
#include "node/engine/engine.h"
#include "node/engine/ingest.h"
#include "node/federation/fanout.h"
#include "node/identity/server_credentials.h"
#include "node/service/call_guard.h"
#include "node/service/grpc_status.h"
#include "node/service/lifecycle.h"
#include "node/storage/storage.h"
#include "spdlog/spdlog.h"

namespace fedshare::service {

using identity::Role;

namespace {

// One ListAudit call examines at most this many entries, however few match
// its filters (docs/limits.md).
constexpr int kMaxAuditExamined = 10000;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// Why a call must not commit: its client cancelled or its deadline passed.
absl::Status CallAbandoned(const grpc::ServerContext& context) {
  if (context.deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(
        "the call's deadline passed before it committed; nothing was written");
  }
  if (context.IsCancelled()) {
    return absl::CancelledError(
        "the client cancelled the call before it committed; nothing was "
        "written");
  }
  return absl::OkStatus();
}

// The engine's controls from an ingest's first message (proto to domain; the
// engine validates what it means).
absl::StatusOr<engine::IngestControl> IngestControlFrom(const v1::IngestRequest& header) {
  engine::IngestControl control;
  control.idempotency_key = header.idempotency_key();
  FEDSHARE_ASSIGN_OR_RETURN(control.parse.delimiter, engine::ParseDelimiter(header.delimiter()));
  if (static_cast<size_t>(header.column_map_size()) > engine::kMaxColumnMappings) {
    return absl::InvalidArgumentError(
        absl::StrCat("more than ", engine::kMaxColumnMappings, " column mappings"));
  }
  for (const v1::ColumnMapping& m : header.column_map()) {
    control.parse.column_map.emplace_back(m.column(), m.field());
  }
  control.parse.date_format = header.date_format();
  control.allow_duplicate = header.allow_duplicate();
  control.replace = header.replace();
  return control;
}

// Records a dataset's rows being swapped for a file's, before the swap is
// written (fail closed: no entry, no swap).
absl::Status AuditReplace(audit::AuditLog& log, const std::string& caller,
                          const engine::IngestReplace& replace) {
  v1::AuditEntry entry;
  entry.set_caller(caller);
  entry.set_method("AdminService.Ingest");
  entry.set_dataset(replace.dataset);
  entry.set_decision(v1::AuditEntry::ANSWERED);
  entry.set_rule("ingest-replace");
  entry.set_reason(absl::StrCat("replaced ", replace.rows_removed, " rows with ",
                                replace.rows_written, " rows from a file with SHA-256 ",
                                absl::BytesToHexString(replace.file_sha256)));
  return log.Append(std::move(entry)).status();
}

// Reads a client stream of byte slices into one buffer, bounded, up to the
// message marked end_of_file (consent files; ingest streams, StreamIngest). A stream that ends
// otherwise (cancelled, broken, or closed early) is an error: a cut-off upload is never taken as
// the file.
template <typename Request, typename OnFirst>
absl::StatusOr<std::string> ReadUpload(grpc::ServerContext* context,
                                       grpc::ServerReader<Request>* reader, OnFirst on_first) {
  std::string data;
  Request request;
  bool first = true;
  bool complete = false;
  while (!complete && reader->Read(&request)) {
    if (first) {
      on_first(request);
      first = false;
    }
    if (data.size() + request.data().size() > kMaxUploadBytes) {
      return absl::ResourceExhaustedError(absl::StrCat("upload exceeds ", kMaxUploadBytes >> 20,
                                                       " MiB; split the file into several calls"));
    }
    data += request.data();
    complete = request.end_of_file();
  }
  FEDSHARE_RETURN_IF_ERROR(CallAbandoned(*context));
  if (!complete) {
    return absl::AbortedError(
        "the upload ended before its last message (end_of_file); nothing was written; send the "
        "whole file again");
  }
  return data;
}

// Feeds a client stream of byte slices into `session` as they arrive, up to
// the message marked end_of_file, and finishes it. A stream that ends
// otherwise (cancelled, broken, or closed early) is an error and the session
// writes nothing: a cut-off upload is never taken as the file.
absl::StatusOr<v1::IngestResponse> StreamIngest(grpc::ServerContext* context,
                                                grpc::ServerReader<v1::IngestRequest>* reader,
                                                v1::IngestRequest request,
                                                engine::IngestSession& session) {
  for (;;) {
    FEDSHARE_RETURN_IF_ERROR(session.Append(request.data()));
    if (request.end_of_file()) break;
    if (!reader->Read(&request)) {
      FEDSHARE_RETURN_IF_ERROR(CallAbandoned(*context));
      return absl::AbortedError(
          "the upload ended before its last message (end_of_file); nothing was written; send "
          "the whole file again");
    }
  }
  FEDSHARE_RETURN_IF_ERROR(CallAbandoned(*context));
  return session.Finish();
}

}  // namespace

grpc::Status AdminServiceImpl::Status(grpc::ServerContext* context, const v1::StatusRequest*,
                                      v1::StatusResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.Status";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator, Role::kAnalyst}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  response->set_org_id(env_->config->org_id());
  response->set_version(FEDSHARE_VERSION);
  response->set_trust_domain(env_->config->trust_domain());
  {
    absl::MutexLock lock(&env_->addresses_mu);
    response->set_peer_address(env_->peer_address);
    response->set_local_address(env_->local_address);
  }
  response->set_started_at_unix_ms(absl::ToUnixMillis(env_->started_at));
  response->set_caller(who->spiffe_id);
  response->set_datasets(env_->config->datasets_size());
  if (env_->audit != nullptr) {
    response->set_audit_entries(env_->audit->size());
    response->set_audit_error(std::string(env_->audit->health().message()));
  }
  if (env_->status_metrics) *response->mutable_metrics() = env_->status_metrics();
  absl::StatusOr<std::vector<std::string>> cert =
      identity::CheckOwnCertificate(env_->config->tls(), env_->config->trust_domain(),
                                    env_->config->org_id(), env_->clock->Now());
  if (!cert.ok()) {
    response->add_warnings(std::string(cert.status().message()));
  } else {
    for (std::string& w : *cert) response->add_warnings(std::move(w));
  }
  if (env_->reload_warnings) {
    for (std::string& w : env_->reload_warnings()) response->add_warnings(std::move(w));
  }
  return Finish(kMethod, who->spiffe_id, absl::OkStatus());
}

grpc::Status AdminServiceImpl::Ingest(grpc::ServerContext* context,
                                      grpc::ServerReader<v1::IngestRequest>* reader,
                                      v1::IngestResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.Ingest";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  v1::IngestRequest first;
  if (!reader->Read(&first)) {
    absl::Status abandoned = CallAbandoned(*context);
    return Finish(kMethod, who->spiffe_id,
                  !abandoned.ok() ? abandoned
                                  : absl::AbortedError("the upload ended before its first message; "
                                                       "nothing was written"));
  }
  v1::IngestRequest header = first;
  header.clear_data();
  if (header.dataset().empty()) {
    return Finish(kMethod, who->spiffe_id,
                  absl::InvalidArgumentError("the first ingest message must name the dataset"));
  }
  absl::StatusOr<engine::IngestControl> control = IngestControlFrom(header);
  if (!control.ok()) return Finish(kMethod, who->spiffe_id, control.status());
  control->memory_budget_bytes = static_cast<size_t>(env_->limits.ingest_memory_budget_bytes());
  control->max_subject_id_bytes = static_cast<size_t>(env_->limits.max_string_bytes());
  control->before_commit = [context] { return CallAbandoned(*context); };
  const std::string caller = who->spiffe_id;
  control->before_replace = [this, caller](const engine::IngestReplace& replace) {
    return AuditReplace(*env_->audit, caller, replace);
  };
  absl::StatusOr<v1::IngestResponse> result;
  {
    // The session holds the engine's writer until it is destroyed here.
    absl::StatusOr<std::unique_ptr<engine::IngestSession>> session = env_->engine->StartIngest(
        header.dataset(), header.format(), header.skip_invalid(), *std::move(control));
    result = session.ok() ? StreamIngest(context, reader, std::move(first), **session)
                          : session.status();
  }
  if (result.ok() && env_->on_ingested) env_->on_ingested(header.dataset(), *result);
  if (result.ok()) *response = std::move(result).value();
  return Finish(kMethod, who->spiffe_id, result.status());
}

grpc::Status AdminServiceImpl::ImportConsent(grpc::ServerContext* context,
                                             grpc::ServerReader<v1::ConsentImportRequest>* reader,
                                             v1::ConsentImportResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.ImportConsent";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  v1::ConsentFormat format = v1::CONSENT_FORMAT_CSV;
  absl::StatusOr<std::string> data =
      ReadUpload(context, reader, [&](const v1::ConsentImportRequest& first) {
        if (first.format() == v1::CONSENT_FORMAT_DPV) format = v1::CONSENT_FORMAT_DPV;
      });
  if (!data.ok()) return Finish(kMethod, who->spiffe_id, data.status());
  // Orgs a consent scope may name without a warning: this node's, its peers',
  // and those named by an agreement (reloaded ones included).
  absl::flat_hash_set<std::string> known_orgs = {env_->config->org_id()};
  if (env_->fanout != nullptr) {  // the roster in force: peers_file and reloads included
    for (const v1::PeerConfig& peer : *env_->fanout->peers()) known_orgs.insert(peer.org_id());
  }
  for (const v1::Agreement& a : env_->answerer->agreements()->agreements()) {
    known_orgs.insert(a.peers().begin(), a.peers().end());
  }
  absl::StatusOr<v1::ConsentImportResponse> result =
      env_->engine->ImportConsent(*data, &known_orgs, format,
                                  static_cast<size_t>(env_->limits.max_string_bytes()));
  if (result.ok()) *response = std::move(result).value();
  return Finish(kMethod, who->spiffe_id, result.status());
}

grpc::Status AdminServiceImpl::ListDatasets(grpc::ServerContext* context,
                                            const v1::ListDatasetsRequest*,
                                            v1::ListDatasetsResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.ListDatasets";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator, Role::kAnalyst}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::ListDatasetsResponse> result = env_->engine->ListDatasets({});
  if (result.ok()) *response = std::move(result).value();
  return Finish(kMethod, who->spiffe_id, result.status());
}

grpc::Status AdminServiceImpl::Export(grpc::ServerContext* context,
                                      const v1::ExportRequest* request,
                                      grpc::ServerWriter<v1::ExportChunk>* writer) {
  constexpr absl::string_view kMethod = "AdminService.Export";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::Status status =
      env_->engine->Export(request->dataset(), request->format(),
                           [&](absl::string_view chunk, int64_t rows_so_far) -> absl::Status {
                             if (context->IsCancelled())
                               return absl::CancelledError("the client cancelled the export");
                             v1::ExportChunk message;
                             message.set_data(std::string(chunk));
                             message.set_rows_so_far(rows_so_far);
                             if (!writer->Write(message))
                               return absl::CancelledError("the client went away");
                             return absl::OkStatus();
                           });
  return Finish(kMethod, who->spiffe_id, status);
}

grpc::Status AdminServiceImpl::ExportConsent(grpc::ServerContext* context,
                                             const v1::ConsentExportRequest* request,
                                             grpc::ServerWriter<v1::ConsentExportChunk>* writer) {
  constexpr absl::string_view kMethod = "AdminService.ExportConsent";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::Status status = env_->engine->ExportConsent(
      request->format(), [&](absl::string_view chunk, int64_t events_so_far) -> absl::Status {
        if (context->IsCancelled()) return absl::CancelledError("the client cancelled the export");
        v1::ConsentExportChunk message;
        message.set_data(std::string(chunk));
        message.set_events_so_far(events_so_far);
        if (!writer->Write(message)) return absl::CancelledError("the client went away");
        return absl::OkStatus();
      });
  return Finish(kMethod, who->spiffe_id, status);
}

grpc::Status AdminServiceImpl::ConsentReport(grpc::ServerContext* context,
                                             const v1::ConsentReportRequest* request,
                                             v1::ConsentReportResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.ConsentReport";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator, Role::kAnalyst}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::Time at = request->has_at() ? ToTime(request->at()) : env_->clock->Now();
  absl::StatusOr<v1::ConsentReportResponse> result = env_->engine->ConsentReport(at);
  if (result.ok()) *response = std::move(result).value();
  return Finish(kMethod, who->spiffe_id, result.status());
}

grpc::Status AdminServiceImpl::Backup(grpc::ServerContext* context, const v1::BackupRequest*,
                                      v1::BackupResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.Backup";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  const std::string& dir = env_->config->storage().backup_dir();
  if (dir.empty()) {
    return Finish(kMethod, who->spiffe_id,
                  absl::FailedPreconditionError(
                      "this node has no backup folder: set storage { backup_dir: \"...\" } in "
                      "its config (another disk, or copied off the machine) and restart it"));
  }
  absl::StatusOr<OneAtATime::Turn> turn = env_->backups.Begin();
  if (!turn.ok()) return Finish(kMethod, who->spiffe_id, turn.status());
  absl::StatusOr<std::vector<storage::BackupInfo>> backups = env_->storage->Backup(dir);
  if (!backups.ok()) return Finish(kMethod, who->spiffe_id, backups.status());
  response->set_backup_dir(dir);
  for (const storage::BackupInfo& b : *backups) {
    v1::BackupSummary* summary = response->add_backups();
    summary->set_backup_id(b.id);
    *summary->mutable_time() =
        google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(b.time));
    summary->set_size_bytes(b.size_bytes);
    summary->set_files(b.files);
  }
  if (!backups->empty()) response->set_backup_id(backups->back().id);
  spdlog::info("event=backup_created backup_id={} backup_dir={} backups={}", response->backup_id(),
               dir, response->backups_size());
  return Finish(kMethod, who->spiffe_id, absl::OkStatus());
}

grpc::Status AdminServiceImpl::ListAudit(grpc::ServerContext* context,
                                         const v1::ListAuditRequest* request,
                                         v1::ListAuditResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.ListAudit";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  int limit = request->limit() <= 0 ? 100 : std::min(request->limit(), 1000);
  audit::AuditLog::Filter filter;
  filter.caller = request->caller();
  filter.decision = request->decision();
  if (request->has_since()) filter.since = ToTime(request->since());
  if (request->has_until()) filter.until = ToTime(request->until());
  absl::StatusOr<audit::AuditLog::Page> page =
      env_->audit->Find(request->from_index(), filter, limit, kMaxAuditExamined);
  if (!page.ok()) return Finish(kMethod, who->spiffe_id, page.status());
  for (v1::AuditEntry& e : page->entries) *response->add_entries() = std::move(e);
  for (std::string& leaf : page->leaves) response->add_leaves(std::move(leaf));
  response->set_next_index(page->next_index);
  response->set_total(env_->audit->size());
  *response->mutable_checkpoint() = env_->audit->checkpoint();
  absl::Status verified = env_->audit->Verify();
  response->set_chain_valid(verified.ok());
  response->set_chain_error(std::string(verified.message()));
  return Finish(kMethod, who->spiffe_id, absl::OkStatus());
}

grpc::Status AdminServiceImpl::AuditProof(grpc::ServerContext* context,
                                          const v1::AuditProofRequest* request,
                                          v1::AuditProofResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.AuditProof";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::AuditProofResponse> proof = env_->audit->Proof(*request, "");
  if (proof.ok()) *response = *std::move(proof);
  return Finish(kMethod, who->spiffe_id, proof.status());
}

grpc::Status AdminServiceImpl::EraseSubject(grpc::ServerContext* context,
                                            const v1::EraseSubjectRequest* request,
                                            v1::EraseSubjectResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.EraseSubject";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::EraseSubjectResponse> erased =
      service::EraseSubject(*env_, who->spiffe_id, request->subject_id());
  if (erased.ok()) *response = *std::move(erased);
  return Finish(kMethod, who->spiffe_id, erased.status());
}

grpc::Status AdminServiceImpl::RunRetention(grpc::ServerContext* context,
                                            const v1::RunRetentionRequest*,
                                            v1::RunRetentionResponse* response) {
  constexpr absl::string_view kMethod = "AdminService.RunRetention";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::RunRetentionResponse> run = service::RunRetention(*env_, who->spiffe_id);
  if (run.ok()) *response = *std::move(run);
  return Finish(kMethod, who->spiffe_id, run.status());
}

}  // namespace fedshare::service
