// The rate and repeat limits' sliding windows of answered times (the
// `queries` column family, docs/storage-format.md), kept in memory so that
// counting a question costs no synced write of its own: what changed is
// written in the batch of the next audit append (AuditLog::SetGroupHook),
// and every question a window counts is audited, answer or refusal, before
// anything leaves the node (a refusal past the caller's refusal throttle is
// not, and releases nothing but the throttle's status). So a window on disk
// holds at least every answer released, and a question counted but never
// audited (the node stopped first) released nothing.
//
//   LimitWindows windows(storage, clock);
//   audit->SetGroupHook(windows.GroupHook());
//   RETURN_IF_ERROR(windows.Admit(limits, agreement_id, &rule));
//
// Thread-safe. `storage` and `clock` must outlive it.
#ifndef FEDSHARE_NODE_ENGINE_ANSWERER_LIMITS_H_
#define FEDSHARE_NODE_ENGINE_ANSWERER_LIMITS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "node/audit/audit_log.h"
#include "node/common/clock.h"
#include "node/storage/storage.h"

namespace fedshare::engine {

class LimitWindows {
 public:
  // One window and what to say when it is full.
  struct Limit {
    std::string key;  // in the `queries` column family
    int limit;        // <= 0: no limit
    absl::Duration window;
    absl::string_view rule;
    std::string refusal;
  };

  LimitWindows(storage::Storage* storage, Clock* clock) : storage_(storage), clock_(clock) {}

  // Counts the question in each window in turn: OK and counted in all, or at
  // the first full one RESOURCE_EXHAUSTED with its refusal, carrying its
  // rule, `agreement_id` and the time until the window admits again (the
  // windows before it keep the count). `rule` names the window decided last
  // (also when reading a window from storage fails).
  absl::Status Admit(const std::vector<Limit>& limits, const std::string& agreement_id,
                     absl::string_view* rule);

  // Writes the windows changed since the last group into each audit group's
  // batch, and marks them written once the batch is.
  audit::AuditLog::GroupHook GroupHook();

 private:
  struct Window {
    std::vector<absl::Time> times;
    uint64_t version = 0;          // bumped at each change
    uint64_t written_version = 0;  // the version on disk
  };
  void AddChanged(storage::WriteBatch& batch);
  void Written(bool ok);

  storage::Storage* const storage_;
  Clock* const clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Window> windows_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> changed_ ABSL_GUARDED_BY(mu_);
  // Added to the group being written: key and version.
  std::vector<std::pair<std::string, uint64_t>> writing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_ANSWERER_LIMITS_H_
