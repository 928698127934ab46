// The one conversion from absl::Status to grpc::Status, at the service edge.
// The codes are the same numbers; the message passes as valid UTF-8 of at
// most kMaxStatusMessageBytes, cut on a character boundary.
#ifndef FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_
#define FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "node/common/utf8.h"

namespace fedshare::service {

inline constexpr size_t kMaxStatusMessageBytes = 4096;

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      TruncateUtf8(status.message(), kMaxStatusMessageBytes));
}

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_
