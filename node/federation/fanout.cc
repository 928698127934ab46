#include "node/federation/fanout.h"

#include <sys/stat.h>

#include <algorithm>
#include <future>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "fedshare/v1/peer.grpc.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/grpcpp.h"
#include "node/common/files.h"
#include "node/federation/combine.h"
#include "node/federation/fanout_internal.h"
#include "node/identity/channel.h"
#include "policy/question.h"
#include "spdlog/spdlog.h"

namespace fedshare::federation {
namespace {

using State = v1::PartnerCoverage::State;

// Identifies a file's version (mtime, size, inode); "" if missing.
std::string FileStamp(const std::string& path) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ":", st.st_size, ":", st.st_ino);
}

std::string TlsStamp(const v1::NodeConfig& config) {
  return absl::StrCat(FileStamp(config.tls().cert_file()), "|", FileStamp(config.tls().key_file()),
                      "|", FileStamp(config.tls().ca_file()));
}

// The coverage (and result) of one partner's call to answer `query` that
// ended with `status`. An answer that does not fit the question (AnswerFits)
// is FAILED, its figures left out; its receipt is kept for the check.
PartnerOutcome OutcomeOf(const v1::PeerConfig& peer, const v1::AggregateQuery& query,
                         const grpc::Status& status, v1::AggregateResponse* response) {
  PartnerOutcome outcome;
  outcome.coverage.set_org_id(peer.org_id());
  outcome.coverage.set_state(StateFor(status.error_code()));
  if (absl::Status fits = status.ok() ? AnswerFits(query, response->result()) : absl::OkStatus();
      !fits.ok()) {
    spdlog::warn("event=peer_answer_misfit peer={} error=\"{}\"", peer.org_id(),
                 std::string(fits.message()));
    outcome.coverage.set_state(v1::PartnerCoverage::FAILED);
    outcome.coverage.set_reason(absl::StrCat(
        "its answer does not fit the question, so its figures are left out: ", fits.message()));
    if (response->result().has_receipt()) {
      *outcome.coverage.mutable_receipt() =
          std::move(*response->mutable_result()->mutable_receipt());
    }
    return outcome;
  }
  if (!status.ok()) {
    outcome.coverage.set_reason(status.error_message());
    // Pass the partner's ErrorInfo on, so the analyst's tools see the rule
    // and agreement without parsing the reason.
    google::rpc::Status details;
    if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
      for (const google::protobuf::Any& any : details.details()) {
        if (any.UnpackTo(outcome.coverage.mutable_refusal())) break;
      }
      // A refusal after the partner's audit carries its receipt.
      for (const google::protobuf::Any& any : details.details()) {
        if (any.UnpackTo(outcome.coverage.mutable_receipt())) break;
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

PartnerOutcome Unasked(const v1::PeerConfig& peer, State state, std::string reason) {
  PartnerOutcome outcome;
  outcome.coverage.set_org_id(peer.org_id());
  outcome.coverage.set_state(state);
  outcome.coverage.set_reason(std::move(reason));
  return outcome;
}

// The receipt to check of a partner's outcome: from its answer, or its
// refusal's status details (after the partner's audit). None (null) when it
// was refused before its audit or not reached; an answer must carry one.
const v1::Receipt* ReceiptOf(const PartnerOutcome& outcome) {
  if (outcome.result.has_value() && outcome.result->has_receipt()) return &outcome.result->receipt();
  if (outcome.coverage.has_receipt()) return &outcome.coverage.receipt();
  return nullptr;
}

// On failure of the partner's receipt check (`checked`), the outcome becomes
// AUDIT_FAILED, without the partner's figures.
void ApplyReceiptCheck(const v1::PeerConfig& peer, const absl::Status& checked,
                       PartnerOutcome& outcome) {
  if (checked.ok()) return;
  spdlog::error("event=peer_audit_failed peer={} error=\"{}\"", peer.org_id(),
                std::string(checked.message()));
  outcome.result.reset();
  outcome.coverage.set_state(v1::PartnerCoverage::AUDIT_FAILED);
  outcome.coverage.set_audit_error(std::string(checked.message()));
  outcome.coverage.set_reason(absl::StrCat("its audit log does not verify: ", checked.message()));
  outcome.coverage.set_released_cells(0);
  outcome.coverage.set_withheld_cells(0);
}

}  // namespace

v1::PartnerCoverage::State StateFor(grpc::StatusCode code) {
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

// The state of one fan-out, shared with its calls' callbacks.
struct FanOut::Run {
  Run(size_t partners, v1::AggregateQuery asked, absl::Duration given, int64_t budget)
      : query(std::move(asked)), timeout(given), answer_budget_bytes(budget), outcomes(partners) {}
  // The question, which each answer must fit (AnswerFits).
  const v1::AggregateQuery query;
  // How long the partners were given, for the reason of one that ran past it.
  const absl::Duration timeout;
  // The most the answers kept may hold (0: no bound), and what they hold.
  const int64_t answer_budget_bytes;
  // A direct call in flight: what gRPC borrows until its callback.
  struct DirectCall {
    grpc::ClientContext context;
    v1::AggregateRequest request;  // this partner's (audit_known_size is its own)
    v1::AggregateResponse response;
    std::shared_ptr<PeerChannel> channel;
  };
  absl::Mutex mu;
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  size_t finished ABSL_GUARDED_BY(mu) = 0;
  int64_t answer_bytes ABSL_GUARDED_BY(mu) = 0;
  int answers_kept ABSL_GUARDED_BY(mu) = 0;
  std::vector<PartnerOutcome> outcomes ABSL_GUARDED_BY(mu);
  // With a progress callback: the partners in the order their calls ended,
  // and how many of them the asking thread has reported.
  bool report_progress = false;
  std::vector<size_t> finished_order ABSL_GUARDED_BY(mu);
  size_t reported ABSL_GUARDED_BY(mu) = 0;
  // Touched only by the fan-out's own thread.
  std::vector<std::shared_ptr<DirectCall>> direct_calls;
  std::vector<std::pair<std::shared_ptr<CallHomeSession>, uint64_t>> call_home_questions;

  bool AllFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return finished == outcomes.size(); }
  bool SlotFree() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return in_flight < kMaxCallsInFlight; }
  // Makes `outcome`, whose answer of `bytes` would take this question past
  // its answer budget, FAILED without its figures, keeping its receipt.
  void LeaveOut(int64_t bytes, PartnerOutcome& outcome) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    constexpr double kMiB = 1 << 20;
    const std::string reason = absl::StrFormat(
        "its answer of %.1f MiB would take the answers this question holds (%.1f MiB from %d "
        "partners) past limits.federated_answer_budget_bytes = %d, so its figures are left out; "
        "raise the limit or ask fewer partners at once",
        bytes / kMiB, answer_bytes / kMiB, answers_kept, answer_budget_bytes);
    spdlog::warn("event=peer_answer_over_budget peer={} bytes={} held={} budget={}",
                 outcome.coverage.org_id(), bytes, answer_bytes, answer_budget_bytes);
    if (outcome.result->has_receipt()) {
      *outcome.coverage.mutable_receipt() = std::move(*outcome.result->mutable_receipt());
    }
    outcome.result.reset();
    outcome.coverage.set_state(v1::PartnerCoverage::FAILED);
    outcome.coverage.set_reason(reason);
    outcome.coverage.set_released_cells(0);
    outcome.coverage.set_withheld_cells(0);
  }
  // The coverage of partners finished and not yet reported, marked reported.
  std::vector<v1::PartnerCoverage> TakeNews() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<v1::PartnerCoverage> news;
    for (; reported < finished_order.size(); ++reported) {
      news.push_back(outcomes[finished_order[reported]].coverage);
    }
    return news;
  }
};

