// The disclosure manifest of an answer (DESIGN §9): the agreement by id and
// version hash, the disclosure rules applied with their parameters (defaults
// filled in), the fields snapped to a grid, and how many cells each rule
// withheld. It goes into the answer and into its audit leaf, so what was
// checked is provable, not only what was released.
//
//   *result.mutable_manifest() = DisclosureManifest(agreement, normalized, schema, result);
#ifndef FEDSHARE_NODE_ENGINE_MANIFEST_H_
#define FEDSHARE_NODE_ENGINE_MANIFEST_H_

#include "fedshare/v1/query.pb.h"
#include "fedshare/v1/types.pb.h"

namespace fedshare::engine {

// `result`'s withholdings give the cells withheld by each rule.
v1::DisclosureManifest DisclosureManifest(const v1::Agreement& agreement,
                                          const v1::AggregateQuery& normalized,
                                          const v1::DatasetSchema& schema,
                                          const v1::AggregateResult& result);

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_MANIFEST_H_
