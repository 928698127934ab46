#include "node/engine/answerer_limits.h"

#include <algorithm>
#include <optional>

#include "node/common/status_macros.h"
#include "policy/agreement.h"
#include "policy/refusal.h"

namespace fedshare::engine {
namespace {

// Windows kept in memory once written; past this many, written ones are
// dropped and read again when next needed.
constexpr size_t kMaxKept = 4096;

std::string EncodeTimes(const std::vector<absl::Time>& times) {
  std::string out;
  for (absl::Time t : times) {
    uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(t));
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(ms >> (56 - 8 * i)));
  }
  return out;
}

std::vector<absl::Time> DecodeTimes(absl::string_view data) {
  std::vector<absl::Time> times;
  for (size_t off = 0; off + 8 <= data.size(); off += 8) {
    uint64_t ms = 0;
    for (int i = 0; i < 8; ++i) ms = (ms << 8) | static_cast<unsigned char>(data[off + i]);
    times.push_back(absl::FromUnixMillis(static_cast<int64_t>(ms)));
  }
  return times;
}

}  // namespace

absl::Status LimitWindows::Admit(const std::vector<Limit>& limits, const std::string& agreement_id,
                                 absl::string_view* rule) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (const Limit& limit : limits) {
    if (limit.limit <= 0) continue;
    *rule = limit.rule;
    auto it = windows_.find(limit.key);
    if (it == windows_.end()) {
      FEDSHARE_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                                storage_->Get(storage::ColumnFamily::kQueries, limit.key));
      it = windows_.emplace(limit.key, Window{DecodeTimes(stored.value_or("")), 0, 0}).first;
    }
    Window& w = it->second;
    const bool admitted = policy::RateWindowAdmit(w.times, now, limit.limit, limit.window);
    ++w.version;
    changed_.insert(limit.key);
    if (admitted) continue;
    // The window admits again once its oldest answer falls out of it.
    policy::RefusalInfo info{std::string(limit.rule), agreement_id, ""};
    if (!w.times.empty())
      info.retry_after = *std::min_element(w.times.begin(), w.times.end()) + limit.window - now;
    return policy::WithRefusal(absl::ResourceExhaustedError(limit.refusal), info);
  }
  return absl::OkStatus();
}

audit::AuditLog::GroupHook LimitWindows::GroupHook() {
  return {[this](storage::WriteBatch& batch) { AddChanged(batch); },
          [this](bool ok) { Written(ok); }};
}

void LimitWindows::AddChanged(storage::WriteBatch& batch) {
  absl::MutexLock lock(&mu_);
  for (const std::string& key : changed_) {
    const Window& w = windows_.at(key);
    batch.Put(storage::ColumnFamily::kQueries, key, EncodeTimes(w.times));
    writing_.emplace_back(key, w.version);
  }
  changed_.clear();
}

void LimitWindows::Written(bool ok) {
  absl::MutexLock lock(&mu_);
  for (auto& [key, version] : writing_) {
    if (ok) {
      Window& w = windows_.at(key);
      w.written_version = std::max(w.written_version, version);
    } else {
      changed_.insert(std::move(key));  // written with the next group
    }
  }
  writing_.clear();
  if (windows_.size() <= kMaxKept) return;
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (it->second.version == it->second.written_version && changed_.count(it->first) == 0) {
      windows_.erase(it++);
    } else {
      ++it;
    }
  }
}

}  // namespace fedshare::engine
