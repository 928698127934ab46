// The append-only audit log (DESIGN §9) as an RFC 6962 Merkle tree in the
// `audit` column family, with Ed25519-signed checkpoints. Every answer and
// every refusal is appended — with a checkpoint over the new tree, in one
// synced write — before the answer leaves the node; when the append fails
// the question fails.
//
// A leaf is EncodeLeaf(entry) (leaf.h; docs/storage-format.md). Each append
// returns a receipt: the leaf, its inclusion proof and the signed checkpoint,
// plus a consistency proof from the tree size the asker last held, so the
// asker can check, trusting nothing the node says, that its entry is in the
// log and that the log was only ever appended to.
//
//   ASSIGN_OR_RETURN(auto log, AuditLog::Open(storage, clock, "partner-a"));
//   ASSIGN_OR_RETURN(AuditLog::Appended a, log->Append(entry));  // synced
//   *result.mutable_receipt() = a.receipt;
//
// Open verifies the whole stored log: every leaf decodes, every stored
// checkpoint's signature verifies under the node's key and its root is the
// tree's root at its size, and the newest checkpoint covers every leaf. If
// anything fails, the log opens but every Append fails with UNAVAILABLE (the
// node answers nothing) and health() says what failed, while operators can
// still read and verify it.
//
// Entries never hold subject ids: callers put only identities of callers,
// hashes, dataset and purpose names, decisions and rule ids in them.
// Appends from concurrent questions are group-committed: while one synced
// write is in flight the next appends queue, and the first of them writes
// them all in one synced batch, each with its own leaf and its own checkpoint
// (the stored layout is the same as for appends one at a time); each Append
// returns once its own entry is durable.
//
// Thread-safe. `storage` and `clock` must outlive the log.
#ifndef FEDSHARE_NODE_AUDIT_AUDIT_LOG_H_
#define FEDSHARE_NODE_AUDIT_AUDIT_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/audit.pb.h"
#include "fedshare/v1/query.pb.h"
#include "google/protobuf/message_lite.h"
#include "node/audit/checkpoint.h"
#include "node/audit/leaf.h"
#include "node/audit/merkle.h"
#include "node/common/clock.h"
#include "node/storage/storage.h"

namespace fedshare::audit {

// The leaf hash of `entry`: LeafHash(EncodeLeaf(entry)).
std::string EntryHash(const v1::AuditEntry& entry);

// SHA-256 of the deterministic serialization of an answer (or a question),
// as recorded in an entry's result_hash.
std::string MessageHash(const google::protobuf::MessageLite& message);

class AuditLog {
 public:
  // `org_id` names the node in its checkpoints. Makes and stores the signing
  // key (meta 0x06) at first start. Converts a hash-chained log written by
  // an earlier version into leaves, in one write.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(storage::Storage* storage, Clock* clock,
                                                        std::string org_id = "");

  struct Appended {
    uint64_t index;
    std::string entry_hash;  // the leaf hash
    v1::Receipt receipt;     // org_id set to the log's org id
  };

  // Sets index and time on `entry`, writes its leaf and a checkpoint of the
  // new tree with one synced write (shared with the appends queued beside
  // it), and returns its receipt, with a consistency proof from `known_size`
  // when 0 < known_size < the new size. On error nothing of its group is
  // appended and the caller must not release anything (fail closed): the
  // status is UNAVAILABLE "audit log unavailable: ...".
  absl::StatusOr<Appended> Append(v1::AuditEntry entry, uint64_t known_size = 0);

  // Called after every Append, outside the log's lock, with the entry (as
  // stored, or as it would have been) and the append's status; for metrics.
  // REQUIRES: set before the first Append, from one thread.
  using Observer = std::function<void(const v1::AuditEntry& entry, const absl::Status& status)>;
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

  // Writes that must be durable with the entries of each group: `add` is
  // called by the group's writer, under the log's lock, as it builds the
  // group's batch, and `written` then says whether that batch was written.
  // Neither may call into the log. REQUIRES: set before the first Append,
  // from one thread.
  struct GroupHook {
    std::function<void(storage::WriteBatch& batch)> add;
    std::function<void(bool ok)> written;
  };
  void SetGroupHook(GroupHook hook) { group_hook_ = std::move(hook); }

