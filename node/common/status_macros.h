// Status propagation helpers missing from Debian 12's Abseil (20220623).
//
//   FEDSHARE_RETURN_IF_ERROR(DoThing());
//   FEDSHARE_ASSIGN_OR_RETURN(auto value, ComputeValue());
//
// Both evaluate their argument once and return the failing absl::Status from
// the enclosing function, which must return absl::Status or absl::StatusOr<T>.
#ifndef FEDSHARE_NODE_COMMON_STATUS_MACROS_H_
#define FEDSHARE_NODE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FEDSHARE_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::absl::Status fedshare_status_ = (expr);            \
    if (!fedshare_status_.ok()) return fedshare_status_; \
  } while (0)

#define FEDSHARE_STATUS_CONCAT_INNER_(a, b) a##b
#define FEDSHARE_STATUS_CONCAT_(a, b) FEDSHARE_STATUS_CONCAT_INNER_(a, b)

#define FEDSHARE_ASSIGN_OR_RETURN(lhs, rexpr) \
  FEDSHARE_ASSIGN_OR_RETURN_IMPL_(FEDSHARE_STATUS_CONCAT_(fedshare_statusor_, __LINE__), lhs, rexpr)

#define FEDSHARE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();    \
  lhs = std::move(statusor).value()

#endif  // FEDSHARE_NODE_COMMON_STATUS_MACROS_H_
