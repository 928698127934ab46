#include "node/service/peer_service.h"

#include <atomic>
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fedshare/v1/config.pb.h"
#include "node/audit/audit_log.h"
#include "node/engine/answerer.h"
#include "node/service/call_guard.h"
#include "node/service/grpc_status.h"
#include "node/service/limits.h"

namespace fedshare::service {
namespace {

using identity::Role;

// on_behalf_of is recorded, not trusted; it must at least name a person of
// the calling node's own org, so a node cannot put another org's name there.
absl::Status CheckOnBehalfOf(const identity::Identity& caller, const std::string& on_behalf_of) {
  if (on_behalf_of.empty()) return absl::OkStatus();
  constexpr size_t kMaxSpiffeIdBytes = 2048;  // the SPIFFE standard's bound
  if (on_behalf_of.size() > kMaxSpiffeIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("on_behalf_of (", on_behalf_of.size(), " bytes) is over 2048 bytes"));
  }
  absl::StatusOr<identity::Identity> user = identity::ParseSpiffeId(on_behalf_of);
  if (!user.ok() || user->trust_domain != caller.trust_domain || user->org_id != caller.org_id ||
      user->role == Role::kNode) {
    return absl::InvalidArgumentError(
        "on_behalf_of must be empty or the SPIFFE ID of an analyst or operator of the asking "
        "org (spiffe://<trust-domain>/org/<org>/analyst/<name>)");
  }
  return absl::OkStatus();
}

// Whether a call's caller gave up, asked of gRPC at most once per `every`,
// the first time `every` after the call began: ServerContext::IsCancelled
// polls the server's completion queue (system calls, and other calls' work),
// and a scan asks between blocks from every scan thread (7% of a node's CPU
// at one client, measured); a question answered sooner never asks (that first
// poll was 8% of a small partner's CPU). Once true, it stays true.
std::function<bool()> ThrottledCancelled(grpc::ServerContext* context, absl::Duration every) {
  const int64_t every_ns = absl::ToInt64Nanoseconds(every);
  struct State {
    std::atomic<int64_t> next_ns;
    std::atomic<bool> cancelled{false};
  };
  auto state = std::make_shared<State>();
  state->next_ns.store(absl::GetCurrentTimeNanos() + every_ns, std::memory_order_relaxed);
  return [context, state, every_ns] {
    if (state->cancelled.load(std::memory_order_relaxed)) return true;
    const int64_t now = absl::GetCurrentTimeNanos();
    int64_t next = state->next_ns.load(std::memory_order_relaxed);
    if (now < next || !state->next_ns.compare_exchange_strong(next, now + every_ns)) return false;
    if (!context->IsCancelled()) return false;
    state->cancelled.store(true, std::memory_order_relaxed);
    return true;
  };
}

}  // namespace

grpc::Status PeerServiceImpl::Describe(grpc::ServerContext* context, const v1::DescribeRequest*,
                                       v1::DescribeResponse* response) {
  constexpr absl::string_view kMethod = "PeerService.Describe";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kNode}, /*own_org=*/false);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return AnswerPeerDescribe(*env_, kMethod, *who, response);
}

grpc::Status AnswerPeerDescribe(const ServiceEnv& env, absl::string_view method,
                                const identity::Identity& who, v1::DescribeResponse* response) {
  *response = env.answerer->Describe(who.org_id);
  response->set_version(FEDSHARE_VERSION);
  *response->mutable_purposes() = env.config->purposes();
  return Finish(method, who.spiffe_id, absl::OkStatus());
}

grpc::Status AnswerPeerAggregate(const ServiceEnv& env, absl::string_view method,
                                 const identity::Identity& who, const v1::AggregateRequest& request,
                                 absl::Time deadline, const std::function<bool()>& cancelled,
                                 v1::AggregateResponse* response) {
  // Bounds come before any work and before the audit, so a question over one
  // costs the node nothing it keeps.
  if (absl::Status s = CheckQuestion(env.limits, request.query()); !s.ok()) {
    return Finish(method, who.spiffe_id, s);
  }
  if (absl::Status s = CheckOnBehalfOf(who, request.on_behalf_of()); !s.ok()) {
    return Finish(method, who.spiffe_id, s);
  }
  absl::StatusOr<CallGate::Ticket> ticket = env.call_gate->Enter(who.spiffe_id);
  if (!ticket.ok()) return Finish(method, who.spiffe_id, ticket.status());
  const absl::Time now = absl::Now();
  if (absl::Status s = env.refusal_throttle->Admit(who.spiffe_id, now); !s.ok()) {
    return Finish(method, who.spiffe_id, s);
  }
  // A dry run spends nothing and no agreement limit counts it, but is
  // audited: bounded per caller as refusals are, counted as it is admitted
  // so that dry runs arriving together cannot pass the limit.
  if (request.dry_run()) {
    if (absl::Status s = env.dry_run_throttle->Take(who.spiffe_id, now); !s.ok()) {
      return Finish(method, who.spiffe_id, s);
    }
  }
  engine::Caller caller;
  caller.org_id = who.org_id;
  caller.spiffe_id = who.spiffe_id;
  caller.on_behalf_of = request.on_behalf_of();
  caller.audit_known_size = request.audit_known_size();
  // A refusal is counted as it is about to be audited, so that refusals
  // judged together cannot pass the limit; past it, it is turned away
  // unaudited, as the questions after it are.
  bool gated = false;
  caller.refusal_gate = [&env, &who, now, &gated] {
    gated = true;
    return env.refusal_throttle->Take(who.spiffe_id, now);
  };
  absl::StatusOr<v1::AggregateResult> result = env.answerer->Answer(
      caller, request.query(),
      [&cancelled, deadline] { return cancelled() || absl::Now() >= deadline; }, request.dry_run());
  if (result.ok()) {
    *response->mutable_result() = std::move(result).value();
  } else if (!gated && (result.status().code() == absl::StatusCode::kPermissionDenied ||
                        result.status().code() == absl::StatusCode::kInvalidArgument ||
                        result.status().code() == absl::StatusCode::kResourceExhausted)) {
    // Refused before the audit (too many questions at once): counted too.
    env.refusal_throttle->Count(who.spiffe_id, now);
  } else if (result.status().code() == absl::StatusCode::kCancelled && absl::Now() >= deadline) {
    // The scan stopped because the deadline passed: say so, as gRPC itself
    // would, so a caller's status does not depend on whose timer fired first.
    return Finish(method, who.spiffe_id, absl::DeadlineExceededError(result.status().message()));
  }
  return Finish(method, who.spiffe_id, result.status());
}

grpc::Status PeerServiceImpl::Aggregate(grpc::ServerContext* context,
                                        const v1::AggregateRequest* request,
                                        v1::AggregateResponse* response) {
  constexpr absl::string_view kMethod = "PeerService.Aggregate";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kNode}, /*own_org=*/false);
  if (!who.ok()) return ToGrpcStatus(who.status());
  return AnswerPeerAggregate(*env_, kMethod, *who, *request, absl::FromChrono(context->deadline()),
                             ThrottledCancelled(context, absl::Milliseconds(5)), response);
}

grpc::Status PeerServiceImpl::AuditProof(grpc::ServerContext* context,
                                         const v1::AuditProofRequest* request,
                                         v1::AuditProofResponse* response) {
  constexpr absl::string_view kMethod = "PeerService.AuditProof";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kNode}, /*own_org=*/false);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::AuditProofResponse> proof = env_->audit->Proof(*request, who->org_id);
  if (proof.ok()) *response = *std::move(proof);
  return Finish(kMethod, who->spiffe_id, proof.status());
}

}  // namespace fedshare::service
