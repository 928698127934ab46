#include "policy/agreement.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "policy/cell_key.h"
#include "policy/disclosure.h"
#include "policy/dp_settings.h"
#include "policy/ids.h"
#include "policy/refusal.h"
#include "policy/schema.h"

namespace fedshare::policy {
namespace {

constexpr absl::string_view kAnyPeer = "*";

bool IsForbid(const v1::Agreement& a) { return a.effect() == v1::Agreement::FORBID; }

bool HasPeer(const v1::Agreement& a, absl::string_view peer) {
  for (const std::string& p : a.peers()) {
    if (p == kAnyPeer || p == peer) return true;
  }
  return false;
}

bool Lists(const google::protobuf::RepeatedPtrField<std::string>& list, absl::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

bool TakesMeasure(v1::AggregateKind kind) {
  return kind == v1::SUM || kind == v1::AVG || kind == v1::STDDEV || kind == v1::VARIANCE ||
         kind == v1::HISTOGRAM;
}

std::string KindName(int kind) {
  const std::string& name = v1::AggregateKind_Name(static_cast<v1::AggregateKind>(kind));
  return name.empty() ? absl::StrCat("AGGREGATE_", kind) : name;
}

absl::Status AgreementError(const v1::Agreement& a, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("agreement '", a.id(), "': ", what));
}

absl::Status CheckFields(const v1::Agreement& a, const v1::DatasetSchema& schema,
                         const google::protobuf::RepeatedPtrField<std::string>& fields,
                         absl::string_view list_name, v1::FieldSchema::Role role) {
  for (const std::string& name : fields) {
    const v1::FieldSchema* f = FindField(schema, name);
    if (f == nullptr) {
      return AgreementError(
          a, absl::StrCat(list_name, " names '", name, "', which is not a field of dataset '",
                          schema.name(), "'"));
    }
    if (f->role() != role) {
      return AgreementError(
          a, absl::StrCat(list_name, " names field '", name, "', a ", RoleName(f->role()),
                          " field; only ", RoleName(role), " fields may be listed there"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAgreement(const v1::Agreement& a, const PurposeTree& purposes,
                               const std::vector<v1::DatasetSchema>& datasets) {
  if (!v1::Agreement::Effect_IsValid(a.effect())) {
    return AgreementError(a, "unknown effect: use PERMIT or FORBID");
  }
  if (a.peers().empty()) {
    return AgreementError(a, "no peers: list org ids, or '*' for any member");
  }
  for (const std::string& p : a.peers()) {
    if (p != kAnyPeer && !IsValidOrgId(p)) {
      return AgreementError(
          a, absl::StrCat("peer '", p, "' is not an org id: use 1 to 63 of [a-z0-9-], or '*'"));
    }
  }
  const v1::DatasetSchema* schema = nullptr;
  for (const v1::DatasetSchema& d : datasets) {
    if (d.name() == a.dataset()) schema = &d;
  }
  if (schema == nullptr) {
    return AgreementError(a, absl::StrCat("unknown dataset '", a.dataset(),
                                          "': name a dataset declared in the node config"));
  }
  for (const std::string& p : a.purposes()) {
    if (!purposes.Contains(p)) {
      return AgreementError(a, absl::StrCat("unknown purpose '", p,
                                            "': use a purpose of the federation's vocabulary"));
    }
  }
  for (int kind : a.aggregates()) {
    if (kind == v1::AGGREGATE_KIND_UNSPECIFIED || !v1::AggregateKind_IsValid(kind)) {
      return AgreementError(a, absl::StrCat("unknown aggregate ", kind));
    }
  }
  FEDSHARE_RETURN_IF_ERROR(
      CheckFields(a, *schema, a.filter_fields(), "filter_fields", v1::FieldSchema::DIMENSION));
  FEDSHARE_RETURN_IF_ERROR(
      CheckFields(a, *schema, a.group_fields(), "group_fields", v1::FieldSchema::DIMENSION));
  FEDSHARE_RETURN_IF_ERROR(
      CheckFields(a, *schema, a.measure_fields(), "measure_fields", v1::FieldSchema::MEASURE));

  const v1::Disclosure& d = a.disclosure();
  if (!v1::Disclosure::Mode_IsValid(d.mode())) {
    return AgreementError(a, "unknown disclosure mode: use EXACT or DIFFERENTIAL_PRIVACY");
  }
  if (absl::Status s = ValidateDpSettings(a, *schema); !s.ok()) {
    return AgreementError(a, s.message());
  }
  if (d.min_subjects() != 0 && d.min_subjects() < 3) {
    return AgreementError(a, absl::StrCat("disclosure.min_subjects ", d.min_subjects(),
                                          " is below 3: use 3 or more, or 0 for the default 10"));
  }
  for (const v1::DominanceRule& r : a.disclosure().dominance()) {
    if (!(r.percent() > 0 && r.percent() <= 100)) {
      return AgreementError(
          a, absl::StrCat("dominance percent ", r.percent(), " is outside (0, 100]"));
    }
    if (r.n() < 1 || r.n() > kMaxDominanceN) {
      return AgreementError(
          a, absl::StrCat("dominance n ", r.n(), " is outside [1, ", kMaxDominanceN, "]"));
    }
  }
  if (!v1::Disclosure::Perturbation_IsValid(d.perturbation())) {
    return AgreementError(a, "unknown disclosure perturbation: use NONE or CELL_KEY");
  }
  if (d.perturbation() == v1::Disclosure::CELL_KEY) {
    if (d.mode() != v1::Disclosure::MODE_UNSPECIFIED && d.mode() != v1::Disclosure::EXACT) {
      return AgreementError(a, "disclosure perturbation CELL_KEY is for mode EXACT only");
    }
    if (!d.ptable().empty()) {
      if (absl::StatusOr<PTable> table = PTable::Parse(d.ptable()); !table.ok()) {
        return AgreementError(a, absl::StrCat("disclosure.ptable: ", table.status().message()));
      }
    }
  } else if (!d.ptable().empty()) {
    return AgreementError(a, "disclosure.ptable is set but perturbation is not CELL_KEY");
  }
  if (d.repeat_limit() < 0 || d.repeat_window_seconds() < 0 || d.max_records_per_subject() < 0) {
    return AgreementError(a,
                          "disclosure repeat_limit, repeat_window_seconds and "
                          "max_records_per_subject must be >= 0");
  }
  if (a.rate_limit().queries() < 0 || a.rate_limit().window_seconds() < 0) {
    return AgreementError(a, "rate_limit queries and window_seconds must be >= 0");
  }
  if (a.rate_limit().queries() > 0 && a.rate_limit().window_seconds() == 0) {
    return AgreementError(a, "rate_limit needs window_seconds > 0 with queries (e.g. 3600)");
  }
  if (!v1::Agreement::Release_IsValid(a.release()) || a.min_partners() < 0) {
    return AgreementError(a, "unknown release mode or negative min_partners");
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> ParseBound(const v1::Agreement& a, absl::string_view name,
                                      const std::string& text, absl::Time if_empty) {
  if (text.empty()) return if_empty;
  absl::StatusOr<absl::Time> t = ParseTimeOrDate(text);
  if (!t.ok()) return AgreementError(a, absl::StrCat(name, ": ", t.status().message()));
  return *t;
}

// How far a permit got through Decide's checks; the furthest failure is the
// one reported, since it names the smallest change that would allow the question.
enum Stage { kValidity, kPurpose, kAggregate, kFields, kMode, kRelease, kPassed };

struct Check {
  Stage stage;
  absl::string_view rule;
  std::string reason;
  std::string field = "";
};

Check CheckPermit(const v1::Agreement& a, absl::Time from, absl::Time until,
                  const PurposeTree& tree, const v1::AggregateQuery& q, absl::Time now) {
  if (now < from) {
    return {kValidity, kRuleValidity,
            absl::StrCat("the agreement is in force only from ", fedshare::FormatTime(from))};
  }
  if (now >= until) {
    return {kValidity, kRuleValidity,
            absl::StrCat("the agreement expired at ", fedshare::FormatTime(until))};
  }
  bool purpose_ok = false;
  for (const std::string& p : a.purposes()) purpose_ok = purpose_ok || tree.Covers(p, q.purpose());
  if (!purpose_ok) {
    return {kPurpose, kRulePurpose,
            absl::StrCat("purpose '", q.purpose(), "' is not one of (",
                         absl::StrJoin(a.purposes(), ", "),
                         ") or below one: ask for a purpose the agreement covers")};
  }
  for (const v1::Aggregate& agg : q.aggregates()) {
    if (std::find(a.aggregates().begin(), a.aggregates().end(), agg.kind()) ==
        a.aggregates().end()) {
      std::vector<std::string> allowed;
      for (int k : a.aggregates()) allowed.push_back(KindName(k));
      return {kAggregate, kRuleAggregate,
              absl::StrCat("aggregate ", KindName(agg.kind()), " is not allowed; allowed: (",
                           absl::StrJoin(allowed, ", "), ")")};
    }
  }
  for (const v1::Predicate& p : q.where()) {
    if (!Lists(a.filter_fields(), p.field())) {
      return {kFields, kRuleFilterField,
              absl::StrCat("filtering on '", p.field(), "' is not allowed; allowed: (",
                           absl::StrJoin(a.filter_fields(), ", "), ")"),
              p.field()};
    }
  }
  for (const std::string& g : q.group_by()) {
    if (!Lists(a.group_fields(), g)) {
      return {kFields, kRuleGroupField,
              absl::StrCat("grouping by '", g, "' is not allowed; allowed: (",
                           absl::StrJoin(a.group_fields(), ", "), ")"),
              g};
    }
  }
  for (const v1::Aggregate& agg : q.aggregates()) {
    if (TakesMeasure(agg.kind()) && !Lists(a.measure_fields(), agg.field())) {
      return {kFields, kRuleMeasureField,
              absl::StrCat("measuring '", agg.field(), "' is not allowed; allowed: (",
                           absl::StrJoin(a.measure_fields(), ", "), ")"),
              agg.field()};
    }
  }
  const v1::Disclosure::Mode mode = a.disclosure().mode();
  if (mode == v1::Disclosure::DIFFERENTIAL_PRIVACY &&
      a.release() == v1::Agreement::SECURE_SUM_ONLY) {
    return {kMode, kRuleDisclosureMode,
            "differential privacy with secure aggregation is not yet implemented"};
  }
  if (a.release() == v1::Agreement::SECURE_SUM_ONLY) {
    return {kRelease, kRuleRelease,
            "the agreement allows release only by secure aggregation, which is not yet "
            "implemented"};
  }
  return {kPassed, kRulePermit, ""};
}

// A FORBID matches when each of its non-empty lists matches part of the
// question: empty lists place no condition.
std::optional<std::string> ForbidMatches(const v1::Agreement& a, const PurposeTree& tree,
                                         const v1::AggregateQuery& q) {
  std::vector<std::string> why;
  if (!a.purposes().empty()) {
    bool hit = false;
    for (const std::string& p : a.purposes()) hit = hit || tree.Covers(p, q.purpose());
    // An unknown purpose cannot be shown to fall outside the prohibition.
    if (!hit && tree.Contains(q.purpose())) return std::nullopt;
    why.push_back(absl::StrCat("purpose '", q.purpose(), "'"));
  }
  if (!a.aggregates().empty()) {
    const v1::Aggregate* hit = nullptr;
    for (const v1::Aggregate& agg : q.aggregates()) {
      if (std::find(a.aggregates().begin(), a.aggregates().end(), agg.kind()) !=
          a.aggregates().end()) {
        hit = &agg;
      }
    }
    if (hit == nullptr) return std::nullopt;
    why.push_back(absl::StrCat("aggregate ", KindName(hit->kind())));
  }
  auto any_field = [&](const google::protobuf::RepeatedPtrField<std::string>& list,
                       const std::vector<std::string>& used, absl::string_view verb) {
    if (list.empty()) return true;
    for (const std::string& u : used) {
      if (Lists(list, u)) {
        why.push_back(absl::StrCat(verb, " '", u, "'"));
        return true;
      }
    }
    return false;
  };
  std::vector<std::string> filters, groups, measures;
  for (const v1::Predicate& p : q.where()) filters.push_back(p.field());
  for (const std::string& g : q.group_by()) groups.push_back(g);
  for (const v1::Aggregate& agg : q.aggregates()) {
    if (TakesMeasure(agg.kind())) measures.push_back(agg.field());
  }
  if (!any_field(a.filter_fields(), filters, "filtering on")) return std::nullopt;
  if (!any_field(a.group_fields(), groups, "grouping by")) return std::nullopt;
  if (!any_field(a.measure_fields(), measures, "measuring")) return std::nullopt;
  if (why.empty()) return std::string("it prohibits every question about this dataset");
  return absl::StrCat("it prohibits ", absl::StrJoin(why, ", "));
}

}  // namespace

absl::Status Decision::ToStatus() const {
  if (allowed) return absl::OkStatus();
  const RefusalInfo info{rule, agreement_id, field};
  if (agreement_id.empty()) {
    return WithRefusal(
        absl::PermissionDeniedError(absl::StrCat("refused by rule '", rule, "': ", reason)), info);
  }
  return WithRefusal(absl::PermissionDeniedError(absl::StrCat(
                         "refused by agreement '", agreement_id, "' rule '", rule, "': ", reason)),
                     info);
}

DisclosureParams EffectiveDisclosure(const v1::Disclosure& disclosure) {
  DisclosureParams params;
  if (disclosure.min_subjects() != 0) params.min_subjects = std::max(3, disclosure.min_subjects());
  if (!disclosure.dominance().empty()) {
    params.dominance.clear();
    for (const v1::DominanceRule& r : disclosure.dominance()) {
      params.dominance.push_back({r.n(), r.percent()});
    }
  }
  if (disclosure.repeat_limit() > 0) params.repeat_limit = disclosure.repeat_limit();
  if (disclosure.repeat_window_seconds() > 0) {
    params.repeat_window = absl::Seconds(disclosure.repeat_window_seconds());
  }
  params.max_records_per_subject = std::max(0, disclosure.max_records_per_subject());
  params.cell_key = disclosure.perturbation() == v1::Disclosure::CELL_KEY;
  return params;
}

absl::Status AgreementSet::CheckOne(const v1::Agreement& a, const PurposeTree& purposes,
                                    const std::vector<v1::DatasetSchema>& datasets) {
  if (a.id().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("an agreement for dataset '", a.dataset(), "' has no id: give it one"));
  }
  FEDSHARE_RETURN_IF_ERROR(ValidateAgreement(a, purposes, datasets));
  FEDSHARE_ASSIGN_OR_RETURN(absl::Time from,
                            ParseBound(a, "valid_from", a.valid_from(), absl::InfinitePast()));
  FEDSHARE_ASSIGN_OR_RETURN(absl::Time until,
                            ParseBound(a, "valid_until", a.valid_until(), absl::InfiniteFuture()));
  if (from >= until) {
    return AgreementError(a,
                          "valid_from is not before valid_until: the agreement is never "
                          "in force");
  }
  return absl::OkStatus();
}

absl::StatusOr<AgreementSet> AgreementSet::Create(const std::vector<v1::Agreement>& agreements,
                                                  const PurposeTree& purposes,
                                                  const std::vector<v1::DatasetSchema>& datasets) {
  AgreementSet set;
  absl::flat_hash_set<std::string> ids;
  for (const v1::Agreement& a : agreements) {
    if (a.id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("an agreement for dataset '", a.dataset(), "' has no id: give it one"));
    }
    if (!ids.insert(a.id()).second) {
      return AgreementError(a, "the id is used twice: agreement ids must be unique");
    }
    FEDSHARE_RETURN_IF_ERROR(ValidateAgreement(a, purposes, datasets));
    FEDSHARE_ASSIGN_OR_RETURN(absl::Time from,
                              ParseBound(a, "valid_from", a.valid_from(), absl::InfinitePast()));
    FEDSHARE_ASSIGN_OR_RETURN(
        absl::Time until, ParseBound(a, "valid_until", a.valid_until(), absl::InfiniteFuture()));
    if (from >= until) {
      return AgreementError(a,
                            "valid_from is not before valid_until: the agreement is never "
                            "in force");
    }
    set.parsed_.push_back({a, from, until});
  }
  set.agreements_ = agreements;
  set.purposes_ = purposes;
  return set;
}

Decision AgreementSet::Decide(absl::string_view peer_org, const v1::AggregateQuery& query,
                              absl::Time now) const {
  Decision d;
  if (!IsValidOrgId(peer_org)) {
    d.rule = std::string(kRuleDefaultDeny);
    d.reason = absl::StrCat("caller org id '", peer_org, "' is not a valid org id");
    return d;
  }
  for (const Parsed& p : parsed_) {
    const v1::Agreement& a = p.agreement;
    if (!IsForbid(a) || !HasPeer(a, peer_org) || a.dataset() != query.dataset()) continue;
    if (now < p.valid_from || now >= p.valid_until) continue;
    if (std::optional<std::string> why = ForbidMatches(a, purposes_, query)) {
      d.agreement_id = a.id();
      d.rule = std::string(kRuleForbid);
      d.reason = absl::StrCat("a prohibition matches this question: ", *why);
      return d;
    }
  }
  const Parsed* closest = nullptr;
  Check closest_check{kValidity, kRuleDefaultDeny, ""};
  for (const Parsed& p : parsed_) {
    const v1::Agreement& a = p.agreement;
    if (IsForbid(a) || !HasPeer(a, peer_org) || a.dataset() != query.dataset()) continue;
    Check c = CheckPermit(a, p.valid_from, p.valid_until, purposes_, query, now);
    if (c.stage == kPassed) {
      d.allowed = true;
      d.agreement_id = a.id();
      d.rule = std::string(kRulePermit);
      d.reason = absl::StrCat("permitted by agreement '", a.id(), "'");
      d.agreement = a;
      return d;
    }
    if (closest == nullptr || c.stage > closest_check.stage) {
      closest = &p;
      closest_check = std::move(c);
    }
  }
  if (closest == nullptr) {
    d.rule = std::string(kRuleDefaultDeny);
    d.reason = absl::StrCat("no agreement permits org '", peer_org, "' to ask about dataset '",
                            query.dataset(), "': an agreement naming both is needed");
    return d;
  }
  d.agreement_id = closest->agreement.id();
  d.rule = std::string(closest_check.rule);
  d.reason = std::move(closest_check.reason);
  d.field = std::move(closest_check.field);
  return d;
}

std::vector<v1::Agreement> AgreementSet::ForPeer(absl::string_view peer_org, absl::Time now) const {
  std::vector<v1::Agreement> out;
  for (const Parsed& p : parsed_) {
    if (IsForbid(p.agreement) || !HasPeer(p.agreement, peer_org)) continue;
    if (now < p.valid_from || now >= p.valid_until) continue;
    out.push_back(p.agreement);
  }
  return out;
}

bool RateWindowAdmit(std::vector<absl::Time>& times, absl::Time now, int limit,
                     absl::Duration window) {
  if (limit <= 0) {
    times.clear();
    return true;
  }
  const absl::Time cutoff = now - window;
  times.erase(std::remove_if(times.begin(), times.end(), [&](absl::Time t) { return t <= cutoff; }),
              times.end());
  if (times.size() >= static_cast<size_t>(limit)) return false;
  times.push_back(now);
  return true;
}

}  // namespace fedshare::policy
