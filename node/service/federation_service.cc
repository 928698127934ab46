#include "node/service/federation_service.h"

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "grpc/grpc_security_constants.h"
#include "node/common/utf8.h"
#include "node/common/wire_limits.h"
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

// FederatedAggregate and its stream: authorize, check, fan out. `whole`:
// the answer goes out in one message, so it must fit in one.
grpc::Status AskPartners(const ServiceEnv& env, grpc::ServerContext* context,
                         absl::string_view method, const v1::FederatedAggregateRequest& request,
                         const federation::FanOut::Progress& progress, bool whole,
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
  if (result.ok() && whole) {
    if (const size_t bytes = result->ByteSizeLong(); bytes > kMaxReplyBytes) {
      result = absl::ResourceExhaustedError(absl::StrCat(
          "the answer with ", result->coverage_size(), " partners' coverage is ",
          absl::StrFormat("%.1f", static_cast<double>(bytes) / (1 << 20)), " MiB, more than the ",
          kMaxReplyBytes >> 20,
          " MiB a node sends in one message (the question was asked and audited); ask with "
          "FederatedAggregateStream, which sends the answer in parts, as `fedshare query` does"));
    }
  }
  if (result.ok()) *response = std::move(result).value();
  return Finish(method, who->spiffe_id, result.status());
}

// `answer` as FederatedAggregateStream sends it: its coverage, partners'
// answers and combined cells in `result_part` events of about
// kResultPartBytes each (one answer alone may be more), then the rest of
// `combined` (its receipt, withholdings, ...) in the `result` event.
std::vector<v1::FederatedAggregateEvent> InParts(v1::FederatedAggregateResponse answer) {
  std::vector<v1::FederatedAggregateEvent> events;
  size_t part_bytes = 0;
  // The part that `bytes` more go into: the last, or a new one when they
  // would take the last past kResultPartBytes.
  auto part_for = [&](size_t bytes) -> v1::FederatedAggregateResponse& {
    if (events.empty() || (part_bytes > 0 && part_bytes + bytes > kResultPartBytes)) {
      events.emplace_back();
      part_bytes = 0;
    }
    part_bytes += bytes;
    return *events.back().mutable_result_part();
  };
  for (v1::PartnerCoverage& coverage : *answer.mutable_coverage()) {
    *part_for(coverage.ByteSizeLong()).add_coverage() = std::move(coverage);
  }
  for (v1::AggregateResult& partner : *answer.mutable_partners()) {
    *part_for(partner.ByteSizeLong()).add_partners() = std::move(partner);
  }
  // The combined table's cells too: partners with different keys can make
  // it as large as all their answers together.
  for (v1::Cell& cell : *answer.mutable_combined()->mutable_cells()) {
    *part_for(cell.ByteSizeLong()).mutable_combined()->add_cells() = std::move(cell);
  }
  answer.mutable_combined()->clear_cells();
  *events.emplace_back().mutable_result()->mutable_combined() =
      std::move(*answer.mutable_combined());
  return events;
}

}  // namespace

std::vector<v1::FederatedAggregateEvent> ProgressEvents(std::vector<v1::PartnerCoverage> partners,
                                                        int finished, int asked,
                                                        size_t part_bytes) {
  std::vector<v1::FederatedAggregateEvent> events;
  int told = finished - static_cast<int>(partners.size());
  size_t event_bytes = 0;
  for (v1::PartnerCoverage& partner : partners) {
    // A new event when this partner would take the last past part_bytes.
    const size_t bytes = partner.ByteSizeLong();
    if (events.empty() || (event_bytes > 0 && event_bytes + bytes > part_bytes)) {
      events.emplace_back().mutable_progress()->set_asked(asked);
      event_bytes = 0;
    }
    event_bytes += bytes;
    v1::FederatedAggregateProgress& p = *events.back().mutable_progress();
    *p.add_partners() = std::move(partner);
    p.set_finished(++told);
  }
  return events;
}

grpc::Status FederationServiceImpl::FederatedAggregate(grpc::ServerContext* context,
                                                       const v1::FederatedAggregateRequest* request,
                                                       v1::FederatedAggregateResponse* response) {
  return AskPartners(*env_, context, "FederationService.FederatedAggregate", *request, nullptr,
                     /*whole=*/true, response);
}

