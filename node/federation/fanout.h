// Fan-out (DESIGN §10): puts one question to a set of partners concurrently,
// each with its own deadline, and combines what they answer.
//
// Direct partners are called on their peer listeners over one long-lived
// channel each, with this node's own certificate (a new channel is made when
// the certificate files change on disk, so rotated certificates are used),
// and each partner must present the node certificate of the org it is
// configured as. Call-home partners are asked down their stream
// (call_home.h). A partner's refusal, timeout or unreachability is reported
// in the coverage and leaves it out of the combined table.
//
// The partners are the config's `peers` until SetPeers replaces them (a
// SIGHUP reload); each fan-out works on the set in force when it started.
//
// Thread-safe. `config` and `audit` must outlive the FanOut.
#ifndef FEDSHARE_NODE_FEDERATION_FANOUT_H_
#define FEDSHARE_NODE_FEDERATION_FANOUT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/config.pb.h"
#include "fedshare/v1/federation.pb.h"
#include "fedshare/v1/peer.pb.h"
#include "node/audit/audit_log.h"
#include "node/audit/peer_checkpoints.h"
#include "node/federation/call_home.h"
#include "node/identity/channel.h"

namespace fedshare::federation {

// One partner's part in a fan-out.
struct PartnerOutcome {
  v1::PartnerCoverage coverage;
  std::optional<v1::AggregateResult> result;
  // Its receipt checked as the answer arrived (PeerCheckpoints::Precheck).
  std::optional<audit::PeerCheckpoints::Prechecked> prechecked;
};

class FanOut {
 public:
  // Partners configured with call_home are asked through their session in
  // `hub` (null: none is ever connected); `hub` must outlive the FanOut.
  FanOut(const v1::NodeConfig* config, audit::AuditLog* audit, const CallHomeHub* hub = nullptr);

  // Each partner is told, as the request's unverified on_behalf_of, that
  // `caller_spiffe_id` asks; the audit entry holds the question's canonical
  // hash and shape (policy/question.h), as each partner's does.
  // INVALID_ARGUMENT for an unknown peer or group, or no partner selected;
  // UNAVAILABLE if the audit log cannot be written. Partners' failures are not
  // errors: they are in the coverage.
  // Calls go out concurrently, at most 256 in flight (more partners wait for
  // a free slot), each ending at the same deadline: the request's deadline_ms
  // or peer_deadline_ms from when Ask starts; a partner still waiting for a
  // slot then is TIMED_OUT without being asked. No call is retried, so no
  // partner answers (or spends its limits on) a question twice. `cancelled`
  // (optional) is polled every 100 ms: once it returns true, calls in flight
  // are cancelled and their partners reported as such.
  // `progress` (optional) is called on the asking thread with the partners
  // whose calls ended since its last call (in that order, each with its
  // coverage before its receipt is checked), how many have ended and how
  // many were asked: every kProgressInterval while some did, and once more
  // when the last call ends; not after Ask returns. (Once per partner, a
  // large fan-out's asking thread woke and the analyst's stream carried a
  // message for each partner.)
  using Progress =
      std::function<void(std::vector<v1::PartnerCoverage> partners, int finished, int asked)>;
  static constexpr absl::Duration kProgressInterval = absl::Milliseconds(50);
  absl::StatusOr<v1::FederatedAggregateResponse> Ask(
      const std::string& caller_spiffe_id, const v1::FederatedAggregateRequest& request,
      const std::function<bool()>& cancelled = nullptr, const Progress& progress = nullptr);

  // The configured peers, each with its mode, whether a call-home peer is
  // connected, when it last answered or connected, how long its last answer
  // took, and when the certificate it last presented expires (with a warning
  // within identity::kExpiryWarning); with `probe`, whether each peer
  // answers Describe (a call-home peer down its stream), timed.
  v1::ListPeersResponse ListPeers(bool probe);

