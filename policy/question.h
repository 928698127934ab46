// The canonical form of a question, and the one hash every org computes over
// it (DESIGN §9: "canonical question hash").
//
// A question is hashed only in canonical form, and only CanonicalizeQuestion
// makes one, so nothing can hash a question as it happened to arrive:
//
//   const policy::CanonicalQuestion asked = policy::CanonicalizeQuestion(query);
//   entry.set_question_hash(policy::QuestionHash(asked));
//
// Canonicalization needs no schema, so the asking node and every node it asks
// compute the same hash for the same question: the foundation's audit entry
// for a fan-out and each partner's entry for its part carry one hash. What a
// partner then applies (ranges snapped to its own schema's grid) may differ
// between partners; that is recorded beside the hash (AuditEntry.applied_where),
// not in it.
#ifndef FEDSHARE_POLICY_QUESTION_H_
#define FEDSHARE_POLICY_QUESTION_H_

#include <string>

#include "fedshare/v1/query.pb.h"

namespace fedshare::policy {

// A question in canonical form. Immutable; copyable.
class CanonicalQuestion {
 public:
  const v1::AggregateQuery& query() const { return query_; }

 private:
  explicit CanonicalQuestion(v1::AggregateQuery query) : query_(std::move(query)) {}
  friend CanonicalQuestion CanonicalizeQuestion(const v1::AggregateQuery& query);

  v1::AggregateQuery query_;
};

// The canonical form of `query`, whatever its validity (validation against a
// schema is NormalizeQuery's job): query_id cleared; IN values sorted and
// deduplicated, IN with one value becomes EQ; predicates (ANDed) sorted and
// deduplicated; lo/hi/bins cleared on aggregates other than HISTOGRAM; -0.0
// becomes 0.0. Values keep the kind they were sent with (no schema says
// otherwise). dataset, purpose, group_by and aggregate order are kept.
// Applying it to its own output changes nothing.
CanonicalQuestion CanonicalizeQuestion(const v1::AggregateQuery& query);

// SHA-256 (32 bytes) of a deterministic encoding of `question`: equal
// questions hash equal, whichever org computes it. The encoding is
// length-prefixed fields in a fixed order (not protobuf serialization),
// tagged "fedshare.v1.question"; changing it changes every stored hash and
// repeat-limit key (docs/storage-format.md).
std::string QuestionHash(const CanonicalQuestion& question);

// What an audit entry may keep of `question` before any schema has vetted
// it: dataset, purpose, group-by, aggregates, and each predicate's field and
// operator with its values dropped. A value asked of a SUBJECT or PRIVATE
// field could be a subject id or private data; predicate values are recorded
// only as applied, after NormalizeQuery has checked the fields.
v1::AggregateQuery QuestionShape(const CanonicalQuestion& question);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_QUESTION_H_
