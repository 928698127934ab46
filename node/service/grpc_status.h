// The one conversion from absl::Status to grpc::Status, at the service edge.
// The codes are the same numbers; the message passes unchanged.
#ifndef FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_
#define FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace fedshare::service {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_GRPC_STATUS_H_
