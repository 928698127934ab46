// Predicates over whole blocks: for a selection vector of rows, which
// predicates each row fails, with the operator chosen once per block rather
// than per value. Include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_SELECTION_H_
#define FEDSHARE_NODE_ENGINE_SELECTION_H_

#include <cstddef>
#include <cstdint>

#include "node/engine/scan_plan.h"

namespace fedshare::engine::exec {

// For each k < n: if rows[k] of `block` fails `p` (a null fails every
// predicate), adds one to fails[k] and sets failed[k] to `index`.
void MarkPredicate(const CompiledPredicate& p, uint8_t index, const ColumnBlock& block,
                   const uint32_t* rows, size_t n, uint8_t* fails, uint8_t* failed);

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_SELECTION_H_
