// The query executor's plan: a normalized question's predicates, group
// fields and measures bound to a dataset's columns, and the group key a
// record has. Shared by the row path (row_scan.h) and the block path
// (block_scan.h); include only from the executor's files.
#ifndef FEDSHARE_NODE_ENGINE_SCAN_PLAN_H_
#define FEDSHARE_NODE_ENGINE_SCAN_PLAN_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fedshare/v1/query.pb.h"
#include "node/engine/engine.h"
#include "node/storage/column_block.h"

namespace fedshare::engine::exec {

using storage::ColumnBlock;
using Op = v1::Predicate::Op;

// SUM, AVG, STDDEV and VARIANCE: aggregates with per-subject contributions.
bool IsDominanceKind(v1::AggregateKind kind);
// The dominance kinds and HISTOGRAM: aggregates that read a measure.
bool IsMeasureKind(v1::AggregateKind kind);

template <typename T>
bool Compare(Op op, T x, const std::vector<T>& values) {
  switch (op) {
    case v1::Predicate::EQ:
      return x == values[0];
    case v1::Predicate::NE:
      return x != values[0];
    case v1::Predicate::LT:
      return x < values[0];
    case v1::Predicate::LE:
      return x <= values[0];
    case v1::Predicate::GT:
      return x > values[0];
    case v1::Predicate::GE:
      return x >= values[0];
    case v1::Predicate::IN:
      return std::find(values.begin(), values.end(), x) != values.end();
    case v1::Predicate::BETWEEN:
      return x >= values[0] && x <= values[1];
    default:
      return false;
  }
}

// A predicate bound to a column, with its operands in the column's encoding.
struct CompiledPredicate {
  int field = 0;
  v1::FieldSchema::Type type = v1::FieldSchema::TYPE_UNSPECIFIED;
  Op op = v1::Predicate::OP_UNSPECIFIED;
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  std::vector<bool> category_match;  // CATEGORY: verdict per dictionary code

  bool Matches(const ColumnBlock& block, uint32_t row) const {
    const ColumnBlock::Column& col = block.columns[field];
    if (col.IsNull(row)) return false;
    switch (type) {
      case v1::FieldSchema::CATEGORY: {
        int64_t code = col.IntAt(row);
        return code >= 0 && static_cast<size_t>(code) < category_match.size() &&
               category_match[code];
      }
      case v1::FieldSchema::DOUBLE:
        return Compare(op, col.DoubleAt(row), doubles);
      default:
        return Compare(op, col.IntAt(row), ints);
    }
  }
};

// A group key without allocation: up to kMaxGroupBy values as 64-bit
// patterns (codes, integers, or a double's bits) and which are null.
struct GroupKey {
  std::array<int64_t, 3> values{};
  uint8_t nulls = 0;

  bool operator==(const GroupKey& o) const { return values == o.values && nulls == o.nulls; }
  template <typename H>
  friend H AbslHashValue(H h, const GroupKey& k) {
    return H::combine(std::move(h), k.values[0], k.values[1], k.values[2], k.nulls);
  }
};

struct Measure {
  int field = -1;
  bool is_double = false;
  bool clamp = false;
  double lower = 0;
  double upper = 0;
};

// A group field: its column, and its grid when GROUP BY groups by bucket.
struct GroupField {
  int field = -1;
  v1::FieldSchema::Type type = v1::FieldSchema::TYPE_UNSPECIFIED;
  double width = 0;  // policy::GridWidth; 0 = group by value
};

// Part `part` of `key` as the answer shows it (unset kind for null).
v1::Value KeyValue(const DatasetReader& reader, const GroupField& g, const GroupKey& key,
                   size_t part);
// Sets part `part` of `key` from `row` of `col`.
void SetKeyPart(GroupKey& key, size_t part, const GroupField& g, const ColumnBlock::Column& col,
                uint32_t row);

// What a question reads: its predicates, group fields and measures bound to
// columns, and which columns to decode.
struct Plan {
  std::vector<CompiledPredicate> predicates;
  std::vector<GroupField> group_fields;
  std::vector<Measure> measures;  // per aggregate; field -1 without a measure
  std::vector<bool> columns;      // per schema field: decoded
};

// INVALID_ARGUMENT when the question names a field the dataset lacks.
absl::StatusOr<Plan> MakePlan(const DatasetReader& reader, const v1::AggregateQuery& query);

// The most groups a question's records can fall in, from the whole dataset:
// the product over its group fields of a CATEGORY's dictionary values plus
// null, 3 for a BOOL (true, false, null), and the dataset's records for any
// other field or when fewer. 1 without GROUP BY. Never depends on the
// question's filter or consent (query_executor.h, the memory bound).
uint64_t GroupsBound(const DatasetReader& reader, const Plan& plan);

}  // namespace fedshare::engine::exec

#endif  // FEDSHARE_NODE_ENGINE_SCAN_PLAN_H_
