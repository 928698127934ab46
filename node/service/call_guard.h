// Per-call authentication, role check and one log line per RPC.
//
//   ASSIGN_OR_RETURN_GRPC(identity::Identity who,
//       Authorize(*env_, *context, "AdminService.Status", {Role::kOperator}, /*own_org=*/true));
#ifndef FEDSHARE_NODE_SERVICE_CALL_GUARD_H_
#define FEDSHARE_NODE_SERVICE_CALL_GUARD_H_

#include <initializer_list>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "node/identity/spiffe.h"
#include "node/service/service_env.h"

namespace fedshare::service {

// Verifies the caller's certificate and that its role is one of `roles`
// (and, with `own_org`, that it belongs to this node's org).
// UNAUTHENTICATED or PERMISSION_DENIED saying what is needed.
absl::StatusOr<identity::Identity> Authorize(const ServiceEnv& env,
                                             const grpc::ServerContextBase& context,
                                             absl::string_view method,
                                             std::initializer_list<identity::Role> roles,
                                             bool own_org);

// Logs one line for the finished call and converts its status.
grpc::Status Finish(absl::string_view method, const std::string& caller,
                    const absl::Status& status);

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_CALL_GUARD_H_
