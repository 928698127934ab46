// Waiting for a condition another process brings about (a node reloads, a
// partner reconnects) where no event says so: the condition is checked
// again every 20 ms until it holds or the timeout passes.
#ifndef FEDSHARE_TESTING_POLL_H_
#define FEDSHARE_TESTING_POLL_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fedshare::testing {

// Polls `condition` every 20 ms until it holds or `timeout` passes.
template <typename Condition>
bool PollUntil(Condition condition, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

}  // namespace fedshare::testing

#endif  // FEDSHARE_TESTING_POLL_H_
