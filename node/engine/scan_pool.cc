#include "node/engine/scan_pool.h"

#include <algorithm>

namespace fedshare::engine {

struct ScanPool::Batch {
  const std::function<void(size_t)>* fn = nullptr;
  size_t left ABSL_GUARDED_BY(mu) = 0;
  absl::Mutex mu;
};

ScanPool::ScanPool(int threads) {
  workers_.reserve(threads);
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

ScanPool::~ScanPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void ScanPool::Run(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  auto batch = std::make_shared<Batch>();
  batch->fn = &fn;
  {
    absl::MutexLock lock(&batch->mu);
    batch->left = n;
  }
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < n; ++i) queue_.push_back({batch, i});
  }
  absl::MutexLock lock(&batch->mu);
  batch->mu.Await(absl::Condition(
      +[](size_t* left) { return *left == 0; }, &batch->left));
}

ScanPool::Share::Share(ScanPool* pool) : pool_(pool) {
  if (pool_ == nullptr) return;
  absl::MutexLock lock(&pool_->mu_);
  ++pool_->sharing_;
  threads_ = std::max(1, pool_->threads() / pool_->sharing_);
}

ScanPool::Share::~Share() {
  if (pool_ == nullptr) return;
  absl::MutexLock lock(&pool_->mu_);
  --pool_->sharing_;
}

bool ScanPool::HasWorkOrStopping() const { return stopping_ || !queue_.empty(); }

void ScanPool::Work() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ScanPool::HasWorkOrStopping));
      if (queue_.empty()) return;  // stopping, and nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    (*task.batch->fn)(task.index);
    absl::MutexLock lock(&task.batch->mu);
    --task.batch->left;
  }
}

}  // namespace fedshare::engine