grpc::Status FederationServiceImpl::FederatedAggregateStream(
    grpc::ServerContext* context, const v1::FederatedAggregateRequest* request,
    grpc::ServerWriter<v1::FederatedAggregateEvent>* writer) {
  // Progress is written from this handler's thread (FanOut::Ask reports on
  // the asking thread); an analyst who stopped reading is seen as cancelled.
  auto progress = [writer](std::vector<v1::PartnerCoverage> partners, int finished, int asked) {
    for (const v1::FederatedAggregateEvent& event :
         ProgressEvents(std::move(partners), finished, asked, kResultPartBytes)) {
      if (!writer->Write(event)) return;  // the analyst is gone
    }
  };
  v1::FederatedAggregateResponse answer;
  grpc::Status status = AskPartners(*env_, context, "FederationService.FederatedAggregateStream",
                                    *request, progress, /*whole=*/false, &answer);
  if (!status.ok()) return status;
  for (const v1::FederatedAggregateEvent& event : InParts(std::move(answer))) {
    if (!writer->Write(event)) break;  // the analyst is gone
  }
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

namespace {

// Messages (questions, cancels, describe requests) that may wait to go down one stream behind
// the one being written. A partner that stops reading fills HTTP/2's window
// and then this queue; past it a new question fails UNAVAILABLE at once, so
// the foundation's memory for a stuck partner stays bounded.
constexpr size_t kMaxQueuedDown = 64;

// A Connect refused before any session exists.
class RefusedStream final : public grpc::ServerBidiReactor<v1::CallHomeUp, v1::CallHomeDown> {
 public:
  explicit RefusedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// One call-home partner's stream. It lives from Connect until gRPC calls
// OnDone, which comes only after Finish; Finish comes only after the reading
// side ended, the session was closed (so nothing calls Send or cancels the
// context any more) and the last write completed.
class CallHomeStream final : public grpc::ServerBidiReactor<v1::CallHomeUp, v1::CallHomeDown> {
 public:
  CallHomeStream(const ServiceEnv* env, grpc::CallbackServerContext* context,
                 identity::Identity who)
      : env_(env), who_(std::move(who)) {
    session_ = std::make_shared<federation::CallHomeSession>(
        who_.org_id, [this](const v1::CallHomeDown& down) { return Send(down); },
        [context] { context->TryCancel(); }, absl::Now());
    v1::CallHomeDown hello;
    hello.mutable_hello()->set_org_id(env_->config->org_id());
    hello.mutable_hello()->set_max_message_bytes(env_->limits.peer_max_message_bytes());
    Send(hello);
    env_->call_home_hub->Attach(session_);
    // For `fedshare peers`: when the certificate the partner holds expires.
    for (const grpc::string_ref& pem :
         context->auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
      env_->fanout->NotePeerCertificate(who_.org_id, absl::string_view(pem.data(), pem.size()));
    }
    spdlog::info("event=call_home_connected peer={} caller={}", who_.org_id, who_.spiffe_id);
    StartRead(&up_);
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      if (up_.has_answer()) session_->Deliver(std::move(*up_.mutable_answer()));
      if (up_.has_described()) session_->DeliverDescribed(std::move(*up_.mutable_described()));
      up_.Clear();
      StartRead(&up_);
      return;
    }
    env_->call_home_hub->Detach(session_.get(), absl::Now());
    session_->Close("the stream ended");
    spdlog::info("event=call_home_disconnected peer={}", who_.org_id);
    {
      absl::MutexLock lock(&mu_);
      reading_ended_ = true;
      queued_.clear();
    }
    MaybeFinish();
  }

  void OnWriteDone(bool ok) override {
    bool next = false;
    {
      absl::MutexLock lock(&mu_);
      if (ok && !queued_.empty() && !reading_ended_) {
        writing_ = std::move(queued_.front());
        queued_.pop_front();
        next = true;
      } else {
        broken_ = broken_ || !ok;
        queued_.clear();
        write_in_flight_ = false;
      }
    }
    if (next) {
      StartWrite(&writing_);
      return;
    }
    MaybeFinish();
  }

  void OnDone() override { delete this; }

 private:
  // Queues `down` for the stream (the session serializes calls); false once
  // the stream is broken or ending, or when kMaxQueuedDown messages already
  // wait for a partner that does not read.
  bool Send(const v1::CallHomeDown& down) {
    {
      absl::MutexLock lock(&mu_);
      if (reading_ended_ || broken_) return false;
      if (write_in_flight_) {
        if (queued_.size() >= kMaxQueuedDown) return false;
        queued_.push_back(down);
        return true;
      }
      write_in_flight_ = true;
      writing_ = down;
    }
    StartWrite(&writing_);
    return true;
  }

  void MaybeFinish() {
    {
      absl::MutexLock lock(&mu_);
      if (!reading_ended_ || write_in_flight_ || finished_) return;
      finished_ = true;
    }
    Finish(service::Finish("FederationService.Connect", who_.spiffe_id, absl::OkStatus()));
  }

  const ServiceEnv* env_;
  const identity::Identity who_;
  std::shared_ptr<federation::CallHomeSession> session_;
  v1::CallHomeUp up_;  // only the reading side touches it
  absl::Mutex mu_;
  // The message being written: set only by whoever starts a write, which
  // happens only while no write is in flight.
  v1::CallHomeDown writing_;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::CallHomeDown> queued_ ABSL_GUARDED_BY(mu_);
  bool reading_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerBidiReactor<v1::CallHomeUp, v1::CallHomeDown>* FederationPeerServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  constexpr absl::string_view kMethod = "FederationService.Connect";
  absl::StatusOr<identity::Identity> who =
      Authorize(*env_, *context, kMethod, {Role::kNode}, /*own_org=*/false);
  if (!who.ok()) return new RefusedStream(ToGrpcStatus(who.status()));
  std::shared_ptr<const v1::PeerConfig> peer = env_->fanout->FindPeer(who->org_id);
  if (peer == nullptr || !peer->call_home() || env_->call_home_hub == nullptr) {
    return new RefusedStream(Finish(
        kMethod, who->spiffe_id,
        absl::PermissionDeniedError(absl::StrCat(
            "org '", who->org_id, "' is not a call-home peer of ", env_->config->org_id(),
            " (its config needs peers { org_id: \"", who->org_id, "\" call_home: true })"))));
  }
  return new CallHomeStream(env_, context, *std::move(who));
}

}  // namespace fedshare::service
