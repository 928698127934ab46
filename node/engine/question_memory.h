// The memory one question's scan keeps until it finishes (groups, per-record
// subjects and measures, per-predicate removal sets), charged as it grows
// against the node's limits.query_memory_budget_bytes, so a question that
// would need more is refused rather than allowed to grow. Thread-safe: the
// ranges of a parallel scan share one.
#ifndef FEDSHARE_NODE_ENGINE_QUESTION_MEMORY_H_
#define FEDSHARE_NODE_ENGINE_QUESTION_MEMORY_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"

namespace fedshare::engine {

class QuestionMemory {
 public:
  // `budget_bytes` 0: no budget.
  explicit QuestionMemory(int64_t budget_bytes) : budget_(budget_bytes) {}

  bool budgeted() const { return budget_ > 0; }
  // Adds `bytes`. RESOURCE_EXHAUSTED, naming the limit and what to change,
  // once the total is over the budget (and from then on, from status()).
  absl::Status Charge(int64_t bytes);
  absl::Status status() const;

 private:
  const int64_t budget_;
  std::atomic<int64_t> used_{0};
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_QUESTION_MEMORY_H_
