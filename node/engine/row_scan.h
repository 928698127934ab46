// The query executor's row path: one record at a time, with a hash map per
// cell from subject to its records. The path for a per-subject record bound
// (which records count depends on scan order) and for capturing every counted
// record. Include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_ROW_SCAN_H_
#define FEDSHARE_NODE_ENGINE_ROW_SCAN_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/engine/query_executor.h"
#include "node/engine/scan_plan.h"

namespace fedshare::engine::exec {

// As ExecuteQuery, for `plan` = MakePlan(reader, query); RESOURCE_EXHAUSTED
// when what it keeps grows past `memory_budget_bytes` (0: no budget). The
// removal figures are counted exactly and given up to `removal_cap`.
absl::StatusOr<Execution> ExecuteByRow(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent, const Plan& plan,
                                       int max_records_per_subject, ScannedRecords* records,
                                       absl::Span<const uint32_t> record_keys,
                                       int64_t memory_budget_bytes, int64_t removal_cap);

// The most ExecuteByRow charges its memory budget for this question
// (`keeps_records`: with `records`), whatever the records: from the
// dataset's records, the node's subjects and the dataset's dictionaries and
// the question's shape, never from which records its filter or consent keep.
// With a budget at least this, the scan is never refused for memory.
int64_t ByRowMemoryBound(const DatasetReader& reader, const v1::AggregateQuery& query,
                         const Plan& plan, bool keeps_records);

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_ROW_SCAN_H_
