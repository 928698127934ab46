#include "policy/question.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace fedshare::policy {
namespace {

// Deterministic encoding: fixed field order, each string length-prefixed,
// integers as 8 big-endian bytes, doubles by bit pattern (-0.0 as 0.0).
class Encoder {
 public:
  void U64(uint64_t v) {
    for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F64(double v) {
    if (v == 0) v = 0.0;
    uint64_t bits;
    static_assert(sizeof(bits) == sizeof(v));
    std::memcpy(&bits, &v, sizeof(bits));
    U64(bits);
  }
  void Str(absl::string_view s) {
    U64(s.size());
    out_.append(s.data(), s.size());
  }
  void Val(const v1::Value& v) {
    U64(static_cast<uint64_t>(v.kind_case()));
    switch (v.kind_case()) {
      case v1::Value::kIntValue:
        I64(v.int_value());
        break;
      case v1::Value::kDoubleValue:
        F64(v.double_value());
        break;
      case v1::Value::kBoolValue:
        U64(v.bool_value() ? 1 : 0);
        break;
      case v1::Value::kStringValue:
        Str(v.string_value());
        break;
      default:
        break;
    }
  }
  void Pred(const v1::Predicate& p) {
    Str(p.field());
    U64(static_cast<uint64_t>(p.op()));
    U64(p.values_size());
    for (const v1::Value& v : p.values()) Val(v);
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

std::string ValueKey(const v1::Value& v) {
  Encoder e;
  e.Val(v);
  return e.bytes();
}

std::string PredicateKey(const v1::Predicate& p) {
  Encoder e;
  e.Pred(p);
  return e.bytes();
}

v1::Value CanonicalValue(const v1::Value& v) {
  v1::Value out = v;
  if (out.has_double_value() && out.double_value() == 0) out.set_double_value(0.0);
  return out;
}

}  // namespace

CanonicalQuestion CanonicalizeQuestion(const v1::AggregateQuery& query) {
  v1::AggregateQuery out;
  out.set_dataset(query.dataset());
  out.set_purpose(query.purpose());

  std::vector<std::pair<std::string, v1::Predicate>> where;
  for (const v1::Predicate& p : query.where()) {
    v1::Predicate c;
    c.set_field(p.field());
    c.set_op(p.op());
    if (p.op() == v1::Predicate::IN) {
      std::vector<std::pair<std::string, v1::Value>> values;
      for (const v1::Value& v : p.values()) {
        v1::Value cv = CanonicalValue(v);
        values.emplace_back(ValueKey(cv), std::move(cv));
      }
      std::sort(values.begin(), values.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      values.erase(std::unique(values.begin(), values.end(),
                               [](const auto& a, const auto& b) { return a.first == b.first; }),
                   values.end());
      if (values.size() == 1) c.set_op(v1::Predicate::EQ);
      for (auto& [key, v] : values) *c.add_values() = std::move(v);
    } else {
      for (const v1::Value& v : p.values()) *c.add_values() = CanonicalValue(v);
    }
    std::string key = PredicateKey(c);
    where.emplace_back(std::move(key), std::move(c));
  }
  // Predicates are ANDed, so their order and repetition carry no meaning.
  std::sort(where.begin(), where.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  where.erase(std::unique(where.begin(), where.end(),
                          [](const auto& a, const auto& b) { return a.first == b.first; }),
              where.end());
  for (auto& [key, p] : where) *out.add_where() = std::move(p);

  for (const std::string& g : query.group_by()) out.add_group_by(g);
  for (const v1::Aggregate& a : query.aggregates()) {
    v1::Aggregate* c = out.add_aggregates();
    c->set_kind(a.kind());
    c->set_field(a.field());
    if (a.kind() == v1::HISTOGRAM) {
      c->set_lo(a.lo() == 0 ? 0.0 : a.lo());
      c->set_hi(a.hi() == 0 ? 0.0 : a.hi());
      c->set_bins(a.bins());
    }
  }
  return CanonicalQuestion(std::move(out));
}

v1::AggregateQuery QuestionShape(const CanonicalQuestion& question) {
  v1::AggregateQuery shape = question.query();
  for (v1::Predicate& p : *shape.mutable_where()) p.clear_values();
  return shape;
}

std::string QuestionHash(const CanonicalQuestion& question) {
  const v1::AggregateQuery& q = question.query();
  Encoder e;
  e.Str("fedshare.v1.question");
  e.Str(q.dataset());
  e.Str(q.purpose());
  e.U64(q.where_size());
  for (const v1::Predicate& p : q.where()) e.Pred(p);
  e.U64(q.group_by_size());
  for (const std::string& g : q.group_by()) e.Str(g);
  e.U64(q.aggregates_size());
  for (const v1::Aggregate& a : q.aggregates()) {
    e.U64(static_cast<uint64_t>(a.kind()));
    e.Str(a.field());
    e.F64(a.lo());
    e.F64(a.hi());
    e.I64(a.bins());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(e.bytes().data(), e.bytes().size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    return std::string();
  }
  return std::string(reinterpret_cast<const char*>(digest), len);
}

}  // namespace fedshare::policy