  // What the configured peer `org_id` lets this org ask: its PeerService.Describe,
  // called with this node's certificate within peer_deadline_ms, or, for a
  // call-home peer, asked down its stream (CallHomeSession::Describe) within
  // the same deadline. NOT_FOUND (naming the configured peers) if `org_id` is
  // not one; UNAVAILABLE naming the peer's address if it cannot be reached,
  // or saying that a call-home peer is not connected and when it was last
  // seen; DEADLINE_EXCEEDED if it does not answer in time; the peer's
  // refusal as PERMISSION_DENIED.
  absl::StatusOr<v1::DescribeResponse> DescribePeer(const std::string& org_id);

  // Records the node certificate (PEM) `org_id` presented, for ListPeers;
  // one that does not parse is ignored. The Connect handler calls it for a
  // call-home peer's stream; direct peers' are read from their calls.
  void NotePeerCertificate(const std::string& org_id, absl::string_view pem);

  // Puts `peers` (validated as a config's `peers` are) in force for the next
  // fan-out; fan-outs in flight finish with the set they started with.
  void SetPeers(std::vector<v1::PeerConfig> peers);
  std::shared_ptr<const std::vector<v1::PeerConfig>> peers() const;
  // The configured peer `org_id` in force now, or null: a lookup, not a
  // scan, so a roster of thousands costs each call-home connect the same.
  std::shared_ptr<const v1::PeerConfig> FindPeer(absl::string_view org_id) const;
  // The org ids of `peers` for an error message: up to a few dozen, then
  // how many more (a roster of thousands must not become one message).
  static std::string NamePeers(const std::vector<v1::PeerConfig>& peers);

  // Called once per partner per fan-out, from any thread (gRPC's callback
  // threads included), with the partner's state and how long its call took;
  // for metrics. Must be thread-safe.
  // REQUIRES: set before the first Ask.
  using PeerCallObserver = std::function<void(
      const std::string& org_id, v1::PartnerCoverage::State state, absl::Duration elapsed)>;
  void SetPeerCallObserver(PeerCallObserver observer) { peer_call_observer_ = std::move(observer); }

  // Where partners' receipts and checkpoints are kept and checked (DESIGN
  // §9): each answer must carry a receipt that verifies and extends the
  // checkpoint held, else the partner is AUDIT_FAILED in the coverage and its
  // figures are left out. Unset: receipts are not checked.
  // REQUIRES: set before the first Ask; `checkpoints` outlives the FanOut.
  void SetPeerCheckpoints(audit::PeerCheckpoints* checkpoints) { checkpoints_ = checkpoints; }

  // The most one question may hold of its partners' answers, in serialized
  // bytes (limits.federated_answer_budget_bytes): a partner whose answer
  // would take it past this is FAILED, saying so, its figures left out and
  // its receipt still checked. Which partners those are depends on the order
  // the answers come in. 0: no bound.
  // REQUIRES: set before the first Ask.
  void SetAnswerBudget(int64_t bytes) { answer_budget_bytes_ = bytes; }

