// The append-only, hash-chained audit log (DESIGN §9), in the `audit` column
// family. Every answer and every refusal is appended — and synced — before
// the answer leaves the node; when the append fails the question fails.
//
// Entry i carries previous_hash = EntryHash(entry i-1) (32 zero bytes for
// entry 0), so altering, removing or reordering any stored entry breaks the
// chain at that point, which VerifyChain reports.
//
//   ASSIGN_OR_RETURN(auto log, AuditLog::Open(storage, clock));
//   ASSIGN_OR_RETURN(AuditLog::Appended a, log->Append(entry));  // synced
//
// Entries never hold subject ids: callers put only identities of callers,
// hashes, dataset and purpose names, decisions and rule ids in them.
// Thread-safe. `storage` and `clock` must outlive the log.
#ifndef FEDSHARE_NODE_AUDIT_AUDIT_LOG_H_
#define FEDSHARE_NODE_AUDIT_AUDIT_LOG_H_

#include <cstdint>
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
#include "google/protobuf/message_lite.h"
#include "node/common/clock.h"
#include "node/storage/storage.h"

namespace fedshare::audit {

// SHA-256 over the canonical encoding of every field of `entry`: fields 1-14
// in field-number order, each length-prefixed (integers as 8 big-endian
// bytes); then, only when any of question, applied_where,
// applied_where_text or on_behalf_of is set, the tag "v2" and those four
// (the messages by deterministic serialization, each length-prefixed), so
// entries written before they existed keep their hashes. 32 bytes.
std::string EntryHash(const v1::AuditEntry& entry);

// SHA-256 of `data`, 32 bytes.
std::string Sha256(absl::string_view data);

// SHA-256 of the deterministic serialization of an answer (or a question),
// as recorded in an entry's result_hash.
std::string MessageHash(const google::protobuf::MessageLite& message);

class AuditLog {
 public:
  // Reads the last entry to continue the chain. If the stored head does not
  // match it (the newest entries were removed or altered), the log opens
  // but every Append fails with UNAVAILABLE, so the node answers nothing
  // while operators can still read and verify the log.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(storage::Storage* storage, Clock* clock);

  struct Appended {
    uint64_t index;
    std::string entry_hash;
  };

  // Sets index, time and previous_hash on `entry`, writes it with a synced
  // write, and returns its position and hash. On error nothing is appended
  // and the caller must not release anything (fail closed): the status is
  // UNAVAILABLE "audit log unavailable: ...".
  absl::StatusOr<Appended> Append(v1::AuditEntry entry);

  // Called after every Append, outside the log's lock, with the entry (as
  // stored, or as it would have been) and the append's status; for metrics.
  // REQUIRES: set before the first Append, from one thread.
  using Observer = std::function<void(const v1::AuditEntry& entry, const absl::Status& status)>;
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

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
    uint64_t next_index = 0;  // the index after the last entry examined
  };
  // Entries from `from_index` on that match `filter`, in index order. Stops
  // after `limit` matches or `max_examined` entries examined, whichever
  // comes first, so one call's work is bounded however few entries match.
  // REQUIRES: limit > 0, max_examined > 0.
  absl::StatusOr<Page> Find(uint64_t from_index, const Filter& filter, int limit,
                            int max_examined) const;

  // Number of entries.
  uint64_t size() const;

  // OK if every stored entry is at its index and chains to the one before;
  // DATA_LOSS naming the first entry that does not.
  absl::Status VerifyChain() const;

 private:
  AuditLog(storage::Storage* storage, Clock* clock) : storage_(storage), clock_(clock) {}
  // Append without the observer; sets the entry's index, time and chain.
  absl::StatusOr<Appended> AppendChained(v1::AuditEntry& entry);

  storage::Storage* const storage_;
  Clock* const clock_;
  mutable absl::Mutex mu_;
  uint64_t next_index_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_hash_ ABSL_GUARDED_BY(mu_);
  // Set at Open when the stored head does not match the last entry.
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  Observer observer_;
};

}  // namespace fedshare::audit

#endif  // FEDSHARE_NODE_AUDIT_AUDIT_LOG_H_
