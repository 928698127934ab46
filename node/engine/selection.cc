#include "node/engine/selection.h"

#include <algorithm>
#include <vector>

namespace fedshare::engine::exec {
namespace {

// Marks, for each selected row, whether it fails a predicate: fails[k] counts
// the predicates rows[k] fails, failed[k] is the last one it failed.
template <typename T, typename Pass>
void MarkFailures(const ColumnBlock::Column& col, const T* values, const uint32_t* rows, size_t n,
                  uint8_t index, Pass pass, uint8_t* fails, uint8_t* failed) {
  if (col.null_bits.empty()) {
    for (size_t k = 0; k < n; ++k) {
      const bool fail = !pass(values[rows[k]]);
      fails[k] += fail;
      failed[k] = fail ? index : failed[k];
    }
    return;
  }
  for (size_t k = 0; k < n; ++k) {
    const uint32_t r = rows[k];
    const bool fail = col.IsNull(r) || !pass(values[r]);
    fails[k] += fail;
    failed[k] = fail ? index : failed[k];
  }
}

// The same with the operator chosen once per block, not per value.
template <typename T>
void MarkByOp(Op op, const std::vector<T>& x, const ColumnBlock::Column& col, const T* values,
              const uint32_t* rows, size_t n, uint8_t index, uint8_t* fails, uint8_t* failed) {
  auto mark = [&](auto pass) { MarkFailures(col, values, rows, n, index, pass, fails, failed); };
  switch (op) {
    case v1::Predicate::EQ:
      mark([v = x[0]](T a) { return a == v; });
      break;
    case v1::Predicate::NE:
      mark([v = x[0]](T a) { return a != v; });
      break;
    case v1::Predicate::LT:
      mark([v = x[0]](T a) { return a < v; });
      break;
    case v1::Predicate::LE:
      mark([v = x[0]](T a) { return a <= v; });
      break;
    case v1::Predicate::GT:
      mark([v = x[0]](T a) { return a > v; });
      break;
    case v1::Predicate::GE:
      mark([v = x[0]](T a) { return a >= v; });
      break;
    case v1::Predicate::BETWEEN:
      mark([lo = x[0], hi = x[1]](T a) { return a >= lo && a <= hi; });
      break;
    case v1::Predicate::IN:
      mark([&x](T a) { return std::find(x.begin(), x.end(), a) != x.end(); });
      break;
    default:
      mark([](T) { return false; });
  }
}

// Every value in [lo, hi] fails `op` against `x`.
template <typename T>
bool RangeFails(Op op, const std::vector<T>& x, T lo, T hi) {
  switch (op) {
    case v1::Predicate::EQ:
      return x[0] < lo || x[0] > hi;
    case v1::Predicate::NE:
      return lo == hi && lo == x[0];
    case v1::Predicate::LT:
      return lo >= x[0];
    case v1::Predicate::LE:
      return lo > x[0];
    case v1::Predicate::GT:
      return hi <= x[0];
    case v1::Predicate::GE:
      return hi < x[0];
    case v1::Predicate::BETWEEN:
      return x[1] < lo || x[0] > hi || x[0] > x[1];
    case v1::Predicate::IN:
      return std::all_of(x.begin(), x.end(), [&](T v) { return v < lo || v > hi; });
    default:
      return true;  // Compare passes nothing
  }
}

}  // namespace

bool FailsEveryRow(const CompiledPredicate& p, const storage::ZoneMap::Column& z) {
  if (!z.has_values) return true;  // a null fails every predicate
  switch (p.type) {
    case v1::FieldSchema::CATEGORY: {
      const int64_t size = static_cast<int64_t>(p.category_match.size());
      for (int64_t code = std::max<int64_t>(z.min_int, 0); code <= z.max_int && code < size;
           ++code) {
        if (p.category_match[code]) return false;
      }
      return true;
    }
    case v1::FieldSchema::DOUBLE:
      return RangeFails(p.op, p.doubles, z.min_double, z.max_double);
    default:
      return RangeFails(p.op, p.ints, z.min_int, z.max_int);
  }
}

bool BlockCannotContribute(const Plan& plan, const storage::ZoneMap& z) {
  if (!z.present || plan.predicates.size() < 2) return false;
  int failing = 0;
  for (const CompiledPredicate& p : plan.predicates) {
    failing += p.field < static_cast<int>(z.columns.size()) && FailsEveryRow(p, z.columns[p.field]);
    if (failing >= 2) return true;
  }
  return false;
}

void MarkPredicate(const CompiledPredicate& p, uint8_t index, const ColumnBlock& block,
                   const uint32_t* rows, size_t n, uint8_t* fails, uint8_t* failed) {
  const ColumnBlock::Column& col = block.columns[p.field];
  switch (p.type) {
    case v1::FieldSchema::CATEGORY: {
      const std::vector<bool>& match = p.category_match;
      MarkFailures(
          col, col.ints.data(), rows, n, index,
          [&match](int64_t code) {
            return code >= 0 && static_cast<size_t>(code) < match.size() && match[code];
          },
          fails, failed);
      break;
    }
    case v1::FieldSchema::DOUBLE:
      MarkByOp(p.op, p.doubles, col, col.doubles.data(), rows, n, index, fails, failed);
      break;
    default:
      MarkByOp(p.op, p.ints, col, col.ints.data(), rows, n, index, fails, failed);
  }
}

// Gives each group a compact id: arithmetic over the codes when every group
// field is CATEGORY or BOOL and the combinations are few (then an id indexes

}  // namespace fedshare::engine::exec
