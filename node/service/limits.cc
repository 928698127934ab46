#include "node/service/limits.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/common/utf8.h"
#include "policy/refusal.h"

namespace fedshare::service {
namespace {

// Defaults, documented in docs/limits.md and config.proto.
constexpr int32_t kPeerMaxMessageBytes = 64 << 10;
constexpr int32_t kLocalMaxMessageBytes = 4 << 20;
constexpr int64_t kMemoryBudgetBytes = int64_t{256} << 20;
constexpr int32_t kMaxThreads = 64;
constexpr int32_t kMaxConnections = 512;
constexpr int32_t kHandshakeTimeoutMs = 10'000;
constexpr int32_t kIdleTimeoutMs = 300'000;
constexpr int32_t kMaxStringBytes = 256;
constexpr int32_t kMaxPredicates = 16;
constexpr int32_t kMaxInValues = 256;
constexpr int32_t kMaxGroupFields = 3;
constexpr int32_t kMaxAggregates = 16;
constexpr int32_t kMaxHistogramBins = 100;
constexpr int32_t kMaxAnswerCells = 10'000;
constexpr int32_t kMaxCallsPerCaller = 4;
constexpr int32_t kRefusalsPerWindow = 20;
constexpr int32_t kRefusalWindowSeconds = 60;
constexpr int32_t kDryRunsPerWindow = 60;
constexpr int32_t kDryRunWindowSeconds = 60;
constexpr int64_t kIngestMemoryBudgetBytes = int64_t{256} << 20;
constexpr int64_t kQueryMemoryBudgetBytes = int64_t{256} << 20;
constexpr int64_t kFederatedAnswerBudgetBytes = int64_t{512} << 20;

int32_t DefaultScanThreads() {
  return std::max(1, static_cast<int32_t>(std::thread::hardware_concurrency()));
}

template <typename T>
T Or(T value, T fallback) {
  return value > 0 ? value : fallback;
}

absl::Status CheckString(const v1::Limits& limits, absl::string_view what,
                         const std::string& text) {
  if (text.size() > static_cast<size_t>(limits.max_string_bytes())) {
    return OverLimit("max_string_bytes", limits.max_string_bytes(),
                     absl::StrCat(what, " (", text.size(), " bytes)"));
  }
  if (std::optional<size_t> bad = FirstInvalidUtf8(text)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8 at byte ", *bad + 1));
  }
  return absl::OkStatus();
}

absl::Status CheckValue(const v1::Limits& limits, absl::string_view what, const v1::Value& v) {
  if (v.kind_case() == v1::Value::kStringValue) return CheckString(limits, what, v.string_value());
  return absl::OkStatus();
}

}  // namespace

v1::Limits EffectiveLimits(const v1::Limits& c) {
  v1::Limits l;
  l.set_peer_max_message_bytes(Or(c.peer_max_message_bytes(), kPeerMaxMessageBytes));
  l.set_local_max_message_bytes(Or(c.local_max_message_bytes(), kLocalMaxMessageBytes));
  l.set_memory_budget_bytes(Or(c.memory_budget_bytes(), kMemoryBudgetBytes));
  l.set_max_threads(Or(c.max_threads(), kMaxThreads));
  l.set_max_connections(Or(c.max_connections(), kMaxConnections));
  l.set_handshake_timeout_ms(Or(c.handshake_timeout_ms(), kHandshakeTimeoutMs));
  l.set_idle_timeout_ms(Or(c.idle_timeout_ms(), kIdleTimeoutMs));
  l.set_max_string_bytes(Or(c.max_string_bytes(), kMaxStringBytes));
  l.set_max_predicates(Or(c.max_predicates(), kMaxPredicates));
  l.set_max_in_values(Or(c.max_in_values(), kMaxInValues));
  l.set_max_group_fields(Or(c.max_group_fields(), kMaxGroupFields));
  l.set_max_aggregates(Or(c.max_aggregates(), kMaxAggregates));
  l.set_max_histogram_bins(Or(c.max_histogram_bins(), kMaxHistogramBins));
  l.set_max_answer_cells(Or(c.max_answer_cells(), kMaxAnswerCells));
  l.set_max_calls_per_caller(Or(c.max_calls_per_caller(), kMaxCallsPerCaller));
  l.set_refusals_per_window(Or(c.refusals_per_window(), kRefusalsPerWindow));
  l.set_refusal_window_seconds(Or(c.refusal_window_seconds(), kRefusalWindowSeconds));
  l.set_dry_runs_per_window(Or(c.dry_runs_per_window(), kDryRunsPerWindow));
  l.set_dry_run_window_seconds(Or(c.dry_run_window_seconds(), kDryRunWindowSeconds));
  l.set_ingest_memory_budget_bytes(Or(c.ingest_memory_budget_bytes(), kIngestMemoryBudgetBytes));
  l.set_query_memory_budget_bytes(Or(c.query_memory_budget_bytes(), kQueryMemoryBudgetBytes));
  l.set_scan_threads(Or(c.scan_threads(), DefaultScanThreads()));
  l.set_federated_answer_budget_bytes(
      Or(c.federated_answer_budget_bytes(), kFederatedAnswerBudgetBytes));
  l.set_unshared_scans(c.unshared_scans());
  return l;
}

absl::Status OverLimit(absl::string_view limit, int64_t value, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(what, " is over the limit ", limit, " = ", value));
}

