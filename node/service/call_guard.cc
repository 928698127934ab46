#include "node/service/call_guard.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/common/utf8.h"
#include "node/identity/authenticator.h"
#include "node/service/grpc_status.h"
#include "spdlog/spdlog.h"

namespace fedshare::service {
namespace {
// Quoted text in a log line is cut, on a character boundary, to this.
constexpr size_t kMaxLoggedMessageBytes = 512;
}  // namespace

absl::StatusOr<identity::Identity> Authorize(const ServiceEnv& env,
                                             const grpc::ServerContextBase& context,
                                             absl::string_view method,
                                             std::initializer_list<identity::Role> roles,
                                             bool own_org) {
  absl::StatusOr<identity::Identity> who = env.authenticator->Authenticate(context);
  if (!who.ok()) {
    spdlog::warn("event=rpc_refused method={} code=UNAUTHENTICATED reason=\"{}\"",
                 std::string(method), TruncateUtf8(who.status().message(), kMaxLoggedMessageBytes));
    return who.status();
  }
  bool role_ok = false;
  for (identity::Role r : roles) role_ok = role_ok || r == who->role;
  std::vector<std::string> names;
  for (identity::Role r : roles) names.emplace_back(identity::RoleName(r));
  absl::Status status;
  if (!role_ok) {
    status = absl::PermissionDeniedError(
        absl::StrCat(method, " needs the ", absl::StrJoin(names, " or "), " role",
                     own_org ? absl::StrCat(" of org '", env.config->org_id(), "'") : std::string(),
                     "; the caller is ", who->Describe()));
  } else if (own_org && who->org_id != env.config->org_id()) {
    status = absl::PermissionDeniedError(absl::StrCat(
        method, " is only for org '", env.config->org_id(), "'; the caller is ", who->Describe()));
  }
  if (!status.ok()) {
    spdlog::warn("event=rpc_refused method={} caller={} code=PERMISSION_DENIED",
                 std::string(method), who->spiffe_id);
    return status;
  }
  return who;
}

grpc::Status Finish(absl::string_view method, const std::string& caller,
                    const absl::Status& status) {
  if (status.ok()) {
    spdlog::info("event=rpc method={} caller={} code=OK", std::string(method), caller);
  } else {
    spdlog::info("event=rpc method={} caller={} code={} message=\"{}\"", std::string(method),
                 caller, absl::StatusCodeToString(status.code()),
                 TruncateUtf8(status.message(), kMaxLoggedMessageBytes));
  }
  return ToGrpcStatus(status);
}

}  // namespace fedshare::service
