// Consent evaluation (DESIGN §6): which subjects' records count for a question.
//
// Each subject has, per purpose, an append-only list of consent events. For a
// question with purpose P asked by org A at time T, a subject of an OPT_IN
// dataset counts if and only if
//   - among the purposes covering P (P and its ancestors), at least one has as
//     its latest event (at or before T) a GIVEN or RENEWED event that is not
//     expired at T and whose scope includes A, and
//   - no covering purpose has as its latest event a negative one: WITHDRAWN,
//     REFUSED, REVOKED, EXPIRED or INVALIDATED (an explicit "no" for P or a
//     broader purpose wins).
// OPT_OUT: a subject counts unless some covering purpose's latest event is
// WITHDRAWN, REFUSED or REVOKED (whatever its scope): an objection. EXPIRED
// and INVALIDATED say a consent no longer holds, which an OPT_OUT basis never
// relied on. NOT_PERSONAL: every subject counts.
// Events later than T are ignored. Ties in time: a negative event wins (and
// among tied positive events, any one that is valid and in scope suffices).
// A purpose unknown to the tree is covered by nothing: no subject counts
// unless the basis is NOT_PERSONAL (an error while deciding denies).
//
// The result for a whole dataset is a ConsentBitmap over subject ordinals,
// built once per (purpose, asker) and reused by the scan.
#ifndef FEDSHARE_POLICY_CONSENT_H_
#define FEDSHARE_POLICY_CONSENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fedshare/v1/types.pb.h"
#include "policy/purpose_tree.h"

namespace fedshare::policy {

// Stored values are fixed: they are written to disk (docs/storage-format.md).
// The names follow W3C DPV's consent statuses (node/engine/consent_dpv.h).
enum class ConsentEventType : uint8_t {
  kGiven = 1,
  kRenewed = 2,
  kWithdrawn = 3,    // by the person
  kRefused = 4,      // asked, and the person said no
  kExpired = 5,      // the consent's time ran out
  kRevoked = 6,      // ended by someone other than the person (e.g. the org)
  kInvalidated = 7,  // found not to be valid (e.g. given without capacity)
};
inline constexpr ConsentEventType kLastConsentEventType = ConsentEventType::kInvalidated;

// "GIVEN" etc. (case-insensitive) to the enum; INVALID_ARGUMENT otherwise.
absl::StatusOr<ConsentEventType> ParseConsentEventType(absl::string_view text);
absl::string_view ConsentEventTypeName(ConsentEventType type);

struct ConsentEvent {
  std::string purpose;
  ConsentEventType type = ConsentEventType::kGiven;
  absl::Time time = absl::UnixEpoch();
  absl::Time valid_until = absl::InfiniteFuture();  // for GIVEN/RENEWED
  // Orgs the consent extends to; empty means any member of the federation.
  std::vector<std::string> scope;
};

// Parses a scope cell: "" or "*" means any member; otherwise org ids
// separated by ';'. INVALID_ARGUMENT names a bad org id.
absl::StatusOr<std::vector<std::string>> ParseConsentScope(absl::string_view text);

struct ConsentQuestion {
  std::string purpose;
  std::string asker_org;
  absl::Time now;
};

// Decides for one subject. `events` may be in any order and may include
// purposes that do not cover the question's.
bool SubjectCounts(v1::ConsentBasis basis, const PurposeTree& tree,
                   absl::Span<const ConsentEvent> events, const ConsentQuestion& question);

// A set of subject ordinals, dense from 0.
class ConsentBitmap {
 public:
  ConsentBitmap() = default;
  explicit ConsentBitmap(uint32_t size, bool value = false);

  uint32_t size() const { return size_; }
  bool Test(uint32_t ordinal) const {
    return ordinal < size_ && ((words_[ordinal >> 6] >> (ordinal & 63)) & 1u);
  }
  // Does nothing if ordinal >= size().
  void Set(uint32_t ordinal, bool value);
  // Number of set ordinals.
  uint64_t Count() const;

  // The same ordinals set, over the same size.
  friend bool operator==(const ConsentBitmap& a, const ConsentBitmap& b) {
    return a.size_ == b.size_ && a.words_ == b.words_;
  }
  friend bool operator!=(const ConsentBitmap& a, const ConsentBitmap& b) { return !(a == b); }

 private:
  uint32_t size_ = 0;
  std::vector<uint64_t> words_;
};

// Builds the bitmap for one dataset and question:
//
//   ConsentBitmapBuilder b(basis, tree, question, num_subjects);
//   for each subject with events: b.AddSubject(ordinal, events);
//   ConsentBitmap bitmap = std::move(b).Finish();
//
// Subjects never added count per the basis with no events (OPT_IN: no;
// OPT_OUT and NOT_PERSONAL: yes).
class ConsentBitmapBuilder {
 public:
  ConsentBitmapBuilder(v1::ConsentBasis basis, const PurposeTree& tree, ConsentQuestion question,
                       uint32_t num_subjects);

  // REQUIRES: ordinal < num_subjects; each ordinal added at most once.
  void AddSubject(uint32_t ordinal, absl::Span<const ConsentEvent> events);

  // The earliest time after `question.now` at which some added subject's
  // decision could change by expiry alone (InfiniteFuture if none): a cached
  // bitmap is valid until then or until consent changes. An event already
  // recorded with a time after `now` also ends validity at that time.
  absl::Time valid_until() const { return valid_until_; }

  ConsentBitmap Finish() &&;

 private:
  v1::ConsentBasis basis_;
  const PurposeTree& tree_;
  ConsentQuestion question_;
  ConsentBitmap bitmap_;
  absl::Time valid_until_ = absl::InfiniteFuture();
};

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_CONSENT_H_