std::shared_ptr<FanOut::PeerChannel> FanOut::ChannelFor(const v1::PeerConfig& peer,
                                                        std::string* error) {
  return ChannelFor(peer, TlsStamp(*config_), error);
}

std::shared_ptr<FanOut::PeerChannel> FanOut::ChannelFor(const v1::PeerConfig& peer,
                                                        const std::string& stamp,
                                                        std::string* error) {
  absl::MutexLock lock(&channels_mu_);
  std::shared_ptr<PeerChannel>& cached = channels_[peer.org_id()];
  // A channel that failed to connect would fail calls at once until gRPC's
  // own backoff ends (up to 2 minutes); a fresh one tries now, so a partner
  // that came back answers the next question.
  if (cached != nullptr && cached->address == peer.address() && cached->tls_stamp == stamp &&
      cached->channel->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) {
    return cached;
  }
  // The files are read once per version, not per channel, and channels get
  // them as fixed PEM: a file-watching channel would hold a thread of its own
  // for each partner.
  if (stamp != pem_stamp_) {
    absl::StatusOr<std::string> cert = ReadFile(config_->tls().cert_file());
    absl::StatusOr<std::string> key = ReadFile(config_->tls().key_file());
    absl::StatusOr<std::string> ca = ReadFile(config_->tls().ca_file());
    for (const absl::StatusOr<std::string>* read : {&cert, &key, &ca}) {
      if (!read->ok()) {
        *error = std::string(read->status().message());
        return nullptr;
      }
    }
    pem_.cert_pem = *std::move(cert);
    pem_.key_pem = *std::move(key);
    pem_.ca_pem = *std::move(ca);
    pem_stamp_ = stamp;
  }
  identity::ServerExpectation expect;
  expect.trust_domain = config_->trust_domain();
  expect.org_id = peer.org_id();
  grpc::ChannelArguments args;
  // Not shared with other channels to the same address, so a replaced
  // channel's backoff does not carry over.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      identity::MakeChannelFromPem(peer.address(), pem_, expect, args);
  if (!channel.ok()) {
    *error = std::string(channel.status().message());
    cached = nullptr;
    return nullptr;
  }
  auto fresh = std::make_shared<PeerChannel>();
  fresh->address = peer.address();
  fresh->tls_stamp = stamp;
  fresh->channel = *std::move(channel);
  fresh->stub = v1::PeerService::NewStub(fresh->channel);
  cached = fresh;
  return fresh;
}

