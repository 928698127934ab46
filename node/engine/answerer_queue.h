// The line questions wait in before they are answered (issue 11): at most
// `slots` questions are answered at once (the node sets it to
// limits.scan_threads), and the others wait in arrival order. So sixteen
// questions at once do not time-share two cores, thrashing the caches and
// each holding its scan's memory: the first two finish as soon as one would
// alone, and each later one waits for those before it, never overtaken.
//
//   AnswerQueue queue(2);
//   ASSIGN_OR_RETURN(AnswerQueue::Slot slot, queue.Enter(stop));  // waits its turn
//   ... scan, disclosure control ...
//   slot.Release();  // or when `slot` goes out of scope
//
// How many may wait at all is bounded before the line (Answerer's
// max_concurrent_questions); a question that leaves the line costs nothing.
// Thread-safe.
#ifndef FEDSHARE_NODE_ENGINE_ANSWERER_QUEUE_H_
#define FEDSHARE_NODE_ENGINE_ANSWERER_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fedshare::engine {

class AnswerQueue {
 public:
  // REQUIRES: slots >= 1.
  explicit AnswerQueue(int slots);
  AnswerQueue(const AnswerQueue&) = delete;
  AnswerQueue& operator=(const AnswerQueue&) = delete;

  // One question's turn; gives it to the next in line when released or
  // destroyed. REQUIRES: destroyed before the queue.
  class Slot {
   public:
    Slot(Slot&& other) noexcept : queue_(other.queue_) { other.queue_ = nullptr; }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    Slot& operator=(Slot&&) = delete;
    ~Slot() { Release(); }
    void Release();

   private:
    friend class AnswerQueue;
    explicit Slot(AnswerQueue* queue) : queue_(queue) {}
    AnswerQueue* queue_;
  };

  // A slot, once every question that entered earlier has had one and one is
  // free. `stop`, when set, is asked on entry and every `poll` while waiting
  // (under the queue's lock, so it must be quick and take no lock of the
  // queue's); once it returns true the question leaves the line with
  // CANCELLED, saying how long it waited.
  absl::StatusOr<Slot> Enter(const std::function<bool()>& stop = nullptr,
                             absl::Duration poll = absl::Milliseconds(10));

  int slots() const { return slots_; }
  // Questions holding a slot / waiting for one, now.
  int running() const;
  int waiting() const;
  // Slots given since the queue was made: the scans questions took a turn for.
  uint64_t turns() const;

 private:
  struct Waiter {
    bool admitted = false;
  };
  void Leave();

  const int slots_;
  mutable absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t turns_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Waiter*> line_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_ANSWERER_QUEUE_H_
