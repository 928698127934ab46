// What `fedshare peers` and `fedshare describe --peer` show of the configured
// peers: mode, contact, round trip, certificate expiry, and a partner's own
// description (FanOut's roster half; the fan-out itself is fanout.cc).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "grpc/grpc_security_constants.h"
#include "node/federation/fanout.h"
#include "node/federation/fanout_internal.h"
#include "node/identity/tls_files.h"
#include "node/identity/x509_verify.h"

namespace fedshare::federation {
namespace {

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// ListPeers' warning for a peer certificate expiring at `not_after`, or "".
std::string ExpiryWarning(const std::string& org_id, absl::Time not_after, absl::Time now) {
  const std::string when = TimeText(not_after);
  if (not_after <= now) {
    return absl::StrCat("peer ", org_id, "'s node certificate expired at ", when,
                        ": its calls fail until its operator renews it");
  }
  if (not_after - now > identity::kExpiryWarning) return "";
  return absl::StrCat("peer ", org_id, "'s node certificate expires in ",
                      absl::ToInt64Hours(not_after - now) / 24, " day(s), at ", when,
                      ": ask its operator to renew it");
}

// DescribePeer's error for a Describe of `org_id` that ended with `s`; `who`
// names the peer ("peer ORG at ADDRESS", "call-home partner ORG").
absl::Status DescribeFailed(const std::string& who, const std::string& org_id,
                            const grpc::Status& s, int deadline_ms) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat(who, " is unreachable: ", s.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(
          absl::StrCat(who, " did not answer within ", deadline_ms, " ms (peer_deadline_ms)"));
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

}  // namespace

v1::ListPeersResponse FanOut::ListPeers(bool probe) {
  v1::ListPeersResponse response;
  std::shared_ptr<const std::vector<v1::PeerConfig>> configured = peers();
  for (const v1::PeerConfig& peer : *configured) *response.add_peers() = StatusOf(peer);
  if (probe) {
    std::vector<v1::PeerStatus*> lines;
    for (v1::PeerStatus& line : *response.mutable_peers()) lines.push_back(&line);
    Probe(*configured, lines);
  }
  return response;
}

v1::PeerStatus FanOut::StatusOf(const v1::PeerConfig& peer) {
  v1::PeerStatus status;
  status.set_org_id(peer.org_id());
  status.set_address(peer.address());
  *status.mutable_groups() = peer.groups();
  FillContact(peer, &status);
  if (checkpoints_ != nullptr) {
    status.set_audit_tree_size(checkpoints_->KnownSize(peer.org_id()));
    status.set_audit_error(checkpoints_->Error(peer.org_id()));
  }
  return status;
}

namespace {

// One probe of the peers: how many calls are in flight and how many peers
// have no outcome yet. A callback writes only its own peer's line, then
// calls Done last: the probing thread may let go of everything after that.
struct ProbeRun {
  explicit ProbeRun(size_t peers) : pending(peers) {}
  struct DirectCall {
    grpc::ClientContext context;
    v1::DescribeRequest request;
    v1::DescribeResponse response;
    absl::Time sent;
    std::shared_ptr<const void> channel;  // kept until the call ends (a reload may drop it)
  };
  absl::Mutex mu;
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  size_t pending ABSL_GUARDED_BY(mu);

  bool SlotFree() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight < kMaxCallsInFlight; }
  bool AllDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return pending == 0; }
  void Done() {
    absl::MutexLock lock(&mu);
    --in_flight;
    --pending;
  }
};

void SetOutcome(const absl::Status& status, v1::PeerStatus* line) {
  line->set_state(StateFor(static_cast<grpc::StatusCode>(status.code())));
  line->set_reason(std::string(status.message()));
}

}  // namespace

