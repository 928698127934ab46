#include "node/federation/fanout.h"

#include <algorithm>
#include <future>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "node/federation/combine.h"
#include "node/identity/channel.h"
#include "policy/question.h"

namespace fedshare::federation {
namespace {

using State = v1::PartnerCoverage::State;

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

State StateFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return v1::PartnerCoverage::ANSWERED;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::UNAUTHENTICATED:
      return v1::PartnerCoverage::REFUSED;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return v1::PartnerCoverage::TIMED_OUT;
    case grpc::StatusCode::UNAVAILABLE:
      return v1::PartnerCoverage::UNREACHABLE;
    default:
      return v1::PartnerCoverage::FAILED;
  }
}

identity::ClientTlsFiles OwnFiles(const v1::NodeConfig& config) {
  identity::ClientTlsFiles files;
  files.cert_file = config.tls().cert_file();
  files.key_file = config.tls().key_file();
  files.ca_file = config.tls().ca_file();
  return files;
}

std::unique_ptr<v1::PeerService::Stub> Dial(const v1::NodeConfig& config,
                                            const v1::PeerConfig& peer, std::string* error) {
  identity::ServerExpectation expect;
  expect.trust_domain = config.trust_domain();
  expect.org_id = peer.org_id();
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      identity::MakeChannel(peer.address(), OwnFiles(config), expect);
  if (!channel.ok()) {
    *error = std::string(channel.status().message());
    return nullptr;
  }
  return v1::PeerService::NewStub(*channel);
}

// The coverage (and result) of one partner's call that ended with `status`.
PartnerOutcome OutcomeOf(const v1::PeerConfig& peer, const grpc::Status& status,
                         v1::AggregateResponse* response) {
  PartnerOutcome outcome;
  outcome.coverage.set_org_id(peer.org_id());
  outcome.coverage.set_state(StateFor(status.error_code()));
  if (!status.ok()) {
    outcome.coverage.set_reason(status.error_message());
    // Pass the partner's ErrorInfo on, so the analyst's tools see the rule
    // and agreement without parsing the reason.
    google::rpc::Status details;
    if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
      for (const google::protobuf::Any& any : details.details()) {
        if (any.UnpackTo(outcome.coverage.mutable_refusal())) break;
      }
    }
    return outcome;
  }
  int released = 0;
  int withheld = response->result().unlisted_withheld_cells();
  for (const v1::Cell& cell : response->result().cells()) {
    if (cell.withheld()) {
      ++withheld;
    } else {
      ++released;
    }
  }
  outcome.coverage.set_released_cells(released);
  outcome.coverage.set_withheld_cells(withheld);
  outcome.result = std::move(*response->mutable_result());
  return outcome;
}

}  // namespace

PartnerOutcome FanOut::AskOne(const v1::PeerConfig& peer, const v1::AggregateRequest& request,
                              absl::Duration deadline) {
  v1::AggregateResponse response;
  grpc::Status status;
  if (peer.call_home()) {
    std::shared_ptr<CallHomeSession> session =
        hub_ != nullptr ? hub_->Find(peer.org_id()) : nullptr;
    if (session == nullptr) {
      status = grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("call-home partner ", peer.org_id(), " is not connected to this node"));
    } else {
      status = session->Ask(request, deadline, &response);
    }
  } else {
    std::string error;
    std::unique_ptr<v1::PeerService::Stub> stub = Dial(*config_, peer, &error);
    if (stub == nullptr) {
      PartnerOutcome outcome;
      outcome.coverage.set_org_id(peer.org_id());
      outcome.coverage.set_state(v1::PartnerCoverage::FAILED);
      outcome.coverage.set_reason(error);
      return outcome;
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    status = stub->Aggregate(&context, request, &response);
  }
  PartnerOutcome outcome = OutcomeOf(peer, status, &response);
  const State state = outcome.coverage.state();
  if (state == v1::PartnerCoverage::ANSWERED || state == v1::PartnerCoverage::REFUSED) {
    absl::MutexLock lock(&mu_);
    last_contact_[peer.org_id()] = absl::Now();
  }
  return outcome;
}

FanOut::FanOut(const v1::NodeConfig* config, audit::AuditLog* audit, const CallHomeHub* hub)
    : config_(config),
      audit_(audit),
      hub_(hub),
      peers_(std::make_shared<const std::vector<v1::PeerConfig>>(config->peers().begin(),
                                                                 config->peers().end())) {}

void FanOut::SetPeers(std::vector<v1::PeerConfig> peers) {
  auto next = std::make_shared<const std::vector<v1::PeerConfig>>(std::move(peers));
  absl::MutexLock lock(&mu_);
  peers_ = std::move(next);
}

std::shared_ptr<const std::vector<v1::PeerConfig>> FanOut::peers() const {
  absl::MutexLock lock(&mu_);
  return peers_;
}

