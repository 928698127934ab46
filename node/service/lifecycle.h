// Erasure and retention as the org's operators (AdminService) and the node's
// schedule run them: the engine's work, each change audited before it is
// written (fail closed: no audit entry, no change). The audit entries and log
// lines carry counts and dataset names, never a subject id.
#ifndef FEDSHARE_NODE_SERVICE_LIFECYCLE_H_
#define FEDSHARE_NODE_SERVICE_LIFECYCLE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/admin.pb.h"
#include "node/service/service_env.h"

namespace fedshare::service {

// Engine::EraseSubject, audited as `caller` (a SPIFFE ID). NOT_FOUND for an
// unknown subject (not audited: nothing changed, and the entry could not name
// what was asked without the id). Before any work or audit: INVALID_ARGUMENT
// for an empty id or one longer than env.limits.max_string_bytes, and
// ABORTED while another erasure runs (env.erasures).
absl::StatusOr<v1::EraseSubjectResponse> EraseSubject(const ServiceEnv& env,
                                                      const std::string& caller,
                                                      absl::string_view subject_id);

// Engine::PurgeExpired, each dataset's purge audited as `caller` (an
// operator's SPIFFE ID, or the node's own for the schedule). ABORTED, before
// any work, while another run is in progress (env.retention_runs).
absl::StatusOr<v1::RunRetentionResponse> RunRetention(const ServiceEnv& env,
                                                      const std::string& caller);

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_LIFECYCLE_H_
