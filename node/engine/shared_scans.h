// Questions asked at once that would scan exactly the same thing share one
// scan (issue 11). A dashboard refreshed by several analysts, or one analyst's
// script asking in parallel, then costs the node one scan instead of one per
// question.
//
// Two questions share a scan only when everything ExecuteQuery reads is the
// same for both (the caller builds `key` from all of it, ScanKey below): the
// asking org (consent and limits are per asker, and sharing never crosses
// orgs, so no org can time another's questions), the normalized question, the
// agreement's record bound, the removal cap and the cell-key table; the data
// (no write to records, subjects or consent acknowledged between the two:
// Engine::data_generation); and the consent bitmap, compared bit for bit.
// Each question still passes its own agreement, limits, disclosure rules and
// audit entry: only the exact figures are shared, and they are the figures its
// own scan would have made. A scan is shared only while it runs; nothing is
// kept once its questions are done (this is not a result cache).
//
//   // A question that found nothing to join scans itself:
//   std::shared_ptr<SharedScans::Flight> flight = scans.Begin(key, generation, consent);
//   ... scan ...
//   scans.Publish(flight, std::move(scan));  // wakes the questions that joined
//   // A question asked while that scan runs:
//   if (auto flight = scans.Find(key, generation, consent)) {
//     absl::StatusOr<std::shared_ptr<const SharedScan>> scan = flight->Await(cancelled);
//   }
//
// Thread-safe.
#ifndef FEDSHARE_NODE_ENGINE_SHARED_SCANS_H_
#define FEDSHARE_NODE_ENGINE_SHARED_SCANS_H_

#include <cstdint>
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
#include "node/engine/answerer_queue.h"
#include "node/engine/engine.h"
#include "node/engine/query_executor.h"
#include "policy/consent.h"
#include "policy/disclosure.h"

namespace fedshare::engine {

// One scan's output, read-only once published: what every question sharing
// it needs for its disclosure control.
struct SharedScan {
  SharedScan() = default;
  SharedScan(const SharedScan&) = delete;
  SharedScan& operator=(const SharedScan&) = delete;
  // Gives the statistics back to the cells, so that ~Execution recycles
  // their buffers for the next question (question_memory.h).
  ~SharedScan();

  // The scanning question's turn (answerer_queue.h), held until the last
  // question sharing the scan is done with it: the scan's memory stays
  // counted against the slots while any question reads it. Declared first,
  // so it is given back after the rest is freed.
  std::optional<AnswerQueue::Slot> slot;
  std::shared_ptr<const policy::ConsentBitmap> consent;
  std::unique_ptr<DatasetReader> reader;  // holds the snapshot scanned
  // The cells' figures; their statistics are in `stats`, in cell order,
  // each with its key serialized (policy::CellStats::key).
  Execution execution;
  std::vector<policy::CellStats> stats;
  // Per subject ordinal, its cell key (empty without cell-key perturbation).
  std::shared_ptr<const std::vector<uint32_t>> keys;
};

// Everything besides the data and the consent bitmap that decides what
// ExecuteQuery makes for a question: the asking org; `applied_hash`, the
// policy::QuestionHash of the canonical form of the question as normalized
// (the repeat limit's key: dataset, purpose, predicates, group-by and
// aggregates in order, query_id aside; canonicalization changes nothing
// the scan reads, since NormalizeQuery sorts the predicates already); the
// agreement's record bound and removal cap; the cell-key table size (0
// without cell keys).
std::string ScanKey(absl::string_view asker_org, absl::string_view applied_hash,
                    int max_records_per_subject, int64_t removal_cap, uint32_t cell_key_table_size);

class SharedScans {
 public:
  // One scan in progress.
  class Flight {
   public:
    // The scan once published (or the scanning question's error), or
    // CANCELLED once `cancelled` returns true, asked every `poll` while
    // waiting.
    absl::StatusOr<std::shared_ptr<const SharedScan>> Await(
        const std::function<bool()>& cancelled = nullptr,
        absl::Duration poll = absl::Milliseconds(10));

   private:
    friend class SharedScans;
    std::string key_;
    uint64_t generation_ = 0;
    std::shared_ptr<const policy::ConsentBitmap> consent_;
    absl::Mutex mu_;
    bool done_ ABSL_GUARDED_BY(mu_) = false;
    absl::StatusOr<std::shared_ptr<const SharedScan>> result_ ABSL_GUARDED_BY(mu_);
  };

  SharedScans() = default;
  SharedScans(const SharedScans&) = delete;
  SharedScans& operator=(const SharedScans&) = delete;

  // A scan about to run over data of `generation` with `consent`; other
  // questions Find it until it is published. A later Begin with the same
  // key takes its place for questions that arrive after.
  std::shared_ptr<Flight> Begin(std::string key, uint64_t generation,
                                std::shared_ptr<const policy::ConsentBitmap> consent);
  // Ends `flight`: its waiters get `scan`, and no question finds it any more.
  void Publish(const std::shared_ptr<Flight>& flight,
               absl::StatusOr<std::shared_ptr<const SharedScan>> scan);

  // Whether a scan with `key` runs now: lets a question skip building its
  // consent bitmap when there is nothing to join.
  bool Running(const std::string& key) const;
  // The running scan with `key`, if it reads data of `generation` with a
  // consent bitmap equal to `consent`; else null.
  std::shared_ptr<Flight> Find(const std::string& key, uint64_t generation,
                               const policy::ConsentBitmap& consent) const;

  // Scans running now.
  size_t running() const;
  // Questions Find gave a running scan to, since start.
  uint64_t joined() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> running_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t joined_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_SHARED_SCANS_H_
