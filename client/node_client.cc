#include "client/node_client.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "google/rpc/status.pb.h"
#include "node/common/status_macros.h"
#include "node/common/wire_limits.h"
#include "policy/refusal.h"

namespace fedshare::client {
namespace {

// Upload slices: well under gRPC's default 4 MiB message limit.
constexpr size_t kChunkBytes = 1 << 20;

// Reads a server stream to its end, calling `sink` with each message; on the
// sink's first error cancels the call and returns that error.
template <typename Message>
absl::Status DrainStream(grpc::ClientContext& context, grpc::ClientReader<Message>& reader,
                         const std::function<absl::Status(const Message&)>& sink,
                         grpc::Status* finished) {
  Message message;
  absl::Status sink_status;
  while (reader.Read(&message)) {
    sink_status = sink(message);
    if (!sink_status.ok()) {
      context.TryCancel();
      break;
    }
  }
  *finished = reader.Finish();
  return sink_status;
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return out;
  }
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) {
      out.SetPayload(policy::kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<NodeClient>> NodeClient::Connect(
    const std::string& address, const identity::ClientTlsFiles& files,
    const identity::ServerExpectation& expect) {
  // A node's replies may be larger than gRPC's default of 4 MiB: an answer
  // or a part of a federated one, up to what a node sends.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReplyBytes);
  FEDSHARE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                            identity::MakeChannel(address, files, expect, args));
  return std::make_unique<NodeClient>(std::move(channel));
}

NodeClient::NodeClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      admin_(v1::AdminService::NewStub(channel_)),
      peer_(v1::PeerService::NewStub(channel_)),
      federation_(v1::FederationService::NewStub(channel_)) {}

void NodeClient::Prepare(grpc::ClientContext& context) const {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
}

void NodeClient::Remember(const grpc::ClientContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return;
  auto values = auth->FindPropertyValues("x509_pem_cert");
  if (values.empty()) return;
  absl::MutexLock lock(&mu_);
  last_server_certificate_.assign(values[0].data(), values[0].size());
}

std::string NodeClient::last_server_certificate() const {
  absl::MutexLock lock(&mu_);
  return last_server_certificate_;
}

#define FEDSHARE_UNARY(stub, Method, request, Response)             \
  grpc::ClientContext context;                                      \
  Prepare(context);                                                 \
  Response response;                                                \
  grpc::Status status = stub->Method(&context, request, &response); \
  Remember(context);                                                \
  if (!status.ok()) return FromGrpcStatus(status);                  \
  return response

absl::StatusOr<v1::StatusResponse> NodeClient::Status() {
  FEDSHARE_UNARY(admin_, Status, v1::StatusRequest(), v1::StatusResponse);
}

absl::StatusOr<v1::ListDatasetsResponse> NodeClient::ListDatasets() {
  FEDSHARE_UNARY(admin_, ListDatasets, v1::ListDatasetsRequest(), v1::ListDatasetsResponse);
}

absl::StatusOr<v1::ListAuditResponse> NodeClient::ListAudit(uint64_t from_index, int32_t limit) {
  v1::ListAuditRequest request;
  request.set_from_index(from_index);
  request.set_limit(limit);
  return ListAudit(request);
}

absl::StatusOr<v1::ListAuditResponse> NodeClient::ListAudit(const v1::ListAuditRequest& request) {
  FEDSHARE_UNARY(admin_, ListAudit, request, v1::ListAuditResponse);
}

absl::StatusOr<v1::AuditProofResponse> NodeClient::AuditProof(
    const v1::AuditProofRequest& request) {
  FEDSHARE_UNARY(admin_, AuditProof, request, v1::AuditProofResponse);
}

absl::StatusOr<v1::AuditProofResponse> NodeClient::PeerAuditProof(
    const v1::AuditProofRequest& request) {
  FEDSHARE_UNARY(peer_, AuditProof, request, v1::AuditProofResponse);
}

absl::StatusOr<v1::DescribeResponse> NodeClient::Describe() {
  FEDSHARE_UNARY(peer_, Describe, v1::DescribeRequest(), v1::DescribeResponse);
}

absl::StatusOr<v1::AggregateResult> NodeClient::Aggregate(const v1::AggregateQuery& query) {
  v1::AggregateRequest request;
  *request.mutable_query() = query;
  return Aggregate(request);
}

absl::StatusOr<v1::AggregateResult> NodeClient::Aggregate(const v1::AggregateRequest& request) {
  grpc::ClientContext context;
  Prepare(context);
  v1::AggregateResponse response;
  grpc::Status status = peer_->Aggregate(&context, request, &response);
  Remember(context);
  if (!status.ok()) return FromGrpcStatus(status);
  return std::move(*response.mutable_result());
}

absl::StatusOr<v1::FederatedAggregateResponse> NodeClient::FederatedAggregate(
    const v1::FederatedAggregateRequest& request) {
  FEDSHARE_UNARY(federation_, FederatedAggregate, request, v1::FederatedAggregateResponse);
}

absl::StatusOr<v1::FederatedAggregateResponse> NodeClient::FederatedAggregateStream(
    const v1::FederatedAggregateRequest& request,
    const std::function<void(const v1::FederatedAggregateProgress&)>& progress) {
  grpc::ClientContext context;
  Prepare(context);
  std::unique_ptr<grpc::ClientReader<v1::FederatedAggregateEvent>> reader =
      federation_->FederatedAggregateStream(&context, request);
  std::optional<v1::FederatedAggregateResponse> result, parts;
  bool any_event = false;
  grpc::Status status;
  absl::Status sink_status = DrainStream<v1::FederatedAggregateEvent>(
      context, *reader,
      [&](const v1::FederatedAggregateEvent& event) {
        any_event = true;
        if (event.has_progress() && progress) progress(event.progress());
        // The result comes in parts; each appends coverage, partners'
        // answers and combined cells, and the last brings the rest.
        if (event.has_result_part()) {
          if (!parts.has_value()) parts.emplace();
          parts->MergeFrom(event.result_part());
        }
        if (event.has_result()) {
          result = parts.has_value() ? *std::move(parts) : v1::FederatedAggregateResponse();
          parts.reset();
          result->MergeFrom(event.result());
        }
        return absl::OkStatus();
      },
      &status);
  Remember(context);
  FEDSHARE_RETURN_IF_ERROR(sink_status);
  // A node from before the stream answers UNIMPLEMENTED without asking any
  // partner, so asking it the unary way asks no partner twice.
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED && !any_event) {
    return FederatedAggregate(request);
  }
  FEDSHARE_RETURN_IF_ERROR(FromGrpcStatus(status));
  if (!result.has_value()) {
    return absl::InternalError("the node ended the answer stream without a result");
  }
  return *std::move(result);
}

absl::StatusOr<v1::ListPeersResponse> NodeClient::ListPeers(bool probe) {
  v1::ListPeersRequest request;
  request.set_probe(probe);
  FEDSHARE_UNARY(federation_, ListPeers, request, v1::ListPeersResponse);
}

absl::StatusOr<v1::DescribeResponse> NodeClient::DescribePeer(const std::string& peer) {
  v1::DescribePeerRequest request;
  request.set_peer(peer);
  FEDSHARE_UNARY(federation_, DescribePeer, request, v1::DescribeResponse);
}

#undef FEDSHARE_UNARY

absl::StatusOr<v1::IngestResponse> NodeClient::Ingest(const std::string& dataset,
                                                      v1::DataFormat format, bool skip_invalid,
                                                      absl::string_view data,
                                                      const ProgressFn& progress,
                                                      const std::string& idempotency_key) {
  v1::IngestRequest header;
  header.set_dataset(dataset);
  header.set_format(format);
  header.set_skip_invalid(skip_invalid);
  header.set_idempotency_key(idempotency_key);
  return Ingest(header, data, progress);
}

absl::StatusOr<v1::IngestResponse> NodeClient::Ingest(const v1::IngestRequest& header,
                                                      absl::string_view data,
                                                      const ProgressFn& progress) {
  size_t offset = 0;
  auto read = [&](size_t max, std::string* slice) {
    const size_t n = std::min(max, data.size() - offset);
    slice->assign(data.data() + offset, n);
    offset += n;
    return absl::OkStatus();
  };
  return Ingest(header, read, static_cast<int64_t>(data.size()), progress);
}

absl::StatusOr<v1::IngestResponse> NodeClient::Ingest(const v1::IngestRequest& header,
                                                      const ReadSlice& read, int64_t size,
                                                      const ProgressFn& progress) {
  grpc::ClientContext context;
  Prepare(context);
  v1::IngestResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::IngestRequest>> writer =
      admin_->Ingest(&context, &response);
  // One slice is read ahead, so the last message can say it is the last.
  std::string next;
  absl::Status read_status = read(kChunkBytes, &next);
  v1::IngestRequest request = header;
  int64_t sent = 0;
  while (read_status.ok()) {
    request.mutable_data()->swap(next);
    read_status = read(kChunkBytes, &next);
    if (!read_status.ok()) break;
    request.set_end_of_file(next.empty());
    if (!writer->Write(request)) break;  // the server ended the call; Finish says why
    sent += static_cast<int64_t>(request.data().size());
    if (progress) progress(sent, size);
    if (next.empty()) break;
    request.Clear();
  }
  if (!read_status.ok()) context.TryCancel();  // a cut-off upload writes nothing
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  Remember(context);
  FEDSHARE_RETURN_IF_ERROR(read_status);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::ConsentImportResponse> NodeClient::ImportConsent(absl::string_view csv,
                                                                    const ProgressFn& progress,
                                                                    v1::ConsentFormat format) {
  grpc::ClientContext context;
  Prepare(context);
  v1::ConsentImportResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::ConsentImportRequest>> writer =
      admin_->ImportConsent(&context, &response);
  size_t offset = 0;
  do {
    v1::ConsentImportRequest request;
    if (offset == 0) request.set_format(format);
    size_t n = std::min(kChunkBytes, csv.size() - offset);
    request.set_data(std::string(csv.substr(offset, n)));
    offset += n;
    request.set_end_of_file(offset == csv.size());
    if (!writer->Write(request)) break;
    if (progress) progress(static_cast<int64_t>(offset), static_cast<int64_t>(csv.size()));
  } while (offset < csv.size());
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  Remember(context);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::Status NodeClient::Export(const std::string& dataset, v1::DataFormat format,
                                const std::function<absl::Status(const v1::ExportChunk&)>& sink) {
  grpc::ClientContext context;
  Prepare(context);
  v1::ExportRequest request;
  request.set_dataset(dataset);
  request.set_format(format);
  std::unique_ptr<grpc::ClientReader<v1::ExportChunk>> reader = admin_->Export(&context, request);
  grpc::Status status;
  absl::Status sink_status = DrainStream(context, *reader, sink, &status);
  Remember(context);
  if (!sink_status.ok()) return sink_status;
  return FromGrpcStatus(status);
}

absl::Status NodeClient::ExportConsent(
    v1::ConsentFormat format,
    const std::function<absl::Status(const v1::ConsentExportChunk&)>& sink) {
  grpc::ClientContext context;
  Prepare(context);
  v1::ConsentExportRequest request;
  request.set_format(format);
  std::unique_ptr<grpc::ClientReader<v1::ConsentExportChunk>> reader =
      admin_->ExportConsent(&context, request);
  grpc::Status status;
  absl::Status sink_status = DrainStream(context, *reader, sink, &status);
  Remember(context);
  if (!sink_status.ok()) return sink_status;
  return FromGrpcStatus(status);
}

absl::StatusOr<v1::BackupResponse> NodeClient::Backup() {
  grpc::ClientContext context;
  Prepare(context);
  v1::BackupResponse response;
  grpc::Status status = admin_->Backup(&context, v1::BackupRequest(), &response);
  Remember(context);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::EraseSubjectResponse> NodeClient::EraseSubject(const std::string& subject_id) {
  grpc::ClientContext context;
  Prepare(context);
  v1::EraseSubjectRequest request;
  request.set_subject_id(subject_id);
  v1::EraseSubjectResponse response;
  grpc::Status status = admin_->EraseSubject(&context, request, &response);
  Remember(context);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::RunRetentionResponse> NodeClient::RunRetention() {
  grpc::ClientContext context;
  Prepare(context);
  v1::RunRetentionResponse response;
  grpc::Status status = admin_->RunRetention(&context, v1::RunRetentionRequest(), &response);
  Remember(context);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::ConsentReportResponse> NodeClient::ConsentReport(std::optional<absl::Time> at) {
  grpc::ClientContext context;
  Prepare(context);
  v1::ConsentReportRequest request;
  if (at.has_value()) {
    *request.mutable_at() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(*at));
  }
  v1::ConsentReportResponse response;
  grpc::Status status = admin_->ConsentReport(&context, request, &response);
  Remember(context);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace fedshare::client
