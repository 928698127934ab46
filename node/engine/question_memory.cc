#include "node/engine/question_memory.h"

#include "absl/strings/str_cat.h"

namespace fedshare::engine {

absl::Status QuestionMemory::Charge(int64_t bytes) {
  if (!budgeted()) return absl::OkStatus();
  used_.fetch_add(bytes, std::memory_order_relaxed);
  return status();
}

absl::Status QuestionMemory::status() const {
  const int64_t used = used_.load(std::memory_order_relaxed);
  if (!budgeted() || used <= budget_) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the question needs more memory for its groups and distinct subjects than "
      "limits.query_memory_budget_bytes = ",
      budget_, " allows (", used,
      " bytes when it stopped); nothing was released. Raise limits.query_memory_budget_bytes "
      "in the node config, or ask with fewer groups or a narrower filter"));
}

SpareBuffers& SpareBuffers::Get() {
  static SpareBuffers* spares = new SpareBuffers();
  return *spares;
}

}  // namespace fedshare::engine
