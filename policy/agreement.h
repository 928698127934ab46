// Agreements (DESIGN §7): default deny; a question is allowed only if a PERMIT
// agreement in force allows every part of it and no FORBID agreement matches.
// An error while deciding denies. Every decision names the agreement and the
// rule that decided it.
//
//   ASSIGN_OR_RETURN(auto agreements, AgreementSet::Create(list, tree, datasets));
//   Decision d = agreements.Decide("partner-a", query, now);
//   if (!d.allowed) return d.ToStatus();
//
// Thread-compatible: immutable after Create.
#ifndef FEDSHARE_POLICY_AGREEMENT_H_
#define FEDSHARE_POLICY_AGREEMENT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fedshare/v1/query.pb.h"
#include "fedshare/v1/types.pb.h"
#include "policy/purpose_tree.h"

namespace fedshare::policy {

// Rule ids named in decisions. Stable: they appear in audit entries.
inline constexpr absl::string_view kRuleDefaultDeny = "default-deny";
inline constexpr absl::string_view kRuleForbid = "forbid";
inline constexpr absl::string_view kRulePeer = "peer";
inline constexpr absl::string_view kRuleDataset = "dataset";
inline constexpr absl::string_view kRulePurpose = "purpose";
inline constexpr absl::string_view kRuleAggregate = "aggregate";
inline constexpr absl::string_view kRuleFilterField = "filter-field";
inline constexpr absl::string_view kRuleGroupField = "group-field";
inline constexpr absl::string_view kRuleMeasureField = "measure-field";
inline constexpr absl::string_view kRuleValidity = "validity";
inline constexpr absl::string_view kRuleRateLimit = "rate-limit";
inline constexpr absl::string_view kRuleDisclosureMode = "disclosure-mode";
inline constexpr absl::string_view kRuleRelease = "release-mode";
// Names the rule of an allowing decision.
inline constexpr absl::string_view kRulePermit = "permit";

struct Decision {
  bool allowed = false;
  std::string agreement_id;  // the deciding agreement; empty under default deny
  std::string rule;          // one of the kRule* ids
  std::string reason;        // says what to change
  std::string field;         // the field a *-field rule is about
  // The permitting agreement when allowed.
  std::optional<v1::Agreement> agreement;

  // OK when allowed; otherwise PERMISSION_DENIED with
  // "refused by agreement 'ID' rule 'RULE': REASON" (or "refused by rule
  // 'default-deny': ..." with no agreement).
  // The status carries the rule, agreement and field (policy/refusal.h).
  absl::Status ToStatus() const;
};

// Disclosure parameters with defaults filled in: k 10, dominance (1,50) and
// (2,67), repeat limit 5 per day.
struct DisclosureParams {
  int min_subjects = 10;
  struct Dominance {
    int n;
    double percent;
  };
  std::vector<Dominance> dominance = {{1, 50.0}, {2, 67.0}};
  int repeat_limit = 5;
  absl::Duration repeat_window = absl::Hours(24);
  int max_records_per_subject = 0;
  // Counts are perturbed with cell keys (Disclosure.perturbation CELL_KEY).
  bool cell_key = false;
};
DisclosureParams EffectiveDisclosure(const v1::Disclosure& disclosure);

class AgreementSet {
 public:
  // INVALID_ARGUMENT, naming the agreement, for: an empty or duplicate id; no
  // peers; a bad peer org id; an unknown dataset; an unknown purpose; a field
  // that is not in the dataset, or PRIVATE or SUBJECT, or of the wrong role
  // (group/filter: DIMENSION; measure: MEASURE); min_subjects 1 or 2 (below
  // 3); a dominance percent outside (0,100] or n outside [1, kMaxDominanceN];
  // unparsable validity times or valid_from not before valid_until; unknown
  // enum values; negative limits.
  //
  // A FORBID's lists are conditions: it matches a question (for its peers and
  // dataset, while in force) when the purpose is covered by one of its
  // purposes, the question uses one of its aggregates, filters on one of its
  // filter_fields, groups by one of its group_fields and measures one of its
  // measure_fields; an empty list places no condition. A PERMIT's lists are
  // allowances: an empty list allows nothing.
  static absl::StatusOr<AgreementSet> Create(const std::vector<v1::Agreement>& agreements,
                                             const PurposeTree& purposes,
                                             const std::vector<v1::DatasetSchema>& datasets);

  // What Create checks of one agreement, apart from the uniqueness of ids:
  // INVALID_ARGUMENT naming the agreement, or OK. Cheap enough to call once
  // per agreement of a large set (it copies nothing).
  static absl::Status CheckOne(const v1::Agreement& agreement, const PurposeTree& purposes,
                               const std::vector<v1::DatasetSchema>& datasets);

  AgreementSet() = default;

  // Decides whether `peer_org` may ask `query` at `now`. Checks, in order:
  // forbids; then permits for this peer and dataset, reporting the most
  // specific failing rule of the closest permit (validity, purpose,
  // aggregate, fields, disclosure mode (only EXACT is implemented), release).
  // An allowed decision names the first permit (in list order) that allows
  // every part of the question, with rule 'permit'.
  // Rate limits are not checked here (they need state; see RateWindow).
  // Fields are checked against the lists only; schema errors are for
  // NormalizeQuery.
  Decision Decide(absl::string_view peer_org, const v1::AggregateQuery& query,
                  absl::Time now) const;

  // The PERMIT agreements in force for `peer_org` at `now`, for Describe.
  std::vector<v1::Agreement> ForPeer(absl::string_view peer_org, absl::Time now) const;

  const std::vector<v1::Agreement>& agreements() const { return agreements_; }

 private:
  struct Parsed {
    v1::Agreement agreement;
    absl::Time valid_from;
    absl::Time valid_until;
  };
  std::vector<v1::Agreement> agreements_;
  std::vector<Parsed> parsed_;
  PurposeTree purposes_;
};

// A sliding-window counter over timestamps (rate limits, repeat limits).
// Pure: the caller stores `times` wherever it likes.
//
// Drops times at or before now - window from `times`; if fewer than `limit`
// remain, appends `now` and returns true; otherwise returns false and leaves
// `times` pruned. limit <= 0 means no limit (always true, nothing kept).
bool RateWindowAdmit(std::vector<absl::Time>& times, absl::Time now, int limit,
                     absl::Duration window);

}  // namespace fedshare::policy

#endif  // FEDSHARE_POLICY_AGREEMENT_H_
