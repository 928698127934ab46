#include "node/engine/manifest.h"

#include <set>
#include <string>

#include "absl/time/time.h"
#include "node/audit/leaf.h"
#include "node/audit/merkle.h"
#include "policy/agreement.h"
#include "policy/dp_settings.h"
#include "policy/query_rules.h"

namespace fedshare::engine {

v1::DisclosureManifest DisclosureManifest(const v1::Agreement& agreement,
                                          const v1::AggregateQuery& normalized,
                                          const v1::DatasetSchema& schema,
                                          const v1::AggregateResult& result) {
  v1::DisclosureManifest m;
  m.set_agreement_id(agreement.id());
  m.set_agreement_hash(audit::Sha256(audit::DeterministicBytes(agreement)));
  const v1::Disclosure& disclosure = agreement.disclosure();
  if (disclosure.mode() == v1::Disclosure::DIFFERENTIAL_PRIVACY) {
    m.set_mode(v1::Disclosure::DIFFERENTIAL_PRIVACY);
    m.set_epsilon_per_question(policy::EffectiveDp(disclosure).epsilon_per_question);
  } else {
    const policy::DisclosureParams params = policy::EffectiveDisclosure(disclosure);
    m.set_mode(v1::Disclosure::EXACT);
    m.set_min_subjects(params.min_subjects);
    for (const policy::DisclosureParams::Dominance& d : params.dominance) {
      v1::DominanceRule* rule = m.add_dominance();
      rule->set_n(d.n);
      rule->set_percent(d.percent);
    }
    m.set_repeat_limit(params.repeat_limit);
    m.set_repeat_window_seconds(absl::ToInt64Seconds(params.repeat_window));
    m.set_max_records_per_subject(params.max_records_per_subject);
    m.set_cell_key_perturbation(params.cell_key);
  }
  std::set<std::string> used(normalized.group_by().begin(), normalized.group_by().end());
  for (const v1::Predicate& p : normalized.where()) used.insert(p.field());
  for (const v1::FieldSchema& f : schema.fields()) {
    if (used.count(f.name()) == 0 || policy::GridWidth(f) <= 0) continue;
    v1::GroupBucket* snapped = m.add_snapped();
    snapped->set_field(f.name());
    snapped->set_width(policy::GridWidth(f));
  }
  for (const v1::Withholding& w : result.withholdings()) {
    v1::Withholding* withheld = m.add_withheld();
    withheld->set_rule(w.rule());
    withheld->set_cells(w.cells());
  }
  return m;
}

}  // namespace fedshare::engine