absl::Status CheckQuestion(const v1::Limits& limits, const v1::AggregateQuery& q) {
  if (q.where_size() > limits.max_predicates()) {
    return OverLimit("max_predicates", limits.max_predicates(),
                     absl::StrCat("the question's ", q.where_size(), " filters"));
  }
  if (q.group_by_size() > limits.max_group_fields()) {
    return OverLimit("max_group_fields", limits.max_group_fields(),
                     absl::StrCat("the question's ", q.group_by_size(), " group fields"));
  }
  if (q.aggregates_size() > limits.max_aggregates()) {
    return OverLimit("max_aggregates", limits.max_aggregates(),
                     absl::StrCat("the question's ", q.aggregates_size(), " aggregates"));
  }
  if (absl::Status s = CheckString(limits, "the query id", q.query_id()); !s.ok()) return s;
  if (absl::Status s = CheckString(limits, "the dataset name", q.dataset()); !s.ok()) return s;
  if (absl::Status s = CheckString(limits, "the purpose", q.purpose()); !s.ok()) return s;
  for (const std::string& g : q.group_by()) {
    if (absl::Status s = CheckString(limits, "a group field", g); !s.ok()) return s;
  }
  for (const v1::Predicate& p : q.where()) {
    if (absl::Status s = CheckString(limits, "a filter's field", p.field()); !s.ok()) return s;
    if (p.values_size() > limits.max_in_values()) {
      return OverLimit("max_in_values", limits.max_in_values(),
                       absl::StrCat("the ", p.values_size(), " values of a filter"));
    }
    for (const v1::Value& v : p.values()) {
      if (absl::Status s = CheckValue(limits, "a filter's value", v); !s.ok()) return s;
    }
  }
  for (const v1::Aggregate& a : q.aggregates()) {
    if (absl::Status s = CheckString(limits, "an aggregate's field", a.field()); !s.ok()) {
      return s;
    }
    if (a.bins() > limits.max_histogram_bins()) {
      return OverLimit("max_histogram_bins", limits.max_histogram_bins(),
                       absl::StrCat("a histogram's ", a.bins(), " bins"));
    }
  }
  return absl::OkStatus();
}

CallGate::Ticket::~Ticket() {
  if (gate_ == nullptr) return;
  absl::MutexLock lock(&gate_->mu_);
  auto it = gate_->in_flight_.find(caller_);
  if (it != gate_->in_flight_.end() && --it->second <= 0) gate_->in_flight_.erase(it);
}

absl::StatusOr<CallGate::Ticket> CallGate::Enter(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  int& n = in_flight_[caller];
  if (n >= max_per_caller_) {
    return policy::WithRefusal(
        absl::ResourceExhaustedError(
            absl::StrCat("the caller already has ", n, " calls in flight: over the limit ",
                         "max_calls_per_caller = ", max_per_caller_, "; wait for one to finish")),
        {"max-calls-per-caller", "", ""});
  }
  ++n;
  return Ticket(this, caller);
}

const StormThrottle::Names& StormThrottle::Refusals() {
  static const Names* names = new Names{"refused questions", "refusals_per_window",
                                        "refusals-per-window", "refusal-throttle", "refusals"};
  return *names;
}

const StormThrottle::Names& StormThrottle::DryRuns() {
  static const Names* names = new Names{"dry runs", "dry_runs_per_window", "dry-runs-per-window",
                                        "dry-run-throttle", "dry runs"};
  return *names;
}

StormThrottle::~StormThrottle() {
  absl::MutexLock lock(&mu_);
  for (auto& [caller, w] : windows_) {
    if (w.throttled > 0) summarise_(caller, w.throttled, w.start, w.start + window_);
  }
}

bool StormThrottle::Roll(Window& w, absl::Time now, int64_t* throttled, absl::Time* from,
                         absl::Time* to) {
  if (now < w.start + window_) return false;
  bool storm = w.throttled > 0;
  *throttled = w.throttled;
  *from = w.start;
  *to = w.start + window_;
  w = Window{now, 0, 0};
  return storm;
}

absl::Status StormThrottle::Admit(const std::string& caller, absl::Time now) {
  return AdmitAndCount(caller, now, /*count=*/false);
}

absl::Status StormThrottle::Take(const std::string& caller, absl::Time now) {
  return AdmitAndCount(caller, now, /*count=*/true);
}

absl::Status StormThrottle::AdmitAndCount(const std::string& caller, absl::Time now, bool count) {
  int64_t throttled = 0;
  absl::Time from, to;
  bool storm = false;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    auto it = windows_.find(caller);
    if (it == windows_.end()) {
      if (!count) return absl::OkStatus();
      it = windows_.emplace(caller, Window{now, 0, 0}).first;
    }
    storm = Roll(it->second, now, &throttled, &from, &to);
    if (it->second.counted >= limit_) {
      ++it->second.throttled;
      status = policy::WithRefusal(
          absl::ResourceExhaustedError(absl::StrCat(
              "too many ", names_.calls, ": over the limit ", names_.limit, " = ", limit_, " per ",
              absl::ToInt64Seconds(window_), " s; ask again after the window ends")),
          {names_.rule, "", "", it->second.start + window_ - now});
    } else if (count) {
      ++it->second.counted;
    }
  }
  if (storm) summarise_(caller, throttled, from, to);
  return status;
}

void StormThrottle::Count(const std::string& caller, absl::Time now) {
  int64_t throttled = 0;
  absl::Time from, to;
  bool storm = false;
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = windows_.try_emplace(caller, Window{now, 0, 0});
    if (!inserted) storm = Roll(it->second, now, &throttled, &from, &to);
    ++it->second.counted;
  }
  if (storm) summarise_(caller, throttled, from, to);
}

}  // namespace fedshare::service
