// A fixed set of threads that every question's scan shares, so that however
// many questions run at once, at most threads() threads scan blocks: sixteen
// concurrent questions queue for the same cores instead of each taking its
// own and thrashing the caches.
//
//   ScanPool pool(4);
//   pool.Run(ranges.size(), [&](size_t i) { partials[i] = ScanRange(ranges[i]); });
//
// A question takes its share of the pool first (Share): alone it may use
// every thread; while others scan too, the threads are divided among them,
// and a question whose share is one thread scans on its caller's thread, not
// split into ranges it would have to merge. Such questions (and those over
// too few blocks to split) scan outside the pool, so what bounds the threads
// scanning at once in the node is its answer queue, which lets
// limits.scan_threads questions in at a time (answerer_queue.h).
//
// Thread-safe.
#ifndef FEDSHARE_NODE_ENGINE_SCAN_POOL_H_
#define FEDSHARE_NODE_ENGINE_SCAN_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fedshare::engine {

class ScanPool {
 public:
  // REQUIRES: threads >= 1.
  explicit ScanPool(int threads);
  // Waits for queued tasks to finish, then joins the threads.
  ~ScanPool();
  ScanPool(const ScanPool&) = delete;
  ScanPool& operator=(const ScanPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()); }

  // A question's share of `pool` while it lives: the pool's threads divided
  // by the questions holding a share when it was taken (this one included),
  // at least one. A share of one thread has no pool(): the question scans
  // on its own thread, as two questions on two cores should, rather than
  // each splitting its blocks and paying to merge them.
  class Share {
   public:
    explicit Share(ScanPool* pool);  // null: a share of one thread, no pool
    ~Share();
    Share(const Share&) = delete;
    Share& operator=(const Share&) = delete;

    int threads() const { return threads_; }
    // The pool to split this question's work on; null when threads() is 1.
    ScanPool* pool() const { return threads_ > 1 ? pool_ : nullptr; }

   private:
    ScanPool* const pool_;
    int threads_ = 1;
  };

  // Runs fn(0) .. fn(n-1) on the pool's threads, in that order of start
  // (tasks of earlier calls first), and returns when all have returned. The
  // caller only waits. fn must not call Run.
  void Run(size_t n, const std::function<void(size_t)>& fn);

 private:
  struct Batch;
  struct Task {
    // Shared: the last worker may still be unlocking the batch's mutex
    // when its caller returns.
    std::shared_ptr<Batch> batch;
    size_t index = 0;
  };
  void Work();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int sharing_ ABSL_GUARDED_BY(mu_) = 0;  // questions holding a Share
  std::vector<std::thread> workers_;
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_SCAN_POOL_H_