void FanOut::Complete(Run* run, size_t index, PartnerOutcome outcome, absl::Time started) {
  if (checkpoints_ != nullptr) {
    if (const v1::Receipt* receipt = ReceiptOf(outcome); receipt != nullptr) {
      outcome.prechecked = checkpoints_->Precheck(outcome.coverage.org_id(), *receipt);
    }
  }
  const State state = outcome.coverage.state();
  if (peer_call_observer_) {
    peer_call_observer_(outcome.coverage.org_id(), state, absl::Now() - started);
  }
  if (state == v1::PartnerCoverage::ANSWERED || state == v1::PartnerCoverage::REFUSED) {
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&mu_);
    last_contact_[outcome.coverage.org_id()] = now;
    round_trip_[outcome.coverage.org_id()] = now - started;
  }
  const int64_t bytes =
      outcome.result.has_value() ? static_cast<int64_t>(outcome.result->ByteSizeLong()) : 0;
  absl::MutexLock lock(&run->mu);
  if (outcome.result.has_value()) {
    if (run->answer_budget_bytes > 0 && run->answer_bytes + bytes > run->answer_budget_bytes) {
      run->LeaveOut(bytes, outcome);
    } else {
      run->answer_bytes += bytes;
      ++run->answers_kept;
    }
  }
  run->outcomes[index] = std::move(outcome);
  --run->in_flight;
  ++run->finished;
  if (run->report_progress) run->finished_order.push_back(index);
}