 private:
  struct PeerChannel;
  struct Run;
  // Puts `request` to every one of `peers`; the outcomes in the same order.
  std::vector<PartnerOutcome> AskAll(const std::vector<v1::PeerConfig>& peers,
                                     const v1::AggregateRequest& request, absl::Duration timeout,
                                     const std::function<bool()>& cancelled,
                                     const Progress& progress);
  // Starts the call to one partner: down its call-home stream, or on its
  // channel. Its outcome goes to Complete.
  // `tls_stamp`: TlsStamp of this node's TLS files, read once per fan-out.
  void StartOne(const std::shared_ptr<Run>& run, size_t index, const v1::PeerConfig& peer,
                const v1::AggregateRequest& request, absl::Time deadline,
                const std::string& tls_stamp);
  // Records a partner's outcome in `run`; its receipt, if any, is checked
  // against the checkpoint held (on the thread its answer came in on, so
  // answers are checked as they arrive, in parallel).
  void Complete(Run* run, size_t index, PartnerOutcome outcome, absl::Time started);
  // The cached channel to a direct peer, made afresh when the peer's address
  // or this node's TLS files (whose version is `tls_stamp`) changed or it
  // failed to connect; null (with `*error`) if the TLS files cannot be used.
  std::shared_ptr<PeerChannel> ChannelFor(const v1::PeerConfig& peer, std::string* error);
  std::shared_ptr<PeerChannel> ChannelFor(const v1::PeerConfig& peer, const std::string& tls_stamp,
                                          std::string* error);
  // ListPeers' line for one peer, from what this node knows of it.
  v1::PeerStatus StatusOf(const v1::PeerConfig& peer);
  // Asks each of `peers` Describe, all at once (at most kMaxCallsInFlight
  // calls in flight, none holding a thread) within one peer_deadline_ms, and
  // writes the outcome into `lines[i]`, peer i's line.
  void Probe(const std::vector<v1::PeerConfig>& peers, const std::vector<v1::PeerStatus*>& lines);
  void FillContact(const v1::PeerConfig& peer, v1::PeerStatus* status);
  // DescribePeer of a call-home peer, through its session in hub_.
  absl::StatusOr<v1::DescribeResponse> DescribeCallHome(const std::string& org_id);
  // UNAVAILABLE: call-home partner `org_id` has no stream open, and when it
  // was last seen.
  absl::Status NotConnected(const std::string& org_id) const;
  // Records that `org_id` answered ListPeers' probe, sent at `sent` and
  // answered at `now` describing `datasets` datasets, in `status` and as its
  // last contact.
  void NoteProbeAnswered(const std::string& org_id, int datasets, absl::Time sent, absl::Time now,
                         v1::PeerStatus* status);
  // Checks every partner's receipt against checkpoints_ (DESIGN §9), reusing
  // what Complete found, and stores them all: an outcome whose receipt does
  // not verify, or an answer without one, becomes AUDIT_FAILED. `peers[i]` is
  // the partner of `outcomes[i]`.
  void CheckReceipts(const std::vector<v1::PeerConfig>& peers, absl::Duration deadline,
                     std::vector<PartnerOutcome>& outcomes);
  // When the certificate `peer` last presented expires, and the warning.
  void FillCertificate(const v1::PeerConfig& peer, v1::PeerStatus* status);
  // NotePeerCertificate with the server certificate of a finished call.
  void NoteCertificate(const std::string& org_id, const grpc::ClientContext& context);
  // The peers in force and an index of them by org id (org ids are unique:
  // the config refuses a peer listed twice).
  struct Roster {
    std::vector<v1::PeerConfig> peers;
    absl::flat_hash_map<std::string, size_t> by_org;
  };
  // The roster in force; it stays whole while held, whatever SetPeers does.
  std::shared_ptr<const Roster> roster() const;
  static std::shared_ptr<const Roster> MakeRoster(std::vector<v1::PeerConfig> peers);
  static absl::StatusOr<std::vector<v1::PeerConfig>> Select(
      const Roster& roster, const v1::FederatedAggregateRequest& request);

  const v1::NodeConfig* config_;
  audit::AuditLog* audit_;
  const CallHomeHub* hub_;
  PeerCallObserver peer_call_observer_;
  audit::PeerCheckpoints* checkpoints_ = nullptr;
  int64_t answer_budget_bytes_ = 0;  // 0: no bound
  mutable absl::Mutex mu_;
  std::shared_ptr<const Roster> roster_ ABSL_GUARDED_BY(mu_);
  absl::Mutex channels_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<PeerChannel>> channels_
      ABSL_GUARDED_BY(channels_mu_);
  // This node's TLS files as last read, and their version (TlsStamp).
  identity::ClientTlsPem pem_ ABSL_GUARDED_BY(channels_mu_);
  std::string pem_stamp_ ABSL_GUARDED_BY(channels_mu_);
  // When each partner last answered (or refused), by org.
  absl::flat_hash_map<std::string, absl::Time> last_contact_ ABSL_GUARDED_BY(mu_);
  // How long each partner's last answer (or refusal) took from when it was sent.
  absl::flat_hash_map<std::string, absl::Duration> round_trip_ ABSL_GUARDED_BY(mu_);
  // The certificate each peer last presented (PEM, so an unchanged one is not
  // parsed again) and when it expires.
  struct SeenCertificate {
    std::string pem;
    absl::Time not_after;
  };
  absl::flat_hash_map<std::string, SeenCertificate> certificates_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedshare::federation

#endif  // FEDSHARE_NODE_FEDERATION_FANOUT_H_
