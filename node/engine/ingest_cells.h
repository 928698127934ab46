// Parsing and checking one cell of an ingested row (CSV text or a JSON
// scalar) against its field's schema: the per-cell part of ingest.cc.
#ifndef FEDSHARE_NODE_ENGINE_INGEST_CELLS_H_
#define FEDSHARE_NODE_ENGINE_INGEST_CELLS_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/types.pb.h"
#include "node/engine/csv.h"
#include "node/engine/json.h"

namespace fedshare::engine {

// One parsed cell before dictionary codes and ordinals are assigned.
struct Cell {
  bool null = true;
  int64_t i = 0;
  double d = 0;
  // CATEGORY value, or the subject id: a view of the row's text (valid while
  // the row is read) or of `own`.
  absl::string_view s;
  std::string own;  // an INT64 subject id as text
};

// Parses one CSV field's text (`quoted`: it was written "..."; `date_format`
// for DATE, default YYYY-MM-DD) into `cell`; returns the error for the row
// ("" when the cell is good).
std::string ParseTextCell(const v1::FieldSchema& f, absl::string_view text, bool quoted,
                          absl::string_view date_format, Cell* cell);

// As ParseTextCell, for a JSON scalar.
std::string ParseJsonCell(const v1::FieldSchema& f, const JsonScalar& v,
                          absl::string_view date_format, Cell* cell);

// Checks a parsed, non-null cell against the schema's constraints (bounds,
// declared categories); "" when it passes.
std::string CheckCell(const v1::FieldSchema& f, const Cell& cell,
                      const absl::flat_hash_set<std::string>* declared);

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_INGEST_CELLS_H_
