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
  return OverQuestionMemoryBudget(budget_);
}

absl::Status OverQuestionMemoryBudget(int64_t budget_bytes) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the question could need more memory for its groups, distinct subjects and measures than "
      "limits.query_memory_budget_bytes = ",
      budget_bytes,
      " allows, judged on every record of the dataset whatever the filter and consent (so the "
      "refusal says nothing about which records match); nothing was released. Raise "
      "limits.query_memory_budget_bytes in the node config, or ask with fewer group-by fields, "
      "aggregates or filters"));
}

SpareBuffers& SpareBuffers::Get() {
  static SpareBuffers* spares = new SpareBuffers();
  return *spares;
}

namespace {

// Drops kept buffers from the back of `list` while `bytes` is over `most`.
template <typename T>
void DropWhileOver(std::vector<std::vector<T>>& list, size_t& bytes, size_t most) {
  while (bytes > most && !list.empty()) {
    bytes -= list.back().capacity() * sizeof(T);
    list.pop_back();
  }
}

}  // namespace

void SpareBuffers::DropOverMax() {
  DropWhileOver(u32_, bytes_, max_bytes_);
  DropWhileOver(u64_, bytes_, max_bytes_);
  DropWhileOver(doubles_, bytes_, max_bytes_);
}

}  // namespace fedshare::engine