  // Up to `limit` entries from `from_index` on.
  absl::StatusOr<std::vector<v1::AuditEntry>> List(uint64_t from_index, int limit) const;

  // Which entries Find returns; the default matches every entry.
  struct Filter {
    // A SPIFFE ID ("spiffe://..."): entries whose caller or on_behalf_of is
    // it. Otherwise an org id: entries whose caller is of that org. Empty:
    // any.
    std::string caller;
    v1::AuditEntry::Decision decision = v1::AuditEntry::DECISION_UNSPECIFIED;  // any
    std::optional<absl::Time> since;                                           // time >= since
    std::optional<absl::Time> until;                                           // time < until

    bool Matches(const v1::AuditEntry& entry) const;
  };
  struct Page {
    std::vector<v1::AuditEntry> entries;
    std::vector<std::string> leaves;  // each entry's leaf as stored
    uint64_t next_index = 0;          // the index after the last entry examined
  };
  // Entries from `from_index` on that match `filter`, in index order. Stops
  // after `limit` matches or `max_examined` entries examined, whichever
  // comes first, so one call's work is bounded however few entries match.
  // REQUIRES: limit > 0, max_examined > 0.
  absl::StatusOr<Page> Find(uint64_t from_index, const Filter& filter, int limit,
                            int max_examined) const;

  // Number of entries written (an append in flight is not counted).
  uint64_t size() const;

  // OK, or why the log failed its check at Open (then nothing is appended).
  absl::Status health() const;

  // The newest checkpoint (empty before the first append).
  v1::SignedCheckpoint checkpoint() const;
  const std::string& public_key() const { return signer_->public_key(); }

  // Proofs against the newest checkpoint (a consistency proof may end at an
  // earlier size, AuditProofRequest.to_tree_size). `asking_org` empty: an operator of
  // this node, who may have any leaf; else a peer, who gets an inclusion
  // proof only for a leaf whose caller is of its org (PERMISSION_DENIED).
  // INVALID_ARGUMENT for a leaf or size the log does not hold.
  absl::StatusOr<v1::AuditProofResponse> Proof(const v1::AuditProofRequest& request,
                                               absl::string_view asking_org) const;

  // Re-reads the stored log and verifies it as Open does: OK, or DATA_LOSS
  // naming the first leaf or checkpoint that does not verify.
  absl::Status Verify() const;

 private:
  AuditLog(storage::Storage* storage, Clock* clock, std::string org_id)
      : storage_(storage), clock_(clock), org_id_(std::move(org_id)) {}
  // One Append waiting for its group's write.
  struct Writer {
    v1::AuditEntry* entry;
    uint64_t known_size;
    bool done = false;
    absl::StatusOr<Appended> result;
  };
  // Writes the group at the front of writers_ (the caller's own first),
  // releasing mu_ during the synced write; pops it and marks each done.
  void WriteGroup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The receipt of the leaf `hash` at `index`, the tree then `index` + 1
  // leaves, signed by `checkpoint`.
  Appended Receipt(uint64_t index, std::string hash, std::string leaf,
                   v1::SignedCheckpoint checkpoint, uint64_t known_size) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Loaded {
    MerkleTree tree;
    v1::SignedCheckpoint checkpoint;
    absl::Status status;  // the first problem found
  };
  // Reads every leaf and checkpoint and checks them.
  absl::StatusOr<Loaded> Load() const;

  storage::Storage* const storage_;
  Clock* const clock_;
  const std::string org_id_;
  std::unique_ptr<CheckpointSigner> signer_;
  mutable absl::Mutex mu_;
  // Holds the leaves of a group being written too; `written_` counts only
  // those on disk.
  MerkleTree tree_ ABSL_GUARDED_BY(mu_);
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);
  v1::SignedCheckpoint checkpoint_ ABSL_GUARDED_BY(mu_);
  // Set at Open when the stored log does not verify.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  Observer observer_;
  GroupHook group_hook_;
};

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_AUDIT_LOG_H_
