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
// Thread-safe: Accept is serialized per node. `storage` must outlive it.
#ifndef FEDSHARE_NODE_AUDIT_PEER_CHECKPOINTS_H_
#define FEDSHARE_NODE_AUDIT_PEER_CHECKPOINTS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

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

  // One receipt to Accept, as AcceptAll takes them.
  struct Incoming {
    std::string org_id;
    v1::Receipt receipt;
    FetchConsistency fetch;
  };
  // Accept for many peers' receipts at once (one fan-out's): each is checked
  // and kept exactly as Accept would, and all are stored with one synced
  // write rather than one per peer. The statuses in the order given; a failed
  // write fails every one.
  std::vector<absl::Status> AcceptAll(const std::vector<Incoming>& incoming);

  // The newest checkpoint held from `org_id`, if any.
  absl::StatusOr<std::optional<v1::SignedCheckpoint>> Latest(const std::string& org_id) const;
  // Its tree size, 0 if none (or unreadable).
  uint64_t KnownSize(const std::string& org_id) const;
  // Why the last receipt from `org_id` failed; empty if it did not.
  std::string Error(const std::string& org_id) const;
  // Receipts held from `org_id`, by leaf index.
  absl::StatusOr<std::vector<v1::Receipt>> Receipts(const std::string& org_id) const;

 private:
  absl::Status Check(const std::string& org_id, const v1::Receipt& receipt,
                     const FetchConsistency& fetch) const;
  // Checks `receipt` and adds what Accept keeps of it to `batch`.
  absl::Status CheckInto(const std::string& org_id, const v1::Receipt& receipt,
                         const FetchConsistency& fetch, storage::WriteBatch& batch) const;

  storage::Storage* const storage_;
  absl::Mutex mu_;  // serializes Accept's read-check-write
};

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_PEER_CHECKPOINTS_H_