absl::StatusOr<std::vector<v1::PeerConfig>> FanOut::Select(
    const std::vector<v1::PeerConfig>& peers, const v1::FederatedAggregateRequest& request) {
  std::vector<v1::PeerConfig> selected;
  std::set<std::string> seen;
  auto add = [&](const v1::PeerConfig& p) {
    if (seen.insert(p.org_id()).second) selected.push_back(p);
  };
  for (const std::string& name : request.peers()) {
    bool found = false;
    for (const v1::PeerConfig& p : peers) {
      if (p.org_id() == name) {
        add(p);
        found = true;
      }
    }
    if (!found) {
      std::vector<std::string> known;
      for (const v1::PeerConfig& p : peers) known.push_back(p.org_id());
      return absl::InvalidArgumentError(
          absl::StrCat("no peer '", name, "' is configured; known: ", absl::StrJoin(known, ", ")));
    }
  }
  if (!request.group().empty()) {
    bool found = false;
    for (const v1::PeerConfig& p : peers) {
      for (const std::string& g : p.groups()) {
        if (g == request.group()) {
          add(p);
          found = true;
        }
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("no peer is in group '", request.group(), "'"));
    }
  }
  if (request.all_peers()) {
    for (const v1::PeerConfig& p : peers) add(p);
  }
  if (selected.empty()) {
    return absl::InvalidArgumentError(
        "no partner selected: name peers, a group, or ask all peers (--peers, --group, "
        "--all-peers)");
  }
  return selected;
}

absl::StatusOr<v1::FederatedAggregateResponse> FanOut::Ask(
    const std::string& caller_spiffe_id, const v1::FederatedAggregateRequest& request) {
  absl::StatusOr<std::vector<v1::PeerConfig>> peers = Select(*this->peers(), request);
  if (!peers.ok()) return peers.status();
  if (request.query().aggregates_size() == 0 || request.query().dataset().empty()) {
    return absl::InvalidArgumentError("the question needs a dataset and at least one aggregate");
  }
  absl::Duration deadline = absl::Milliseconds(
      request.deadline_ms() > 0 ? request.deadline_ms() : config_->peer_deadline_ms());

  // Each partner is told who asks, unverified (AggregateRequest.on_behalf_of).
  v1::AggregateRequest partner_request;
  *partner_request.mutable_query() = request.query();
  partner_request.set_on_behalf_of(caller_spiffe_id);
  partner_request.set_dry_run(request.dry_run());
  std::vector<std::future<PartnerOutcome>> calls;
  for (const v1::PeerConfig& peer : *peers) {
    calls.push_back(std::async(std::launch::async, [this, peer, &partner_request, deadline] {
      absl::Time start = absl::Now();
      PartnerOutcome outcome = AskOne(peer, partner_request, deadline);
      if (peer_call_observer_) {
        peer_call_observer_(peer.org_id(), outcome.coverage.state(), absl::Now() - start);
      }
      return outcome;
    }));
  }
  v1::FederatedAggregateResponse response;
  std::vector<v1::AggregateResult> answers;
  for (auto& call : calls) {
    PartnerOutcome outcome = call.get();
    v1::PartnerCoverage* coverage = response.add_coverage();
    *coverage = outcome.coverage;
    if (outcome.result.has_value()) {
      coverage->set_applied_where_text(outcome.result->applied_where_text());
      *response.add_partners() = *outcome.result;
      answers.push_back(std::move(*outcome.result));
    }
  }
  *response.mutable_combined() =
      CombineResults(request.query(), answers, static_cast<int>(peers->size()));
  response.mutable_combined()->set_org_id(config_->org_id());
  response.mutable_combined()->set_query_id(request.query().query_id());

  v1::AuditEntry entry;
  entry.set_caller(caller_spiffe_id);
  entry.set_method("FederationService.FederatedAggregate");
  entry.set_dataset(request.query().dataset());
  entry.set_purpose(request.query().purpose());
  entry.set_decision(answers.empty()     ? v1::AuditEntry::REFUSED
                     : request.dry_run() ? v1::AuditEntry::DRY_RUN
                                         : v1::AuditEntry::ANSWERED);
  if (answers.empty()) entry.set_rule("no-partner-answered");
  // The same canonical question every partner hashes, so entries match across orgs.
  const policy::CanonicalQuestion asked = policy::CanonicalizeQuestion(request.query());
  entry.set_question_hash(policy::QuestionHash(asked));
  *entry.mutable_question() = policy::QuestionShape(asked);
  entry.set_result_hash(audit::MessageHash(response.combined()));
  std::vector<std::string> states;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    states.push_back(absl::StrCat(c.org_id(), "=", v1::PartnerCoverage::State_Name(c.state())));
  }
  entry.set_reason(absl::StrCat("coverage: ", absl::StrJoin(states, " ")));
  absl::StatusOr<audit::AuditLog::Appended> appended = audit_->Append(std::move(entry));
  if (!appended.ok()) return appended.status();
  v1::Receipt* receipt = response.mutable_combined()->mutable_receipt();
  receipt->set_org_id(config_->org_id());
  receipt->set_audit_index(appended->index);
  receipt->set_entry_hash(appended->entry_hash);
  return response;
}

