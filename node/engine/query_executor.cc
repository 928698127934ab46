#include "node/engine/query_executor.h"

#include <algorithm>

#include "node/common/status_macros.h"
#include "node/engine/block_scan.h"
#include "node/engine/question_memory.h"
#include "node/engine/row_scan.h"
#include "node/engine/scan_plan.h"

namespace fedshare::engine {

Execution::~Execution() {
  SpareBuffers& spares = SpareBuffers::Get();
  for (ExecutedCell& cell : cells) {
    spares.Give(cell.stats.subject_ordinals);
    spares.Give(cell.stats.subject_contributions);
  }
}

absl::StatusOr<Execution> ExecuteQuery(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent,
                                       int max_records_per_subject, ScannedRecords* records,
                                       absl::Span<const uint32_t> record_keys,
                                       int64_t removal_cap) {
  FEDSHARE_ASSIGN_OR_RETURN(exec::Plan plan, exec::MakePlan(reader, query));
  removal_cap = std::max<int64_t>(1, removal_cap);
  if (max_records_per_subject > 0 || records != nullptr) {
    return exec::ExecuteByRow(reader, query, consent, plan, max_records_per_subject, records,
                              record_keys, reader.query_memory_budget_bytes(), removal_cap);
  }
  exec::ScanOptions options;
  options.pool = reader.scan_pool();
  options.memory_budget_bytes = reader.query_memory_budget_bytes();
  options.removal_cap = removal_cap;
  return exec::ExecuteByBlock(reader, query, consent, plan, record_keys, options);
}

}  // namespace fedshare::engine