void FanOut::StartOne(const std::shared_ptr<Run>& run, size_t index, const v1::PeerConfig& peer,
                      const v1::AggregateRequest& request, absl::Time deadline,
                      const std::string& tls_stamp) {
  const absl::Time started = absl::Now();
  // Each partner's receipt proves consistency from the checkpoint of its log
  // this node holds.
  v1::AggregateRequest own = request;
  if (checkpoints_ != nullptr) own.set_audit_known_size(checkpoints_->KnownSize(peer.org_id()));
  if (peer.call_home()) {
    std::shared_ptr<CallHomeSession> session =
        hub_ != nullptr ? hub_->Find(peer.org_id()) : nullptr;
    if (session == nullptr) {
      Complete(run.get(), index,
               Unasked(peer, v1::PartnerCoverage::UNREACHABLE,
                       absl::StrCat("call-home partner ", peer.org_id(),
                                    " is not connected to this node")),
               started);
      return;
    }
    // `peer` by address: AskAll's peers outlive every callback (it waits
    // for each), and a copy per partner was a hundredth of a large
    // fan-out's CPU.
    const uint64_t id = session->Start(
        own, deadline - started,
        [this, run, index, peer = &peer, started](const grpc::Status& status,
                                                  v1::AggregateResponse response) {
          Complete(run.get(), index, OutcomeOf(*peer, run->query, status, &response), started);
        });
    run->call_home_questions.emplace_back(std::move(session), id);
    return;
  }
  std::string error;
  std::shared_ptr<PeerChannel> channel = ChannelFor(peer, tls_stamp, &error);
  if (channel == nullptr) {
    Complete(run.get(), index, Unasked(peer, v1::PartnerCoverage::FAILED, error), started);
    return;
  }
  auto call = std::make_shared<Run::DirectCall>();
  call->request = std::move(own);
  call->channel = channel;
  call->context.set_deadline(absl::ToChronoTime(deadline));
  run->direct_calls.push_back(call);
  // The callback holds no reference to `run`: the last one must not be
  // dropped on gRPC's thread, which would destroy the ClientContext inside
  // its own callback. AskAll waits for every callback before it lets go.
  channel->stub->async()->Aggregate(
      &call->context, &call->request, &call->response,
      [this, run = run.get(), index, peer = &peer, started,
       call = call.get()](grpc::Status status) {
        if (status.ok()) NoteCertificate(peer->org_id(), call->context);
        if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
            status.error_message() == "Deadline Exceeded") {
          // gRPC's words for this node's deadline passing: say whose and
          // which, as for a call-home partner. A partner's own
          // DEADLINE_EXCEEDED keeps its message.
          status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                absl::StrCat("partner ", peer->org_id(), " did not answer within ",
                                             absl::FormatDuration(run->timeout)));
        }
        Complete(run, index, OutcomeOf(*peer, run->query, status, &call->response), started);
      });
}

std::vector<PartnerOutcome> FanOut::AskAll(const std::vector<v1::PeerConfig>& peers,
                                           const v1::AggregateRequest& request,
                                           absl::Duration timeout,
                                           const std::function<bool()>& cancelled,
                                           const Progress& progress) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string tls_stamp = TlsStamp(*config_);
  auto run = std::make_shared<Run>(peers.size(), request.query(), timeout, answer_budget_bytes_);
  run->report_progress = progress != nullptr;
  const int asked = static_cast<int>(peers.size());
  int told = 0;
  // Called without run->mu: the callback may block (a stream's flow control).
  auto report = [&](std::vector<v1::PartnerCoverage> news) {
    told += static_cast<int>(news.size());
    progress(std::move(news), told, asked);
  };
  size_t next = 0;
  for (; next < peers.size(); ++next) {
    {
      absl::MutexLock lock(&run->mu);
      run->mu.AwaitWithDeadline(absl::Condition(run.get(), &Run::SlotFree), deadline);
      if (!run->SlotFree() || absl::Now() >= deadline) break;
      ++run->in_flight;
    }
    StartOne(run, next, peers[next], request, deadline, tls_stamp);
  }
  // Partners never asked because the deadline came first.
  for (size_t i = next; i < peers.size(); ++i) {
    {
      absl::MutexLock lock(&run->mu);
      ++run->in_flight;
    }
    Complete(run.get(), i,
             Unasked(peers[i], v1::PartnerCoverage::TIMED_OUT,
                     absl::StrCat("not asked: the fan-out's ", absl::FormatDuration(timeout),
                                  " passed while ", kMaxCallsInFlight,
                                  " other partners' calls were in flight")),
             absl::Now());
  }
  // Wait for the answers, checking now and then whether the analyst gave up,
  // and reporting the partners that answered meanwhile together.
  bool stopped = false;
  for (;;) {
    absl::Time wake = std::min(
        deadline,
        absl::Now() + (run->report_progress ? kProgressInterval : absl::Milliseconds(100)));
    std::vector<v1::PartnerCoverage> news;
    bool done = false;
    {
      absl::MutexLock lock(&run->mu);
      run->mu.AwaitWithDeadline(absl::Condition(run.get(), &Run::AllFinished), wake);
      if (run->report_progress) news = run->TakeNews();
      done = run->AllFinished();
    }
    if (!news.empty()) report(std::move(news));
    if (done || absl::Now() >= deadline) break;
    if (cancelled && cancelled()) {
      stopped = true;
      break;
    }
  }
  // Direct calls end by their own deadline (or now, when the analyst gave
  // up); questions on call-home streams are expired here.
  if (stopped) {
    for (const std::shared_ptr<Run::DirectCall>& call : run->direct_calls)
      call->context.TryCancel();
  }
  for (auto& [session, id] : run->call_home_questions) {
    session->Expire(
        id, stopped ? std::string("the analyst cancelled the question")
                    : absl::StrCat("call-home partner ", session->org_id(),
                                   " did not answer within ", absl::FormatDuration(timeout)));
  }
  std::vector<v1::PartnerCoverage> news;
  std::vector<PartnerOutcome> outcomes;
  {
    absl::MutexLock lock(&run->mu);
    run->mu.Await(absl::Condition(run.get(), &Run::AllFinished));
    if (run->report_progress) news = run->TakeNews();
    outcomes = std::move(run->outcomes);
  }
  if (!news.empty()) report(std::move(news));
  return outcomes;
}

