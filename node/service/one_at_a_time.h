// Lets one call of a kind run at a time (an erasure, a retention run, a
// backup): a second one that comes while the first runs is refused at once
// instead of queuing behind it, so a script cannot pile up compactions or
// backups on a node.
//
//   OneAtATime backups("a backup");
//   absl::StatusOr<OneAtATime::Turn> turn = backups.Begin();
//   if (!turn.ok()) return turn.status();   // ABORTED: "a backup is already running; ..."
//   ... the work; the turn ends when `turn` is destroyed ...
//
// Thread-safe. The OneAtATime must outlive every Turn it gives.
#ifndef FEDSHARE_NODE_SERVICE_ONE_AT_A_TIME_H_
#define FEDSHARE_NODE_SERVICE_ONE_AT_A_TIME_H_

#include <atomic>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace fedshare::service {

class OneAtATime {
 public:
  // `what` names one call of the kind in the refusal: "a backup".
  explicit OneAtATime(std::string what) : what_(std::move(what)) {}
  OneAtATime(const OneAtATime&) = delete;
  OneAtATime& operator=(const OneAtATime&) = delete;

  // Holds the kind's only slot until destroyed.
  class Turn {
   public:
    Turn(Turn&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    Turn& operator=(Turn&&) = delete;
    ~Turn() {
      if (owner_ != nullptr) owner_->running_.store(false);
    }

   private:
    friend class OneAtATime;
    explicit Turn(OneAtATime* owner) : owner_(owner) {}
    OneAtATime* owner_;
  };

  // The slot, or ABORTED ("<what> is already running; ask again when it
  // ends") while another Turn holds it. ABORTED, not FAILED_PRECONDITION:
  // nothing needs fixing, the same call succeeds once the other ends.
  absl::StatusOr<Turn> Begin() {
    if (running_.exchange(true)) {
      return absl::AbortedError(absl::StrCat(what_, " is already running; ask again when it ends"));
    }
    return Turn(this);
  }

 private:
  const std::string what_;
  std::atomic<bool> running_{false};
};

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_ONE_AT_A_TIME_H_
