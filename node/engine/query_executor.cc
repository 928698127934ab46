#include "node/engine/query_executor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
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

absl::Status TooManyCells(int max_cells) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the question's records fall into more than ", max_cells,
      " cells, over limits.max_answer_cells = ", max_cells,
      "; nothing was released. Ask with fewer or coarser group-by fields or a narrower filter, "
      "or raise limits.max_answer_cells in the node config"));
}

namespace {

exec::ScanOptions OptionsFor(const DatasetReader& reader, int64_t removal_cap) {
  exec::ScanOptions options;
  options.pool = reader.scan_pool();
  options.memory_budget_bytes = reader.query_memory_budget_bytes();
  options.max_cells = reader.max_answer_cells();
  options.removal_cap = std::max<int64_t>(1, removal_cap);
  return options;
}

// Admitted or refused before any record is read, on what the question could
// keep over every record of the dataset: were it refused as the scan grows,
// the refusal would tell how many records matched, and an asker could move a
// filter until one person's records (or consent) tipped it.
absl::Status Admit(const DatasetReader& reader, const v1::AggregateQuery& query,
                   uint32_t subject_ordinals, const exec::Plan& plan,
                   const exec::ScanOptions& options, bool by_row, bool keeps_records) {
  const int64_t budget = options.memory_budget_bytes;
  if (budget <= 0) return absl::OkStatus();
  const int64_t bound =
      by_row ? exec::ByRowMemoryBound(reader, query, plan, keeps_records)
             : exec::ByBlockMemoryBound(reader, query, subject_ordinals, plan, options);
  return bound > budget ? OverQuestionMemoryBudget(budget) : absl::OkStatus();
}

}  // namespace

absl::Status AdmitQuery(const DatasetReader& reader, const v1::AggregateQuery& query,
                        uint32_t subject_ordinals, int max_records_per_subject, bool keeps_records,
                        int64_t removal_cap) {
  FEDSHARE_ASSIGN_OR_RETURN(exec::Plan plan, exec::MakePlan(reader, query));
  return Admit(reader, query, subject_ordinals, plan, OptionsFor(reader, removal_cap),
               max_records_per_subject > 0 || keeps_records, keeps_records);
}

absl::StatusOr<Execution> ExecuteQuery(const DatasetReader& reader, const v1::AggregateQuery& query,
                                       const policy::ConsentBitmap& consent,
                                       int max_records_per_subject, ScannedRecords* records,
                                       absl::Span<const uint32_t> record_keys,
                                       int64_t removal_cap) {
  FEDSHARE_ASSIGN_OR_RETURN(exec::Plan plan, exec::MakePlan(reader, query));
  const exec::ScanOptions options = OptionsFor(reader, removal_cap);
  const int max_cells = options.max_cells;
  const int64_t budget = options.memory_budget_bytes;
  const bool by_row = max_records_per_subject > 0 || records != nullptr;
  FEDSHARE_RETURN_IF_ERROR(
      Admit(reader, query, consent.size(), plan, options, by_row, records != nullptr));
  absl::StatusOr<Execution> execution;
  if (by_row) {
    execution = exec::ExecuteByRow(reader, query, consent, plan, max_records_per_subject, records,
                                   record_keys, budget, options.removal_cap);
  } else {
    execution = exec::ExecuteByBlock(reader, query, consent, plan, record_keys, options);
  }
  // The block scan stops as soon as one of its ranges passes the bound;
  // the ranges together, or the row path, are checked here.
  if (execution.ok() && max_cells > 0 && execution->cells.size() > static_cast<size_t>(max_cells)) {
    return TooManyCells(max_cells);
  }
  return execution;
}

}  // namespace fedshare::engine
