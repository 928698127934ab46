// The answering threads of one call-home stream (CallHomeClient): at most
// `most` questions queued or running at once, on at most `most` threads. A
// thread starts when a question finds none idle and is kept until the
// workers close, so a question does not pay for starting one (nor for the
// fresh allocator cache and RocksDB thread-locals a new thread begins with).
//
//   AnswerWorkers workers(4, "callhome-answer");
//   if (workers.AwaitRoom(stopping)) {
//     workers.Add(id, [](const std::atomic<bool>& cancelled) { ... });
//   }
//   workers.Cancel(id);          // the foundation cancelled question `id`
//   workers.CancelAllAndJoin();  // the stream ended
//
// Thread-safe.
#ifndef FEDSHARE_NODE_SERVER_ANSWER_WORKERS_H_
#define FEDSHARE_NODE_SERVER_ANSWER_WORKERS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fedshare::server {

class AnswerWorkers {
 public:
  // Runs one question; `cancelled` turns true when Cancel names it or the
  // workers close.
  using Job = std::function<void(const std::atomic<bool>& cancelled)>;

  // `most` >= 1. Each thread names itself `thread_name` (at most 15 bytes),
  // so an operator (top -H) and the tests can count them.
  AnswerWorkers(int most, std::string thread_name);
  AnswerWorkers(const AnswerWorkers&) = delete;
  AnswerWorkers& operator=(const AnswerWorkers&) = delete;
  ~AnswerWorkers();  // CancelAllAndJoin()

  // Waits until fewer than `most` questions are queued or running. Asks
  // `stop` every 100 ms, and returns false once it says true.
  bool AwaitRoom(const std::function<bool()>& stop);

  // Queues question `id`; a thread starts for it if none is idle. After
  // CancelAllAndJoin, the job still runs, cancelled, if a thread is left
  // to run it, and is dropped otherwise.
  void Add(uint64_t id, Job job);

  // Cancels question `id` if it is queued or running.
  void Cancel(uint64_t id);

  // Cancels every question; the queued ones still run (each ends at once as
  // cancelled), then every thread ends. Idempotent.
  void CancelAllAndJoin();

 private:
  struct Question {
    std::shared_ptr<std::atomic<bool>> cancelled;
    Job job;
  };

  void Work();

  const int most_;
  const std::string thread_name_;
  absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // queued or running
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Question> queue_ ABSL_GUARDED_BY(mu_);
  // The cancel flags of the questions queued or running, by question id.
  std::list<std::pair<uint64_t, std::shared_ptr<std::atomic<bool>>>> cancels_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_ANSWER_WORKERS_H_
