#include "node/server/answer_workers.h"

#include <pthread.h>

namespace fedshare::server {

AnswerWorkers::AnswerWorkers(int most, std::string thread_name)
    : most_(most < 1 ? 1 : most), thread_name_(std::move(thread_name)) {}

AnswerWorkers::~AnswerWorkers() { CancelAllAndJoin(); }

bool AnswerWorkers::AwaitRoom(const std::function<bool()>& stop) {
  absl::MutexLock lock(&mu_);
  const auto has_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return open_ < most_; };
  while (!mu_.AwaitWithTimeout(absl::Condition(&has_room), absl::Milliseconds(100))) {
    if (stop()) return false;
  }
  return true;
}

void AnswerWorkers::Add(uint64_t id, Job job) {
  absl::MutexLock lock(&mu_);
  ++open_;
  auto cancelled = std::make_shared<std::atomic<bool>>(closing_);
  cancels_.emplace_back(id, cancelled);
  queue_.push_back(Question{std::move(cancelled), std::move(job)});
  if (idle_ == 0 && !closing_ && static_cast<int>(threads_.size()) < most_) {
    threads_.emplace_back([this] { Work(); });
  }
}

void AnswerWorkers::Cancel(uint64_t id) {
  absl::MutexLock lock(&mu_);
  for (const auto& [open_id, cancelled] : cancels_) {
    if (open_id == id) cancelled->store(true);
  }
}

void AnswerWorkers::CancelAllAndJoin() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    for (const auto& [id, cancelled] : cancels_) cancelled->store(true);
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) thread.join();
}

void AnswerWorkers::Work() {
  pthread_setname_np(pthread_self(), thread_name_.c_str());
  mu_.Lock();
  for (;;) {
    ++idle_;
    mu_.Await(absl::Condition(
        +[](AnswerWorkers* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return !self->queue_.empty() || self->closing_;
        },
        this));
    --idle_;
    if (queue_.empty()) break;  // closing
    Question question = std::move(queue_.front());
    queue_.pop_front();
    mu_.Unlock();
    question.job(*question.cancelled);
    question.job = nullptr;  // what it holds goes before the next question
    mu_.Lock();
    --open_;
    cancels_.remove_if([&](const auto& open) { return open.second == question.cancelled; });
  }
  mu_.Unlock();
}

}  // namespace fedshare::server
