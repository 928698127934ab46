// What the asking node keeps of its partners' audit logs (DESIGN §9): every
// receipt each peer sends, and the newest of its checkpoints that verified,
// in this node's `audit` column family. Each new receipt must verify (leaf,
// inclusion proof, Ed25519 signature under the key first seen for the peer)
// and its checkpoint must extend the one held (an RFC 6962 consistency
// proof), so a partner that rewrites or truncates its log is caught at its
// next answer, with what was found kept for `fedshare peers`.
//
//   PeerCheckpoints held(storage);
//   uint64_t known = held.KnownSize("partner-a");  // sent with the question
//   absl::Status s = held.Accept("partner-a", receipt, fetch_proof);
//
// The newest checkpoint of each peer is also held in memory (read from the
// store once, replaced when a newer one is stored), so KnownSize and the
// checks read no storage. A fan-out checks each receipt as its answer
// arrives (Precheck, on gRPC's threads, concurrently) and stores them all
// at the end (AcceptAll), which redoes only the checks whose held checkpoint
// changed in between or that need a proof fetched from the peer.
//
// Thread-safe: Accept and AcceptAll are serialized per node; Precheck,
// KnownSize and the readers run concurrently with them. `storage` must
// outlive it.
#ifndef FEDSHARE_NODE_AUDIT_PEER_CHECKPOINTS_H_
#define FEDSHARE_NODE_AUDIT_PEER_CHECKPOINTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fedshare/v1/query.pb.h"
#include "node/storage/storage.h"

namespace fedshare::audit {

class PeerCheckpoints {
 public:
  explicit PeerCheckpoints(storage::Storage* storage) : storage_(storage) {}

  // Asks the peer for the consistency proof from `from_size` to `to_size`.
  using FetchConsistency =
      std::function<absl::StatusOr<std::vector<std::string>>(uint64_t from_size, uint64_t to_size)>;

  // Stores `receipt`, then checks it as above, asking `fetch` for the
  // consistency proof when the receipt carries none from the size held. OK:
  // its checkpoint is now the one held. Otherwise DATA_LOSS (or
  // PERMISSION_DENIED for another signing key) saying what the peer did; the
  // checkpoint held stays, and Error(org_id) says why until a later receipt
  // verifies.
  absl::Status Accept(const std::string& org_id, const v1::Receipt& receipt,
                      const FetchConsistency& fetch);

  // What Precheck found of a receipt, against the checkpoint then held.
  struct Prechecked {
    absl::Status status;
    // The held checkpoint it was checked against (null: none was held).
    std::shared_ptr<const v1::SignedCheckpoint> against;
    // False when the check needs a proof fetched from the peer (the receipt
    // carries none from the size held): AcceptAll does it.
    bool complete = false;
  };
  // The checks of Accept that need no storage and no call to the peer:
  // signature, inclusion, and consistency with the checkpoint held when the
  // receipt carries that proof. Stores nothing. Runs concurrently with
  // everything else here.
  Prechecked Precheck(const std::string& org_id, const v1::Receipt& receipt) const;

  // One receipt to Accept, as AcceptAll takes them, with what Precheck found
  // of it if it was prechecked.
  struct Incoming {
    std::string org_id;
    const v1::Receipt* receipt;  // borrowed: must outlive AcceptAll
    FetchConsistency fetch;
    std::optional<Prechecked> prechecked = std::nullopt;
  };
  // Accept for many peers' receipts at once (one fan-out's): each is checked
  // and kept exactly as Accept would, and all are stored with one synced
  // write rather than one per peer. A receipt prechecked against the
  // checkpoint still held is not checked again. The statuses in the order
  // given; a failed write fails every one.
  std::vector<absl::Status> AcceptAll(const std::vector<Incoming>& incoming);

  // The newest checkpoint held from `org_id`, if any.
  absl::StatusOr<std::optional<v1::SignedCheckpoint>> Latest(const std::string& org_id) const;
  // Its tree size, 0 if none (or unreadable). Reads no storage once the
  // peer's checkpoint has been read.
  uint64_t KnownSize(const std::string& org_id) const;
  // Why the last receipt from `org_id` failed; empty if it did not.
  std::string Error(const std::string& org_id) const;
  // Receipts held from `org_id`, by leaf index.
  absl::StatusOr<std::vector<v1::Receipt>> Receipts(const std::string& org_id) const;

 private:
  using Held = std::shared_ptr<const v1::SignedCheckpoint>;
  // The newest checkpoint held from `org_id` (null: none), from memory, or
  // read from the store the first time.
  absl::StatusOr<Held> HeldFor(const std::string& org_id) const ABSL_LOCKS_EXCLUDED(held_mu_);
  // Checks `receipt` against `held`. With `fetch` null, a check that needs a
  // proof fetched from the peer is left undone: *deferred is set.
  static absl::Status CheckAgainst(const std::string& org_id, const v1::Receipt& receipt,
                                   const v1::SignedCheckpoint* held,
                                   const FetchConsistency* fetch, bool* deferred);
  // Checks `in` (reusing its precheck when it still applies) and adds what
  // Accept keeps of it to `batch`; `*accepted` is the checkpoint to hold
  // once the batch is written (null: none).
  absl::Status CheckInto(const Incoming& in, storage::WriteBatch& batch, Held* accepted) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Holds `checkpoint` as `org_id`'s newest (after it was stored).
  void Hold(const std::string& org_id, Held checkpoint) ABSL_LOCKS_EXCLUDED(held_mu_);

  storage::Storage* const storage_;
  absl::Mutex mu_;  // serializes Accept's read-check-write
  mutable absl::Mutex held_mu_;
  // The newest stored checkpoint of each peer read or stored so far; null: none.
  mutable absl::flat_hash_map<std::string, Held> held_ ABSL_GUARDED_BY(held_mu_);
};

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_PEER_CHECKPOINTS_H_
