#include "node/service/federation_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpc/grpc_security_constants.h"
#include "node/common/utf8.h"
#include "node/federation/call_home.h"
#include "node/federation/fanout.h"
#include "node/service/call_guard.h"
#include "node/service/grpc_status.h"
#include "node/service/limits.h"
#include "query/sql.h"
#include "spdlog/spdlog.h"

namespace fedshare::service {
namespace {

// `request` with its `sql` parsed into `query` (one grammar with the CLI), or
// as it came when it has no `sql`.
absl::StatusOr<v1::FederatedAggregateRequest> WithQuestion(
    const v1::FederatedAggregateRequest& request) {
  if (request.sql().empty()) return request;
  v1::AggregateQuery rest = request.query();
  rest.clear_query_id();
  if (rest.ByteSizeLong() > 0) {
    return absl::InvalidArgumentError(
        "the request has both sql and a structured query: send one (query may carry only "
        "query_id alongside sql)");
  }
  absl::StatusOr<v1::AggregateQuery> parsed = ParseSql(request.sql());
  if (!parsed.ok()) return parsed.status();
  v1::FederatedAggregateRequest out = request;
  out.clear_sql();
  parsed->set_query_id(request.query().query_id());
  *out.mutable_query() = *std::move(parsed);
  return out;
}

using identity::Role;

// FederatedAggregate and its stream: authorize, check, fan out.
grpc::Status AskPartners(const ServiceEnv& env, grpc::ServerContext* context,
                         absl::string_view method, const v1::FederatedAggregateRequest& request,
                         const federation::FanOut::Progress& progress,
                         v1::FederatedAggregateResponse* response) {
  absl::StatusOr<identity::Identity> who =
      Authorize(env, *context, method, {Role::kAnalyst, Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  absl::StatusOr<v1::FederatedAggregateRequest> asked = WithQuestion(request);
  if (!asked.ok()) return Finish(method, who->spiffe_id, asked.status());
  if (absl::Status s = CheckQuestion(env.limits, asked->query()); !s.ok()) {
    return Finish(method, who->spiffe_id, s);
  }
  absl::StatusOr<CallGate::Ticket> ticket = env.call_gate->Enter(who->spiffe_id);
  if (!ticket.ok()) return Finish(method, who->spiffe_id, ticket.status());
  absl::StatusOr<v1::FederatedAggregateResponse> result = env.fanout->Ask(
      who->spiffe_id, *asked, [context] { return context->IsCancelled(); }, progress);
  if (result.ok()) *response = std::move(result).value();
  return Finish(method, who->spiffe_id, result.status());
}

}  // namespace

grpc::Status FederationServiceImpl::FederatedAggregate(grpc::ServerContext* context,
                                                       const v1::FederatedAggregateRequest* request,
                                                       v1::FederatedAggregateResponse* response) {
  return AskPartners(*env_, context, "FederationService.FederatedAggregate", *request, nullptr,
                     response);
}

grpc::Status FederationServiceImpl::FederatedAggregateStream(
    grpc::ServerContext* context, const v1::FederatedAggregateRequest* request,
    grpc::ServerWriter<v1::FederatedAggregateEvent>* writer) {
  // Progress is written from this handler's thread (FanOut::Ask reports on
  // the asking thread); an analyst who stopped reading is seen as cancelled.
  auto progress = [writer](const v1::PartnerCoverage& partner, int finished, int asked) {
    v1::FederatedAggregateEvent event;
    *event.mutable_progress()->mutable_partner() = partner;
    event.mutable_progress()->set_finished(finished);
    event.mutable_progress()->set_asked(asked);
    writer->Write(event);
  };
  v1::FederatedAggregateEvent last;
  grpc::Status status = AskPartners(*env_, context, "FederationService.FederatedAggregateStream",
                                    *request, progress, last.mutable_result());
  if (status.ok()) writer->Write(last);
  return status;
}

grpc::Status FederationServiceImpl::ListPeers(grpc::ServerContext* context,
                                              const v1::ListPeersRequest* request,
                                              v1::ListPeersResponse* response) {
  constexpr absl::string_view kMethod = "FederationService.ListPeers";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kAnalyst, Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  *response = env_->fanout->ListPeers(request->probe());
  return Finish(kMethod, who->spiffe_id, absl::OkStatus());
}

grpc::Status FederationServiceImpl::DescribePeer(grpc::ServerContext* context,
                                                 const v1::DescribePeerRequest* request,
                                                 v1::DescribeResponse* response) {
  constexpr absl::string_view kMethod = "FederationService.DescribePeer";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kAnalyst, Role::kOperator}, /*own_org=*/true);
  if (!who.ok()) return ToGrpcStatus(who.status());
  if (!identity::IsValidOrgId(request->peer())) {
    return Finish(kMethod, who->spiffe_id,
                  absl::InvalidArgumentError(absl::StrCat(
                      "'", TruncateUtf8(request->peer(), 64),
                      "' is not an org id (1-63 of lowercase letters, digits, '-'); name a peer")));
  }
  absl::StatusOr<CallGate::Ticket> ticket = env_->call_gate->Enter(who->spiffe_id);
  if (!ticket.ok()) return Finish(kMethod, who->spiffe_id, ticket.status());
  absl::StatusOr<v1::DescribeResponse> described = env_->fanout->DescribePeer(request->peer());
  if (described.ok()) *response = std::move(described).value();
  return Finish(kMethod, who->spiffe_id, described.status());
}

grpc::Status FederationPeerServiceImpl::Connect(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::CallHomeDown, v1::CallHomeUp>* stream) {
  constexpr absl::string_view kMethod = "FederationService.Connect";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kNode}, /*own_org=*/false);
  if (!who.ok()) return ToGrpcStatus(who.status());
  bool configured = false;
  for (const v1::PeerConfig& peer : *env_->fanout->peers()) {
    configured = configured || (peer.org_id() == who->org_id && peer.call_home());
  }
  if (!configured || env_->call_home_hub == nullptr) {
    return Finish(
        kMethod, who->spiffe_id,
        absl::PermissionDeniedError(absl::StrCat(
            "org '", who->org_id, "' is not a call-home peer of ", env_->config->org_id(),
            " (its config needs peers { org_id: \"", who->org_id, "\" call_home: true })")));
  }
  v1::CallHomeDown hello;
  hello.mutable_hello()->set_org_id(env_->config->org_id());
  if (!stream->Write(hello)) {
    return Finish(kMethod, who->spiffe_id,
                  absl::UnavailableError("the stream broke before the hello"));
  }
  auto session = std::make_shared<federation::CallHomeSession>(
      who->org_id, [stream](const v1::CallHomeDown& down) { return stream->Write(down); },
      [context] { context->TryCancel(); }, absl::Now());
  env_->call_home_hub->Attach(session);
  // For `fedshare peers`: when the certificate the partner holds expires.
  for (const grpc::string_ref& pem :
       context->auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
    env_->fanout->NotePeerCertificate(who->org_id, absl::string_view(pem.data(), pem.size()));
  }
  spdlog::info("event=call_home_connected peer={} caller={}", who->org_id, who->spiffe_id);
  v1::CallHomeUp up;
  while (stream->Read(&up)) {
    if (up.has_answer()) session->Deliver(std::move(*up.mutable_answer()));
  }
  env_->call_home_hub->Detach(session.get());
  // After Close nothing touches `stream` or `context` any more.
  session->Close("the stream ended");
  spdlog::info("event=call_home_disconnected peer={}", who->org_id);
  return Finish(kMethod, who->spiffe_id, absl::OkStatus());
}

}  // namespace fedshare::service
