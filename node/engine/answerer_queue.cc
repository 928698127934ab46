#include "node/engine/answerer_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fedshare::engine {

AnswerQueue::AnswerQueue(int slots) : slots_(std::max(1, slots)) {}

void AnswerQueue::Slot::Release() {
  if (queue_ == nullptr) return;
  queue_->Leave();
  queue_ = nullptr;
}

absl::StatusOr<AnswerQueue::Slot> AnswerQueue::Enter(const std::function<bool()>& stop,
                                                     absl::Duration poll) {
  absl::MutexLock lock(&mu_);
  if (stop && stop()) {
    return absl::CancelledError(
        "the caller gave up before its turn; nothing was scanned or counted");
  }
  if (line_.empty() && running_ < slots_) {
    ++running_;
    ++turns_;
    return Slot(this);
  }
  const absl::Time entered = absl::Now();
  Waiter waiter;
  line_.push_back(&waiter);
  while (!mu_.AwaitWithTimeout(absl::Condition(&waiter.admitted), poll)) {
    if (stop && stop()) {
      line_.erase(std::find(line_.begin(), line_.end(), &waiter));
      return absl::CancelledError(absl::StrCat(
          "the caller gave up after waiting ",
          absl::FormatDuration(absl::Trunc(absl::Now() - entered, absl::Milliseconds(1))),
          " for its turn (", slots_,
          " questions are answered at once, limits.scan_threads); nothing was scanned or "
          "counted"));
    }
  }
  ++turns_;
  return Slot(this);  // the leaving question handed its slot over
}

void AnswerQueue::Leave() {
  absl::MutexLock lock(&mu_);
  if (line_.empty()) {
    --running_;
    return;
  }
  line_.front()->admitted = true;
  line_.pop_front();
}

int AnswerQueue::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

int AnswerQueue::waiting() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(line_.size());
}

uint64_t AnswerQueue::turns() const {
  absl::MutexLock lock(&mu_);
  return turns_;
}

}  // namespace fedshare::engine