void FanOut::CheckReceipts(const std::vector<v1::PeerConfig>& peers, absl::Duration deadline,
                           std::vector<PartnerOutcome>& outcomes) {
  // Most receipts were checked as their answers came in (Complete); what is
  // left is done here, on the asking thread, not in gRPC's callbacks: a check
  // may ask the partner for a consistency proof. Every receipt of the fan-out
  // is kept with one synced write, not one per partner.
  std::vector<audit::PeerCheckpoints::Incoming> incoming;
  incoming.reserve(outcomes.size());
  std::vector<size_t> checked_index;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const v1::PeerConfig& peer = peers[i];
    const v1::Receipt* receipt = ReceiptOf(outcomes[i]);
    if (receipt == nullptr) {
      if (outcomes[i].result.has_value()) {
        ApplyReceiptCheck(peer,
                          absl::DataLossError(absl::StrCat("peer ", peer.org_id(),
                                                           " answered without an audit receipt")),
                          outcomes[i]);
      }
      continue;
    }
    if (receipt != &outcomes[i].coverage.receipt()) {
      *outcomes[i].coverage.mutable_receipt() = *receipt;
    }
    auto fetch = [this, &peer, deadline](uint64_t from,
                                         uint64_t to) -> absl::StatusOr<std::vector<std::string>> {
      if (peer.call_home()) {
        return absl::UnavailableError(
            absl::StrCat("call-home partner ", peer.org_id(),
                         " sent a receipt without the consistency proof its stream cannot fetch"));
      }
      std::string error;
      std::shared_ptr<PeerChannel> channel = ChannelFor(peer, &error);
      if (channel == nullptr) return absl::UnavailableError(error);
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
      v1::AuditProofRequest proof_request;
      proof_request.set_from_tree_size(from);
      proof_request.set_to_tree_size(to);
      v1::AuditProofResponse proof;
      grpc::Status s = channel->stub->AuditProof(&context, proof_request, &proof);
      if (!s.ok()) return absl::UnavailableError(s.error_message());
      return std::vector<std::string>(proof.consistency_proof().begin(),
                                      proof.consistency_proof().end());
    };
    incoming.push_back({peer.org_id(), &outcomes[i].coverage.receipt(), std::move(fetch),
                        std::move(outcomes[i].prechecked)});
    checked_index.push_back(i);
  }
  std::vector<absl::Status> checked = checkpoints_->AcceptAll(incoming);
  for (size_t k = 0; k < checked.size(); ++k) {
    const size_t i = checked_index[k];
    ApplyReceiptCheck(peers[i], checked[k], outcomes[i]);
  }
}

