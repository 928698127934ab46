// The node's configurable bounds (NodeConfig.limits, docs/limits.md), applied
// at the service edge before any work and before the audit.
//
//   v1::Limits limits = EffectiveLimits(config.limits());
//   RETURN_IF_ERROR(CheckQuestion(limits, request->query()));
//   ASSIGN_OR_RETURN(CallGate::Ticket ticket, gate.Enter(caller));   // held for the call
//
// A call over a limit fails with RESOURCE_EXHAUSTED (rates, concurrency) or
// INVALID_ARGUMENT (sizes), and the message names the limit and its value.
#ifndef FEDSHARE_NODE_SERVICE_LIMITS_H_
#define FEDSHARE_NODE_SERVICE_LIMITS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fedshare/v1/config.pb.h"
#include "fedshare/v1/query.pb.h"

namespace fedshare::service {

// `configured` with every unset (0) field replaced by its default.
v1::Limits EffectiveLimits(const v1::Limits& configured);

// INVALID_ARGUMENT naming `limit` and `value`: "<what> is over the limit
// <limit> = <value>".
absl::Status OverLimit(absl::string_view limit, int64_t value, absl::string_view what);

// Checks a question's shape against the limits: string lengths, predicates,
// IN values, group fields, aggregates, histogram bins. Looks at nothing else.
absl::Status CheckQuestion(const v1::Limits& limits, const v1::AggregateQuery& query);

// Bounds the calls one caller has in flight. Thread-safe.
class CallGate {
 public:
  explicit CallGate(int max_per_caller) : max_per_caller_(max_per_caller) {}

  // Releases its slot when destroyed.
  class Ticket {
   public:
    Ticket(Ticket&& other) noexcept : gate_(other.gate_), caller_(std::move(other.caller_)) {
      other.gate_ = nullptr;
    }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket();

   private:
    friend class CallGate;
    Ticket(CallGate* gate, std::string caller) : gate_(gate), caller_(std::move(caller)) {}
    CallGate* gate_;
    std::string caller_;
  };

  // A ticket, or RESOURCE_EXHAUSTED when `caller` already has the maximum.
  absl::StatusOr<Ticket> Enter(const std::string& caller);

 private:
  const int max_per_caller_;
  absl::Mutex mu_;
  std::map<std::string, int> in_flight_ ABSL_GUARDED_BY(mu_);
};

// Throttles a storm of calls that are audited but cost their caller nothing
// (refusals, dry runs): each caller's counted calls are audited one by one
// up to `limit` per window; after that its calls are turned away before any
// work (and not audited each), and when the window ends the storm is reported
// once through `summarise(caller, throttled, window_start, window_end)`.
// Thread-safe.
class StormThrottle {
 public:
  // What the refusal of a throttled call and the storm's audit entry name.
  struct Names {
    std::string calls;       // "refused questions"
    std::string limit;       // the config field: "refusals_per_window"
    std::string rule;        // the refusal's ErrorInfo reason: "refusals-per-window"
    std::string storm_rule;  // the storm's audit entry's rule: "refusal-throttle"
    std::string after;       // its reason's "... after too many refusals"
  };
  // The throttle of refused questions (limits.refusals_per_window), and of
  // dry runs (limits.dry_runs_per_window).
  static const Names& Refusals();
  static const Names& DryRuns();
  using Summarise = std::function<void(const std::string& caller, int64_t throttled,
                                       absl::Time from, absl::Time to)>;
  StormThrottle(Names names, int limit, absl::Duration window, Summarise summarise)
      : names_(std::move(names)),
        limit_(limit),
        window_(window),
        summarise_(std::move(summarise)) {}
  // Reports storms still pending.
  ~StormThrottle();

  // OK, or RESOURCE_EXHAUSTED naming the limit while `caller` is throttled.
  absl::Status Admit(const std::string& caller, absl::Time now);
  // Counts one call of `caller` (a refusal made before any audit).
  void Count(const std::string& caller, absl::Time now);
  // Admit and Count in one step: at most `limit` are admitted per window,
  // however many arrive at once (a dry run as it arrives, a refusal as it is
  // about to be audited).
  absl::Status Take(const std::string& caller, absl::Time now);

 private:
  struct Window {
    absl::Time start;
    int counted = 0;
    int64_t throttled = 0;
  };
  // Starts a new window if the current one has ended; returns a storm to report.
  bool Roll(Window& w, absl::Time now, int64_t* throttled, absl::Time* from, absl::Time* to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Admit, and with `count` Count when admitted.
  absl::Status AdmitAndCount(const std::string& caller, absl::Time now, bool count);

  const Names names_;
  const int limit_;
  const absl::Duration window_;
  Summarise summarise_;
  absl::Mutex mu_;
  std::map<std::string, Window> windows_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fedshare::service

#endif  // FEDSHARE_NODE_SERVICE_LIMITS_H_
