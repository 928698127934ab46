#include "node/engine/selection.h"

#include <algorithm>
#include <type_traits>
#include <vector>

namespace fedshare::engine::exec {
namespace {

// Marks, for each selected row, whether it fails a predicate: fails[k] counts
// the predicates rows[k] fails, failed[k] is the last one it failed.
template <typename Values, typename Pass>
void MarkFailures(const ColumnBlock::Column& col, const Values& values, const uint32_t* rows,
                  size_t n, uint8_t index, Pass pass, uint8_t* fails, uint8_t* failed) {
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

// Calls visit(pass) with `p`'s test of one value of its column as a
// function object of its own type, so that the loop visit runs is compiled
// once per operator: the operator is chosen once per block, not per value.
template <typename Visit>
void WithPass(const CompiledPredicate& p, const ColumnBlock::Column& col, Visit visit) {
  // `values` is a pointer or an in-place reader (storage::WithInts), of T.
  auto by_op = [&](const auto& x, const auto& values) {
    using T = typename std::remove_reference_t<decltype(x)>::value_type;
    switch (p.op) {
      case v1::Predicate::EQ:
        return visit(values, [v = x[0]](T a) { return a == v; });
      case v1::Predicate::NE:
        return visit(values, [v = x[0]](T a) { return a != v; });
      case v1::Predicate::LT:
        return visit(values, [v = x[0]](T a) { return a < v; });
      case v1::Predicate::LE:
        return visit(values, [v = x[0]](T a) { return a <= v; });
      case v1::Predicate::GT:
        return visit(values, [v = x[0]](T a) { return a > v; });
      case v1::Predicate::GE:
        return visit(values, [v = x[0]](T a) { return a >= v; });
      case v1::Predicate::BETWEEN:
        return visit(values, [lo = x[0], hi = x[1]](T a) { return a >= lo && a <= hi; });
      case v1::Predicate::IN:
        return visit(values, [&x](T a) { return std::find(x.begin(), x.end(), a) != x.end(); });
      default:
        return visit(values, [](T) { return false; });
    }
  };
  switch (p.type) {
    case v1::FieldSchema::CATEGORY: {
      const std::vector<bool>& match = p.category_match;
      return storage::WithInts(col, [&](const auto& values) {
        return visit(values, [&match](int64_t code) {
          return code >= 0 && static_cast<size_t>(code) < match.size() && match[code];
        });
      });
    }
    case v1::FieldSchema::DOUBLE:
      return storage::WithDoubles(col,
                                  [&](const auto& values) { return by_op(p.doubles, values); });
    default:
      return storage::WithInts(col, [&](const auto& values) { return by_op(p.ints, values); });
  }
}

// Every row of `block` whose subject consented, split in row order into
// those that pass (`counted`) and those that fail (`dropped`); no branch per
// row.
template <typename Values, typename Pass>
void SplitRows(const ColumnBlock& block, const ColumnBlock::Column& col, const Values& values,
               const policy::ConsentBitmap& consent, Pass pass, uint32_t* counted,
               size_t* n_counted, uint32_t* dropped, size_t* n_dropped) {
  const uint32_t* subjects = block.subjects.data();
  size_t c = 0, d = 0;
  if (col.null_bits.empty()) {
    for (uint32_t r = 0; r < block.rows; ++r) {
      const bool in = consent.Test(subjects[r]);
      const bool ok = pass(values[r]);
      counted[c] = r;
      c += in & ok;
      dropped[d] = r;
      d += in & !ok;
    }
  } else {
    for (uint32_t r = 0; r < block.rows; ++r) {
      const bool in = consent.Test(subjects[r]);
      const bool ok = !col.IsNull(r) && pass(values[r]);  // a null fails
      counted[c] = r;
      c += in & ok;
      dropped[d] = r;
      d += in & !ok;
    }
  }
  *n_counted = c;
  *n_dropped = d;
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
  WithPass(p, col, [&](const auto& values, auto pass) {
    MarkFailures(col, values, rows, n, index, pass, fails, failed);
  });
}

void SplitByPredicate(const CompiledPredicate& p, const ColumnBlock& block,
                      const policy::ConsentBitmap& consent, uint32_t* counted, size_t* n_counted,
                      uint32_t* dropped, size_t* n_dropped) {
  const ColumnBlock::Column& col = block.columns[p.field];
  WithPass(p, col, [&](const auto& values, auto pass) {
    SplitRows(block, col, values, consent, pass, counted, n_counted, dropped, n_dropped);
  });
}

// Gives each group a compact id: arithmetic over the codes when every group
// field is CATEGORY or BOOL and the combinations are few (then an id indexes

}  // namespace fedshare::engine::exec
