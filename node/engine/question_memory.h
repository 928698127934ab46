// The memory one question's scan keeps until it finishes (groups, per-record
// subjects and measures, per-predicate removal sets), charged as it grows
// against the node's limits.query_memory_budget_bytes, so that a scan never
// grows past it. (ExecuteQuery refuses beforehand a question whose bound
// over the whole dataset passes the budget, so that a refusal never depends
// on which records match.) Thread-safe: the
// ranges of a parallel scan share one. And the large buffers scans drop,
// kept for the next question (SpareBuffers).
#ifndef FEDSHARE_NODE_ENGINE_QUESTION_MEMORY_H_
#define FEDSHARE_NODE_ENGINE_QUESTION_MEMORY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace fedshare::engine {

class QuestionMemory {
 public:
  // `budget_bytes` 0: no budget.
  explicit QuestionMemory(int64_t budget_bytes) : budget_(budget_bytes) {}

  bool budgeted() const { return budget_ > 0; }
  // Adds `bytes`. OverQuestionMemoryBudget once the total is over the
  // budget (and from then on, from status()). A question admitted by its
  // bound (ExecuteQuery) never gets there.
  absl::Status Charge(int64_t bytes);
  absl::Status status() const;

 private:
  const int64_t budget_;
  std::atomic<int64_t> used_{0};
};

// RESOURCE_EXHAUSTED naming limits.query_memory_budget_bytes and what to
// change. Says nothing of the data: no figure but the budget.
absl::Status OverQuestionMemoryBudget(int64_t budget_bytes);

// Large buffers that questions' scans grow and drop, kept for the next
// question so that their memory is not handed back to the system and
// faulted in again (fresh pages cost a question of 1M records about a tenth
// of its time). Keeps at most max_bytes() of buffers (kDefaultMaxBytes until
// SetMaxBytes), none smaller than kMinBytes. Thread-safe.
//
//   std::vector<uint64_t> v = SpareBuffers::Get().Take<uint64_t>();
//   ... grow and use v ...
//   SpareBuffers::Get().Give(v);  // v is left empty
//
// A question's answer (Execution) gives its per-subject statistics back
// when it is destroyed, so the next question writes them to memory already
// faulted in.
class SpareBuffers {
 public:
  static constexpr size_t kDefaultMaxBytes = size_t{64} << 20;
  static constexpr size_t kMinBytes = size_t{64} << 10;

  // The one process-wide set.
  static SpareBuffers& Get();

  // An empty vector: a kept one's memory if there is one.
  template <typename T>
  std::vector<T> Take() {
    absl::MutexLock lock(&mu_);
    std::vector<std::vector<T>>& list = ListOf<T>();
    if (list.empty()) return {};
    std::vector<T> v = std::move(list.back());
    list.pop_back();
    bytes_ -= v.capacity() * sizeof(T);
    return v;
  }
  // An empty vector with capacity for at least `at_least` elements if one is
  // kept (the smallest such); otherwise an empty one with none, and the kept
  // buffers stay for smaller needs.
  template <typename T>
  std::vector<T> Take(size_t at_least) {
    absl::MutexLock lock(&mu_);
    std::vector<std::vector<T>>& list = ListOf<T>();
    size_t best = list.size();
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].capacity() >= at_least &&
          (best == list.size() || list[i].capacity() < list[best].capacity())) {
        best = i;
      }
    }
    if (best == list.size()) return {};
    std::vector<T> v = std::move(list[best]);
    list[best] = std::move(list.back());
    list.pop_back();
    bytes_ -= v.capacity() * sizeof(T);
    return v;
  }
  // The most kept from now on; what is kept beyond it is let go.
  void SetMaxBytes(size_t max_bytes) {
    absl::MutexLock lock(&mu_);
    max_bytes_ = max_bytes;
    DropOverMax();
  }
  size_t max_bytes() const {
    absl::MutexLock lock(&mu_);
    return max_bytes_;
  }

  // Keeps v's memory if it is large and there is room; leaves v empty.
  template <typename T>
  void Give(std::vector<T>& v) {
    const size_t bytes = v.capacity() * sizeof(T);
    std::vector<T> kept = std::move(v);
    v.clear();
    if (bytes < kMinBytes) return;
    kept.clear();
    absl::MutexLock lock(&mu_);
    if (bytes_ + bytes > max_bytes_) return;
    bytes_ += bytes;
    ListOf<T>().push_back(std::move(kept));
  }

 private:
  template <typename T>
  std::vector<std::vector<T>>& ListOf() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void DropOverMax() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  size_t max_bytes_ ABSL_GUARDED_BY(mu_) = kDefaultMaxBytes;
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::vector<uint32_t>> u32_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<uint64_t>> u64_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<double>> doubles_ ABSL_GUARDED_BY(mu_);
};

template <>
inline std::vector<std::vector<uint32_t>>& SpareBuffers::ListOf<uint32_t>() {
  return u32_;
}
template <>
inline std::vector<std::vector<uint64_t>>& SpareBuffers::ListOf<uint64_t>() {
  return u64_;
}
template <>
inline std::vector<std::vector<double>>& SpareBuffers::ListOf<double>() {
  return doubles_;
}

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_QUESTION_MEMORY_H_