FanOut::FanOut(const v1::NodeConfig* config, audit::AuditLog* audit, const CallHomeHub* hub)
    : config_(config),
      audit_(audit),
      hub_(hub),
      roster_(MakeRoster({config->peers().begin(), config->peers().end()})) {}

void FanOut::SetPeers(std::vector<v1::PeerConfig> peers) {
  std::shared_ptr<const Roster> next = MakeRoster(std::move(peers));
  absl::MutexLock lock(&mu_);
  roster_ = std::move(next);
}

std::shared_ptr<const FanOut::Roster> FanOut::roster() const {
  absl::MutexLock lock(&mu_);
  return roster_;
}

std::shared_ptr<const std::vector<v1::PeerConfig>> FanOut::peers() const {
  std::shared_ptr<const Roster> current = roster();
  return {current, &current->peers};
}

std::shared_ptr<const FanOut::Roster> FanOut::MakeRoster(std::vector<v1::PeerConfig> peers) {
  auto roster = std::make_shared<Roster>();
  roster->peers = std::move(peers);
  roster->by_org.reserve(roster->peers.size());
  for (size_t i = 0; i < roster->peers.size(); ++i) {
    roster->by_org.emplace(roster->peers[i].org_id(), i);
  }
  return roster;
}

std::shared_ptr<const v1::PeerConfig> FanOut::FindPeer(absl::string_view org_id) const {
  std::shared_ptr<const Roster> roster = this->roster();
  auto it = roster->by_org.find(org_id);
  if (it == roster->by_org.end()) return nullptr;
  return {roster, &roster->peers[it->second]};
}

std::string FanOut::NamePeers(const std::vector<v1::PeerConfig>& peers) {
  constexpr size_t kNamed = 32;
  std::string names;
  for (size_t i = 0; i < peers.size() && i < kNamed; ++i) {
    absl::StrAppend(&names, i == 0 ? "" : ", ", peers[i].org_id());
  }
  if (peers.size() > kNamed) absl::StrAppend(&names, " and ", peers.size() - kNamed, " more");
  return names;
}

absl::StatusOr<std::vector<v1::PeerConfig>> FanOut::Select(
    const Roster& roster, const v1::FederatedAggregateRequest& request) {
  const std::vector<v1::PeerConfig>& peers = roster.peers;
  std::vector<v1::PeerConfig> selected;
  std::set<std::string> seen;
  auto add = [&](const v1::PeerConfig& p) {
    if (seen.insert(p.org_id()).second) selected.push_back(p);
  };
  for (const std::string& name : request.peers()) {
    auto it = roster.by_org.find(name);
    if (it == roster.by_org.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("no peer '", name, "' is configured; known: ", NamePeers(peers)));
    }
    add(peers[it->second]);
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
    const std::string& caller_spiffe_id, const v1::FederatedAggregateRequest& request,
    const std::function<bool()>& cancelled, const Progress& progress) {
  std::shared_ptr<const Roster> roster = this->roster();
  absl::StatusOr<std::vector<v1::PeerConfig>> peers = Select(*roster, request);
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
  v1::FederatedAggregateResponse response;
  std::vector<v1::AggregateResult> answers;
  std::vector<PartnerOutcome> outcomes = AskAll(*peers, partner_request, deadline, cancelled, progress);
  if (checkpoints_ != nullptr) CheckReceipts(*peers, deadline, outcomes);
  for (PartnerOutcome& outcome : outcomes) {
    v1::PartnerCoverage* coverage = response.add_coverage();
    *coverage = std::move(outcome.coverage);
    if (outcome.result.has_value()) {
      coverage->set_applied_where_text(outcome.result->applied_where_text());
      answers.push_back(std::move(*outcome.result));
    }
  }
  *response.mutable_combined() =
      CombineResults(request.query(), answers, static_cast<int>(peers->size()));
  // Moved, not copied: with thousands of partners the answers are most of
  // the foundation's memory for the question.
  for (v1::AggregateResult& answer : answers) *response.add_partners() = std::move(answer);
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
  *response.mutable_combined()->mutable_receipt() = std::move(appended->receipt);
  response.mutable_combined()->mutable_receipt()->set_org_id(config_->org_id());
  return response;
}

}  // namespace fedshare::federation
