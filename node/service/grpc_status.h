// The one conversion from absl::Status to grpc::Status, at the service edge.
// The codes are the same numbers; the message passes as valid UTF-8 of at
// most kMaxStatusMessageBytes, cut on a character boundary. A refusal's
// ErrorInfo (policy/refusal.h) goes into the status details as a
// google.rpc.Status holding it, where gRPC clients look for it, and so does
// a refusal's audit receipt (node/audit/receipt_payload.h).
#ifndef FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_
#define FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"
#include "node/audit/receipt_payload.h"
#include "node/common/utf8.h"
#include "policy/refusal.h"

namespace fedshare::service {

inline constexpr size_t kMaxStatusMessageBytes = 4096;

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message = TruncateUtf8(status.message(), kMaxStatusMessageBytes);
  std::optional<google::rpc::ErrorInfo> info = policy::RefusalOf(status);
  std::optional<v1::Receipt> receipt = audit::ReceiptOf(status);
  if (!info.has_value() && !receipt.has_value()) return grpc::Status(code, message);
  google::rpc::Status details;
  details.set_code(static_cast<int32_t>(code));
  details.set_message(message);
  if (info.has_value()) details.add_details()->PackFrom(*info);
  if (receipt.has_value()) details.add_details()->PackFrom(*receipt);
  return grpc::Status(code, message, details.SerializeAsString());
}

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_
