// Predicates over whole blocks: for a selection vector of rows, which
// predicates each row fails, with the operator chosen once per block rather
// than per value; and which blocks a zone map shows need not be read.
// Include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_SELECTION_H_
#define FEDSHARE_NODE_ENGINE_SELECTION_H_

#include <cstddef>
#include <cstdint>

#include "node/engine/scan_plan.h"
#include "policy/consent.h"

namespace fedshare::engine::exec {

// For each k < n: if rows[k] of `block` fails `p` (a null fails every
// predicate), adds one to fails[k] and sets failed[k] to `index`.
void MarkPredicate(const CompiledPredicate& p, uint8_t index, const ColumnBlock& block,
                   const uint32_t* rows, size_t n, uint8_t* fails, uint8_t* failed);

// For a question with the one predicate `p`: every row of `block` whose
// subject `consent` holds, in row order, into `counted` if it passes `p` and
// `dropped` if it fails (a null fails), in one pass over the block (what
// MarkPredicate over the consented rows would give, without a selection
// vector between). REQUIRES: counted and dropped hold block.rows each.
void SplitByPredicate(const CompiledPredicate& p, const ColumnBlock& block,
                      const policy::ConsentBitmap& consent, uint32_t* counted, size_t* n_counted,
                      uint32_t* dropped, size_t* n_dropped);

// Whether the zone map `z` of a block's column shows that every row fails
// `p` (every row null, or no value in [min, max] passes).
bool FailsEveryRow(const CompiledPredicate& p, const storage::ZoneMap::Column& z);

// Whether a block with zone map `z` can change nothing in an answer to a
// question planned as `plan`: it can only when at least two predicates fail
// every row, because a record failing exactly one predicate still counts in
// the predicate-removal figures (Execution::removed_by_predicate). False for
// a block without a zone map.
bool BlockCannotContribute(const Plan& plan, const storage::ZoneMap& z);

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_SELECTION_H_