v1::ListPeersResponse FanOut::ListPeers(bool probe) {
  v1::ListPeersResponse response;
  std::vector<std::future<v1::PeerStatus>> calls;
  std::shared_ptr<const std::vector<v1::PeerConfig>> configured = peers();
  for (const v1::PeerConfig& peer : *configured) {
    calls.push_back(std::async(std::launch::async, [this, peer, probe]() {
      v1::PeerStatus status;
      status.set_org_id(peer.org_id());
      status.set_address(peer.address());
      *status.mutable_groups() = peer.groups();
      FillContact(peer, &status);
      if (peer.call_home()) {
        // Describe is not carried over the stream: a probe says whether it is up.
        if (probe) {
          status.set_state(status.connected() ? v1::PartnerCoverage::ANSWERED
                                              : v1::PartnerCoverage::UNREACHABLE);
          if (!status.connected()) status.set_reason("call-home partner is not connected");
        }
        return status;
      }
      if (!probe) return status;
      std::string error;
      std::unique_ptr<v1::PeerService::Stub> stub = Dial(*config_, peer, &error);
      if (stub == nullptr) {
        status.set_state(v1::PartnerCoverage::FAILED);
        status.set_reason(error);
        return status;
      }
      grpc::ClientContext context;
      context.set_deadline(
          absl::ToChronoTime(absl::Now() + absl::Milliseconds(config_->peer_deadline_ms())));
      v1::DescribeResponse described;
      grpc::Status s = stub->Describe(&context, v1::DescribeRequest(), &described);
      status.set_state(StateFor(s.error_code()));
      status.set_reason(s.error_message());
      status.set_datasets_offered(described.datasets_size());
      if (s.ok()) {
        absl::MutexLock lock(&mu_);
        last_contact_[peer.org_id()] = absl::Now();
        SetTimestamp(absl::Now(), status.mutable_last_contact());
      }
      return status;
    }));
  }
  for (auto& call : calls) *response.add_peers() = call.get();
  return response;
}

void FanOut::FillContact(const v1::PeerConfig& peer, v1::PeerStatus* status) {
  status->set_mode(peer.call_home() ? v1::PeerStatus::MODE_CALL_HOME : v1::PeerStatus::MODE_DIRECT);
  absl::Time last = absl::InfinitePast();
  {
    absl::MutexLock lock(&mu_);
    auto it = last_contact_.find(peer.org_id());
    if (it != last_contact_.end()) last = it->second;
  }
  if (peer.call_home() && hub_ != nullptr) {
    std::shared_ptr<CallHomeSession> session = hub_->Find(peer.org_id());
    status->set_connected(session != nullptr);
    if (session != nullptr) last = std::max(last, session->connected_at());
  }
  if (last != absl::InfinitePast()) SetTimestamp(last, status->mutable_last_contact());
}

absl::StatusOr<v1::DescribeResponse> FanOut::DescribePeer(const std::string& org_id) {
  // The peers in force now (a SIGHUP may replace them while this call runs).
  std::shared_ptr<const std::vector<v1::PeerConfig>> configured = peers();
  const v1::PeerConfig* peer = nullptr;
  std::vector<std::string> known;
  for (const v1::PeerConfig& p : *configured) {
    known.push_back(p.org_id());
    if (p.org_id() == org_id) peer = &p;
  }
  if (peer == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no peer '", org_id, "' is configured on this node; ",
        known.empty() ? "it has no peers" : "configured peers: " + absl::StrJoin(known, ", ")));
  }
  if (peer->call_home()) {
    return absl::FailedPreconditionError(
        absl::StrCat("peer ", org_id,
                     " calls home to this node; its stream carries questions, not Describe "
                     "(ask its operator for its agreements)"));
  }
  std::string error;
  std::unique_ptr<v1::PeerService::Stub> stub = Dial(*config_, *peer, &error);
  if (stub == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot dial peer ", org_id, " at ", peer->address(), ": ", error));
  }
  const int deadline_ms = config_->peer_deadline_ms();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(deadline_ms)));
  v1::DescribeResponse described;
  grpc::Status s = stub->Describe(&context, v1::DescribeRequest(), &described);
  switch (s.error_code()) {
    case grpc::StatusCode::OK:
      return described;
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat("peer ", org_id, " at ", peer->address(),
                                                 " is unreachable: ", s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(absl::StrCat("peer ", org_id, " at ", peer->address(),
                                                      " did not answer within ", deadline_ms,
                                                      " ms (peer_deadline_ms)"));
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      // The peer refused this node, not the analyst: not UNAUTHENTICATED here.
      return absl::PermissionDeniedError(
          absl::StrCat("peer ", org_id, " refused this node: ", s.error_message()));
    default:
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          absl::StrCat("peer ", org_id, ": ", s.error_message()));
  }
}

}  // namespace fedshare::federation