void FanOut::Probe(const std::vector<v1::PeerConfig>& peers,
                   const std::vector<v1::PeerStatus*>& lines) {
  const int deadline_ms = config_->peer_deadline_ms();
  const absl::Time deadline = absl::Now() + absl::Milliseconds(deadline_ms);
  ProbeRun run(peers.size());
  // Touched by this thread only; they outlive every callback.
  std::vector<std::unique_ptr<ProbeRun::DirectCall>> direct;
  std::vector<std::pair<std::shared_ptr<CallHomeSession>, uint64_t>> call_home;
  size_t next = 0;
  for (; next < peers.size(); ++next) {
    {
      absl::MutexLock lock(&run.mu);
      run.mu.AwaitWithDeadline(absl::Condition(&run, &ProbeRun::SlotFree), deadline);
      if (!run.SlotFree() || absl::Now() >= deadline) break;
      ++run.in_flight;
    }
    const v1::PeerConfig& peer = peers[next];
    v1::PeerStatus* line = lines[next];
    if (peer.call_home()) {
      std::shared_ptr<CallHomeSession> session =
          hub_ == nullptr ? nullptr : hub_->Find(peer.org_id());
      if (session == nullptr) {
        SetOutcome(NotConnected(peer.org_id()), line);
        run.Done();
        continue;
      }
      const absl::Time sent = absl::Now();
      const uint64_t id =
          session->StartDescribe([this, &run, &peer, line, sent, deadline_ms](
                                     const grpc::Status& s, v1::DescribeResponse described) {
            if (s.ok()) {
              line->set_state(v1::PartnerCoverage::ANSWERED);
              NoteProbeAnswered(peer.org_id(), described.datasets_size(), sent, absl::Now(), line);
            } else {
              SetOutcome(DescribeFailed(absl::StrCat("call-home partner ", peer.org_id()),
                                        peer.org_id(), s, deadline_ms),
                         line);
            }
            run.Done();
          });
      call_home.emplace_back(std::move(session), id);
      continue;
    }
    std::string error;
    std::shared_ptr<PeerChannel> channel = ChannelFor(peer, &error);
    if (channel == nullptr) {
      line->set_state(v1::PartnerCoverage::FAILED);
      line->set_reason(error);
      run.Done();
      continue;
    }
    ProbeRun::DirectCall* call =
        direct.emplace_back(std::make_unique<ProbeRun::DirectCall>()).get();
    call->context.set_deadline(absl::ToChronoTime(deadline));
    call->channel = channel;
    call->sent = absl::Now();
    channel->stub->async()->Describe(&call->context, &call->request, &call->response,
                                     [this, &run, &peer, line, call](grpc::Status s) {
                                       line->set_state(StateFor(s.error_code()));
                                       line->set_reason(s.error_message());
                                       if (s.ok()) {
                                         NoteProbeAnswered(peer.org_id(),
                                                           call->response.datasets_size(),
                                                           call->sent, absl::Now(), line);
                                         NoteCertificate(peer.org_id(), call->context);
                                         FillCertificate(peer, line);
                                       }
                                       run.Done();
                                     });
  }
  // Peers never asked because the deadline came first.
  for (size_t i = next; i < peers.size(); ++i) {
    {
      absl::MutexLock lock(&run.mu);
      ++run.in_flight;
    }
    lines[i]->set_state(v1::PartnerCoverage::TIMED_OUT);
    lines[i]->set_reason(absl::StrCat("not probed: peer_deadline_ms (", deadline_ms,
                                      " ms) passed while ", kMaxCallsInFlight,
                                      " other peers' probes were in flight"));
    run.Done();
  }
  {
    absl::MutexLock lock(&run.mu);
    run.mu.AwaitWithDeadline(absl::Condition(&run, &ProbeRun::AllDone), deadline);
  }
  // Direct calls end by their own deadline; describe requests on call-home
  // streams are given up here.
  for (auto& [session, id] : call_home) {
    session->ExpireDescribe(id,
                            absl::StrCat("call-home partner ", session->org_id(),
                                         " did not answer Describe within ", deadline_ms, " ms"));
  }
  absl::MutexLock lock(&run.mu);
  run.mu.Await(absl::Condition(&run, &ProbeRun::AllDone));
}

