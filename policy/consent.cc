#include "policy/consent.h"

#include <algorithm>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "policy/ids.h"

namespace fedshare::policy {
namespace {

bool IsNegative(ConsentEventType type) {
  return type != ConsentEventType::kGiven && type != ConsentEventType::kRenewed;
}

// An objection, which OPT_OUT honours too; the other negatives (EXPIRED,
// INVALIDATED) only say a consent no longer holds.
bool IsObjection(ConsentEventType type) {
  return type == ConsentEventType::kWithdrawn || type == ConsentEventType::kRefused ||
         type == ConsentEventType::kRevoked;
}

bool InScope(const ConsentEvent& e, absl::string_view org) {
  return e.scope.empty() || std::find(e.scope.begin(), e.scope.end(), org) != e.scope.end();
}

// The state of one purpose at the question's time: its latest events, which
// may be several when they share a time.
struct Latest {
  absl::Time time = absl::InfinitePast();
  bool seen = false;
  std::optional<ConsentEventType> negative;  // a negative event at `time`
  std::vector<const ConsentEvent*> positives;
};

Latest LatestFor(absl::string_view purpose, absl::Span<const ConsentEvent> events, absl::Time now) {
  Latest latest;
  for (const ConsentEvent& e : events) {
    if (e.purpose != purpose || e.time > now) continue;
    if (!latest.seen || e.time > latest.time) {
      latest = Latest{e.time, true, std::nullopt, {}};
    } else if (e.time < latest.time) {
      continue;
    }
    if (IsNegative(e.type)) {
      // Objections outrank the other negatives: OPT_OUT honours only those.
      if (!latest.negative || !IsObjection(*latest.negative)) {
        latest.negative = e.type;
      }
    } else {
      latest.positives.push_back(&e);
    }
  }
  return latest;
}

// The decision and the earliest time after `now` at which it could change
// without a new event being recorded.
struct Evaluation {
  bool counts = false;
  absl::Time changes_at = absl::InfiniteFuture();
};

Evaluation Evaluate(v1::ConsentBasis basis, const PurposeTree& tree,
                    absl::Span<const ConsentEvent> events, const ConsentQuestion& q) {
  Evaluation result;
  if (basis == v1::NOT_PERSONAL) {
    result.counts = true;
    return result;
  }
  const bool opt_out = basis == v1::OPT_OUT;
  // An unknown purpose cannot be decided: deny whatever the basis.
  const std::vector<std::string> covering = tree.CoveringPurposes(q.purpose);
  if (covering.empty()) return result;

  bool any_negative = false;
  bool any_valid_positive = false;
  for (const std::string& purpose : covering) {
    for (const ConsentEvent& e : events) {
      if (e.purpose == purpose && e.time > q.now) {
        result.changes_at = std::min(result.changes_at, e.time);
      }
    }
    const Latest latest = LatestFor(purpose, events, q.now);
    if (!latest.seen) continue;
    if (latest.negative) {
      if (!opt_out || IsObjection(*latest.negative)) any_negative = true;
      continue;
    }
    for (const ConsentEvent* e : latest.positives) {
      if (e->valid_until <= q.now) continue;
      // Expiry never changes an OPT_OUT decision; only future-dated events do.
      if (!opt_out) result.changes_at = std::min(result.changes_at, e->valid_until);
      if (InScope(*e, q.asker_org)) any_valid_positive = true;
    }
  }
  result.counts = opt_out ? !any_negative : (!any_negative && any_valid_positive);
  return result;
}

}  // namespace

absl::StatusOr<ConsentEventType> ParseConsentEventType(absl::string_view text) {
  const std::string upper = absl::AsciiStrToUpper(text);
  if (upper == "GIVEN") return ConsentEventType::kGiven;
  if (upper == "RENEWED") return ConsentEventType::kRenewed;
  if (upper == "WITHDRAWN") return ConsentEventType::kWithdrawn;
  if (upper == "REFUSED") return ConsentEventType::kRefused;
  if (upper == "EXPIRED") return ConsentEventType::kExpired;
  if (upper == "REVOKED") return ConsentEventType::kRevoked;
  if (upper == "INVALIDATED") return ConsentEventType::kInvalidated;
  return absl::InvalidArgumentError(
      absl::StrCat("consent event '", text,
                   "' is unknown: use GIVEN, RENEWED, WITHDRAWN, REFUSED, EXPIRED, REVOKED or "
                   "INVALIDATED"));
}

absl::string_view ConsentEventTypeName(ConsentEventType type) {
  switch (type) {
    case ConsentEventType::kGiven:
      return "GIVEN";
    case ConsentEventType::kRenewed:
      return "RENEWED";
    case ConsentEventType::kWithdrawn:
      return "WITHDRAWN";
    case ConsentEventType::kRefused:
      return "REFUSED";
    case ConsentEventType::kExpired:
      return "EXPIRED";
    case ConsentEventType::kRevoked:
      return "REVOKED";
    case ConsentEventType::kInvalidated:
      return "INVALIDATED";
  }
  return "UNKNOWN";
}

absl::StatusOr<std::vector<std::string>> ParseConsentScope(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  std::vector<std::string> orgs;
  if (text.empty() || text == "*") return orgs;
  for (absl::string_view piece : absl::StrSplit(text, ';')) {
    piece = absl::StripAsciiWhitespace(piece);
    if (!IsValidOrgId(piece)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "consent scope '", text, "' names invalid org id '", piece,
          "': use org ids of 1 to 63 of [a-z0-9-] separated by ';', or '*' for any member"));
    }
    if (std::find(orgs.begin(), orgs.end(), piece) == orgs.end()) orgs.emplace_back(piece);
  }
  return orgs;
}

bool SubjectCounts(v1::ConsentBasis basis, const PurposeTree& tree,
                   absl::Span<const ConsentEvent> events, const ConsentQuestion& question) {
  return Evaluate(basis, tree, events, question).counts;
}

ConsentBitmap::ConsentBitmap(uint32_t size, bool value)
    : size_(size), words_((uint64_t{size} + 63) / 64, value ? ~uint64_t{0} : 0) {
  if (value && (size & 63) != 0) words_.back() &= (uint64_t{1} << (size & 63)) - 1;
}

void ConsentBitmap::Set(uint32_t ordinal, bool value) {
  if (ordinal >= size_) return;
  const uint64_t bit = uint64_t{1} << (ordinal & 63);
  if (value) {
    words_[ordinal >> 6] |= bit;
  } else {
    words_[ordinal >> 6] &= ~bit;
  }
}

uint64_t ConsentBitmap::Count() const {
  uint64_t n = 0;
  for (uint64_t w : words_) n += static_cast<uint64_t>(__builtin_popcountll(w));
  return n;
}

ConsentBitmapBuilder::ConsentBitmapBuilder(v1::ConsentBasis basis, const PurposeTree& tree,
                                           ConsentQuestion question, uint32_t num_subjects)
    : basis_(basis),
      tree_(tree),
      question_(std::move(question)),
      bitmap_(num_subjects, Evaluate(basis, tree, {}, question_).counts) {}

void ConsentBitmapBuilder::AddSubject(uint32_t ordinal, absl::Span<const ConsentEvent> events) {
  const Evaluation e = Evaluate(basis_, tree_, events, question_);
  bitmap_.Set(ordinal, e.counts);
  valid_until_ = std::min(valid_until_, e.changes_at);
}

ConsentBitmap ConsentBitmapBuilder::Finish() && { return std::move(bitmap_); }

}  // namespace fedshare::policy
