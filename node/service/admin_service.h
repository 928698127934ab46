// AdminService on the local listener: the org's operators manage their own
// node's data. Thin: authenticate, check the role, call the engine, convert.
#ifndef FEDSHARE_NODE_SERVICE_ADMIN_SERVICE_H_
#define FEDSHARE_NODE_SERVICE_ADMIN_SERVICE_H_

#include "fedshare/v1/admin.grpc.pb.h"
#include "node/service/service_env.h"

namespace fedshare::service {

// Largest upload accepted by ImportConsent in one call. (Ingest is streamed:
// limits.ingest_memory_budget_bytes bounds what it holds, whatever the size.)
inline constexpr size_t kMaxUploadBytes = size_t{1} << 30;

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  // `env` must outlive the service.
  explicit AdminServiceImpl(const ServiceEnv* env) : env_(env) {}

  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::StatusResponse* response) override;
  grpc::Status Ingest(grpc::ServerContext* context, grpc::ServerReader<v1::IngestRequest>* reader,
                      v1::IngestResponse* response) override;
  grpc::Status ImportConsent(grpc::ServerContext* context,
                             grpc::ServerReader<v1::ConsentImportRequest>* reader,
                             v1::ConsentImportResponse* response) override;
  grpc::Status ListDatasets(grpc::ServerContext* context, const v1::ListDatasetsRequest* request,
                            v1::ListDatasetsResponse* response) override;
  grpc::Status Export(grpc::ServerContext* context, const v1::ExportRequest* request,
                      grpc::ServerWriter<v1::ExportChunk>* writer) override;
  grpc::Status ListAudit(grpc::ServerContext* context, const v1::ListAuditRequest* request,
                         v1::ListAuditResponse* response) override;
  grpc::Status ExportConsent(grpc::ServerContext* context, const v1::ConsentExportRequest* request,
                             grpc::ServerWriter<v1::ConsentExportChunk>* writer) override;
  grpc::Status ConsentReport(grpc::ServerContext* context, const v1::ConsentReportRequest* request,
                             v1::ConsentReportResponse* response) override;
  grpc::Status Backup(grpc::ServerContext* context, const v1::BackupRequest* request,
                      v1::BackupResponse* response) override;
  grpc::Status AuditProof(grpc::ServerContext* context, const v1::AuditProofRequest* request,
                          v1::AuditProofResponse* response) override;
  grpc::Status EraseSubject(grpc::ServerContext* context, const v1::EraseSubjectRequest* request,
                            v1::EraseSubjectResponse* response) override;
  grpc::Status RunRetention(grpc::ServerContext* context, const v1::RunRetentionRequest* request,
                            v1::RunRetentionResponse* response) override;

 private:
  const ServiceEnv* env_;
};

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_ADMIN_SERVICE_H_
