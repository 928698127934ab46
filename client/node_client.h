// A typed client for one fedshare node, over mutual TLS.
//
//   ASSIGN_OR_RETURN(auto client, NodeClient::Connect("127.0.0.1:7444", tls, expect));
//   ASSIGN_OR_RETURN(v1::StatusResponse status, client->Status());
//
// Every call returns absl::Status / absl::StatusOr with the server's gRPC
// code and message unchanged. Calls carry a deadline (default 60 s).
// Thread-safe: calls may be made concurrently.
#ifndef FEDSHARE_CLIENT_NODE_CLIENT_H_
#define FEDSHARE_CLIENT_NODE_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fedshare/v1/admin.grpc.pb.h"
#include "fedshare/v1/federation.grpc.pb.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "node/identity/channel.h"

namespace fedshare::client {

// grpc::Status to absl::Status; the codes are the same numbers. A
// google.rpc.ErrorInfo in the status details becomes the status's
// policy/refusal.h payload (read it with policy::RefusalOf).
absl::Status FromGrpcStatus(const grpc::Status& status);

// Progress of a long upload or download: bytes (or rows) done, and the
// total when known (0 otherwise).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

class NodeClient {
 public:
  // Dials `address`. The server must present a node certificate of
  // `expect.trust_domain` (and `expect.org_id` when set).
  static absl::StatusOr<std::unique_ptr<NodeClient>> Connect(
      const std::string& address, const identity::ClientTlsFiles& files,
      const identity::ServerExpectation& expect);

  explicit NodeClient(std::shared_ptr<grpc::Channel> channel);

  void set_timeout(absl::Duration timeout) { timeout_ = timeout; }

  // AdminService (local listener, operator role).
  absl::StatusOr<v1::StatusResponse> Status();
  // `idempotency_key`, when not empty, makes a retry of the same file with
  // the same key report the first outcome instead of writing again. The last
  // message is marked end_of_file: a call cut short writes nothing.
  absl::StatusOr<v1::IngestResponse> Ingest(const std::string& dataset, v1::DataFormat format,
                                            bool skip_invalid, absl::string_view data,
                                            const ProgressFn& progress = nullptr,
                                            const std::string& idempotency_key = "");
  // As above with every option of the first message (`header`; its data and
  // end_of_file are ignored).
  absl::StatusOr<v1::IngestResponse> Ingest(const v1::IngestRequest& header, absl::string_view data,
                                            const ProgressFn& progress = nullptr);
  // As above for a file read as it is sent, so it is never held whole:
  // `read` replaces its argument with the next slice of at most `max` bytes
  // (empty at the file's end) or fails, and then the call is cancelled and
  // writes nothing. `size` is the file's, for progress.
  using ReadSlice = std::function<absl::Status(size_t max, std::string* slice)>;
  absl::StatusOr<v1::IngestResponse> Ingest(const v1::IngestRequest& header,
                                            const ReadSlice& read, int64_t size,
                                            const ProgressFn& progress = nullptr);
  absl::StatusOr<v1::ConsentImportResponse> ImportConsent(
      absl::string_view data, const ProgressFn& progress = nullptr,
      v1::ConsentFormat format = v1::CONSENT_FORMAT_CSV);
  // Calls `sink` with each chunk in order; stops with its error if it fails.
  absl::Status ExportConsent(
      v1::ConsentFormat format,
      const std::function<absl::Status(const v1::ConsentExportChunk&)>& sink);
  absl::StatusOr<v1::BackupResponse> Backup();
  absl::StatusOr<v1::EraseSubjectResponse> EraseSubject(const std::string& subject_id);
  absl::StatusOr<v1::RunRetentionResponse> RunRetention();
  // `at` unset: now.
  absl::StatusOr<v1::ConsentReportResponse> ConsentReport(
      std::optional<absl::Time> at = std::nullopt);
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets();
  // Calls `sink` with each chunk in order; stops with its error if it fails.
  absl::Status Export(const std::string& dataset, v1::DataFormat format,
                      const std::function<absl::Status(const v1::ExportChunk&)>& sink);
  absl::StatusOr<v1::ListAuditResponse> ListAudit(uint64_t from_index, int32_t limit);
  absl::StatusOr<v1::ListAuditResponse> ListAudit(const v1::ListAuditRequest& request);
  absl::StatusOr<v1::AuditProofResponse> AuditProof(const v1::AuditProofRequest& request);
  // PeerService.AuditProof, for a node identity on a peer listener.
  absl::StatusOr<v1::AuditProofResponse> PeerAuditProof(const v1::AuditProofRequest& request);

  // PeerService (peer listener, node role).
  absl::StatusOr<v1::DescribeResponse> Describe();
  absl::StatusOr<v1::AggregateResult> Aggregate(const v1::AggregateQuery& query);
  absl::StatusOr<v1::AggregateResult> Aggregate(const v1::AggregateRequest& request);

  // FederationService (local listener, analyst or operator role).
  absl::StatusOr<v1::FederatedAggregateResponse> FederatedAggregate(
      const v1::FederatedAggregateRequest& request);
  // FederatedAggregate over FederationService.FederatedAggregateStream:
  // `progress` sees each partner's coverage as its call ends; the result is
  // the stream's last event. A node without the stream (UNIMPLEMENTED) is
  // asked with FederatedAggregate instead, without progress.
  absl::StatusOr<v1::FederatedAggregateResponse> FederatedAggregateStream(
      const v1::FederatedAggregateRequest& request,
      const std::function<void(const v1::FederatedAggregateProgress&)>& progress);
  absl::StatusOr<v1::ListPeersResponse> ListPeers(bool probe);
  // What the configured peer `peer` lets this org ask, asked by the node.
  absl::StatusOr<v1::DescribeResponse> DescribePeer(const std::string& peer);

  // The peer certificate (PEM) the server presented on the last call.
  std::string last_server_certificate() const;

 private:
  void Prepare(grpc::ClientContext& context) const;
  void Remember(const grpc::ClientContext& context);

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<v1::PeerService::Stub> peer_;
  std::unique_ptr<v1::FederationService::Stub> federation_;
  absl::Duration timeout_ = absl::Seconds(60);
  mutable absl::Mutex mu_;
  std::string last_server_certificate_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_NODE_CLIENT_H_
