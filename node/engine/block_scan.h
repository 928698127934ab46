// The query executor's block path, for questions without a per-subject
// record bound that capture no records: each block is filtered into
// selection vectors (consent, then each predicate over its whole column),
// groups become compact ids, and each aggregate runs over the selected rows
// of its column. Each cell folds its records per subject as they come while
// subjects arrive in ascending ordinal order, and sorts only the records that
// do not (cell_stats.h BlockCell); no hash map per counted record (the owners
// of dropped records go into small sets that stop at the removal cap).
// Include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_BLOCK_SCAN_H_
#define FEDSHARE_NODE_ENGINE_BLOCK_SCAN_H_

#include <cstdint>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/engine/query_executor.h"
#include "node/engine/scan_plan.h"

namespace fedshare::engine {
class ScanPool;
}  // namespace fedshare::engine

namespace fedshare::engine::exec {

struct ScanOptions {
  // Borrowed; null scans on the caller's thread. With a pool, the blocks are
  // split into ranges scanned on the pool and merged in block order: the
  // answer is the same to the last bit. The question takes a
  // ScanPool::Share: while other questions scan, it may get one thread and
  // scan on the caller's.
  ScanPool* pool = nullptr;
  int64_t memory_budget_bytes = 0;  // QuestionMemory; 0: no budget
  int max_cells = 0;                // TooManyCells past it; 0: no bound
  // The predicate-removal figures are counted up to this (ExecuteQuery's
  // `removal_cap`); at least 1.
  int64_t removal_cap = std::numeric_limits<int64_t>::max();
};

// As ExecuteQuery without a record bound and without `records`, for
// `plan` = MakePlan(reader, query). Blocks whose zone maps show they cannot
// change the answer are not read (BlockCannotContribute).
absl::StatusOr<Execution> ExecuteByBlock(const DatasetReader& reader,
                                         const v1::AggregateQuery& query,
                                         const policy::ConsentBitmap& consent, const Plan& plan,
                                         absl::Span<const uint32_t> record_keys,
                                         const ScanOptions& options);

// The most ExecuteByBlock charges its memory budget for this question,
// whatever the records: from the dataset's records, the node's subject
// ordinals (`subject_ordinals`, the consent bitmap's size) and the
// dictionaries, the question's shape, and the pool's threads, never from
// which records its filter or consent keep. With a budget at least this, the
// scan is never refused for memory.
int64_t ByBlockMemoryBound(const DatasetReader& reader, const v1::AggregateQuery& query,
                           uint32_t subject_ordinals, const Plan& plan, const ScanOptions& options);

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_BLOCK_SCAN_H_