void FanOut::NoteProbeAnswered(const std::string& org_id, int datasets, absl::Time sent,
                               absl::Time now, v1::PeerStatus* status) {
  {
    absl::MutexLock lock(&mu_);
    last_contact_[org_id] = now;
  }
  status->set_datasets_offered(datasets);
  SetTimestamp(now, status->mutable_last_contact());
  SetDuration(now - sent, status->mutable_round_trip());
  status->set_round_trip_source(v1::PeerStatus::ROUND_TRIP_SOURCE_PROBE);
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
    last = std::max(last, hub_->LastSeen(peer.org_id()));
  }
  if (last != absl::InfinitePast()) SetTimestamp(last, status->mutable_last_contact());
  {
    absl::MutexLock lock(&mu_);
    auto rtt = round_trip_.find(peer.org_id());
    if (rtt != round_trip_.end()) {
      SetDuration(rtt->second, status->mutable_round_trip());
      status->set_round_trip_source(v1::PeerStatus::ROUND_TRIP_SOURCE_LAST_ANSWER);
    }
  }
  FillCertificate(peer, status);
}

void FanOut::FillCertificate(const v1::PeerConfig& peer, v1::PeerStatus* status) {
  absl::Time not_after;
  {
    absl::MutexLock lock(&mu_);
    auto it = certificates_.find(peer.org_id());
    if (it == certificates_.end()) return;
    not_after = it->second.not_after;
  }
  SetTimestamp(not_after, status->mutable_certificate_expires());
  status->set_certificate_warning(ExpiryWarning(peer.org_id(), not_after, absl::Now()));
}

void FanOut::NoteCertificate(const std::string& org_id, const grpc::ClientContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return;
  std::vector<grpc::string_ref> pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pem.empty()) return;
  NotePeerCertificate(org_id, absl::string_view(pem[0].data(), pem[0].size()));
}

void FanOut::NotePeerCertificate(const std::string& org_id, absl::string_view pem) {
  {
    absl::MutexLock lock(&mu_);
    auto it = certificates_.find(org_id);
    if (it != certificates_.end() && it->second.pem == pem) return;
  }
  absl::StatusOr<identity::CertificateInfo> info = identity::InspectCertificate(pem);
  if (!info.ok()) return;
  absl::MutexLock lock(&mu_);
  certificates_[org_id] = SeenCertificate{std::string(pem), info->not_after};
}

absl::StatusOr<v1::DescribeResponse> FanOut::DescribePeer(const std::string& org_id) {
  // The peers in force now (a SIGHUP may replace them while this call runs).
  std::shared_ptr<const v1::PeerConfig> peer = FindPeer(org_id);
  if (peer == nullptr) {
    std::shared_ptr<const std::vector<v1::PeerConfig>> configured = peers();
    return absl::NotFoundError(absl::StrCat(
        "no peer '", org_id, "' is configured on this node; ",
        configured->empty() ? "it has no peers" : "configured peers: " + NamePeers(*configured)));
  }
  if (peer->call_home()) return DescribeCallHome(org_id);
  std::string error;
  std::shared_ptr<PeerChannel> channel = ChannelFor(*peer, &error);
  if (channel == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot dial peer ", org_id, " at ", peer->address(), ": ", error));
  }
  const int deadline_ms = config_->peer_deadline_ms();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(deadline_ms)));
  v1::DescribeResponse described;
  grpc::Status s = channel->stub->Describe(&context, v1::DescribeRequest(), &described);
  if (s.ok()) return described;
  return DescribeFailed(absl::StrCat("peer ", org_id, " at ", peer->address()), org_id, s,
                        deadline_ms);
}

absl::Status FanOut::NotConnected(const std::string& org_id) const {
  const absl::Time seen = hub_ == nullptr ? absl::InfinitePast() : hub_->LastSeen(org_id);
  return absl::UnavailableError(
      absl::StrCat("call-home partner ", org_id,
                   " is not connected: it calls home to this node and has no stream open now; ",
                   seen == absl::InfinitePast() ? "not seen since this node started"
                                                : absl::StrCat("last seen ", TimeText(seen))));
}

absl::StatusOr<v1::DescribeResponse> FanOut::DescribeCallHome(const std::string& org_id) {
  std::shared_ptr<CallHomeSession> session = hub_ == nullptr ? nullptr : hub_->Find(org_id);
  if (session == nullptr) return NotConnected(org_id);
  const int deadline_ms = config_->peer_deadline_ms();
  v1::DescribeResponse described;
  grpc::Status s = session->Describe(absl::Milliseconds(deadline_ms), &described);
  if (s.ok()) return described;
  return DescribeFailed(absl::StrCat("call-home partner ", org_id), org_id, s, deadline_ms);
}

}  // namespace fedshare::federation
