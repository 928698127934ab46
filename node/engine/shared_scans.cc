#include "node/engine/shared_scans.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fedshare::engine {

SharedScan::~SharedScan() {
  for (size_t i = 0; i < stats.size() && i < execution.cells.size(); ++i) {
    execution.cells[i].stats = std::move(stats[i]);
  }
}

std::string ScanKey(absl::string_view asker_org, absl::string_view applied_hash,
                    int max_records_per_subject, int64_t removal_cap,
                    uint32_t cell_key_table_size) {
  // Lengths first, so that no two different tuples make one key.
  return absl::StrCat(asker_org.size(), ":", asker_org, applied_hash.size(), ":", applied_hash,
                      max_records_per_subject, ":", removal_cap, ":", cell_key_table_size);
}

absl::StatusOr<std::shared_ptr<const SharedScan>> SharedScans::Flight::Await(
    const std::function<bool()>& cancelled, absl::Duration poll) {
  absl::MutexLock lock(&mu_);
  const absl::Time start = absl::Now();
  while (!mu_.AwaitWithTimeout(absl::Condition(&done_), poll)) {
    if (cancelled && cancelled()) {
      return absl::CancelledError(absl::StrCat(
          "the caller gave up after waiting ",
          absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
          " for the figures of the same question asked just before"));
    }
  }
  return result_;
}

std::shared_ptr<SharedScans::Flight> SharedScans::Begin(
    std::string key, uint64_t generation, std::shared_ptr<const policy::ConsentBitmap> consent) {
  auto flight = std::make_shared<Flight>();
  flight->key_ = std::move(key);
  flight->generation_ = generation;
  flight->consent_ = std::move(consent);
  absl::MutexLock lock(&mu_);
  running_[flight->key_] = flight;
  return flight;
}

void SharedScans::Publish(const std::shared_ptr<Flight>& flight,
                          absl::StatusOr<std::shared_ptr<const SharedScan>> scan) {
  {
    absl::MutexLock lock(&mu_);
    auto it = running_.find(flight->key_);
    if (it != running_.end() && it->second == flight) running_.erase(it);
  }
  absl::MutexLock lock(&flight->mu_);
  flight->result_ = std::move(scan);
  flight->done_ = true;
}

bool SharedScans::Running(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  return running_.contains(key);
}

std::shared_ptr<SharedScans::Flight> SharedScans::Find(const std::string& key, uint64_t generation,
                                                       const policy::ConsentBitmap& consent) const {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(key);
  if (it == running_.end()) return nullptr;
  const Flight& flight = *it->second;
  if (flight.generation_ != generation || *flight.consent_ != consent) return nullptr;
  ++joined_;
  return it->second;
}

size_t SharedScans::running() const {
  absl::MutexLock lock(&mu_);
  return running_.size();
}

uint64_t SharedScans::joined() const {
  absl::MutexLock lock(&mu_);
  return joined_;
}

}  // namespace fedshare::engine
