#include "client/node_commands.h"

#include <cmath>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/format.h"
#include "node/common/time_util.h"
#include "policy/agreement.h"
#include "policy/dp_settings.h"

namespace fedshare::client {
namespace {

std::string Bytes(uint64_t n) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(n, " B") : absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

// The /metrics figures at a glance (counters since the node started).
void PrintStatusMetrics(const v1::StatusMetrics& m) {
  std::cout << "questions:     " << m.questions_answered() << " answered, " << m.questions_refused()
            << " refused, " << m.questions_failed() << " failed (since start)\n";
  for (const v1::RuleCount& r : m.top_rules()) {
    std::cout << "  " << r.outcome() << " by " << (r.rule().empty() ? "(no rule)" : r.rule())
              << ": " << r.questions() << "\n";
  }
  std::cout << "audit appends: " << m.audit_appends_ok() << " ok, " << m.audit_appends_failed()
            << " failed\n"
            << "ingest rows:   " << m.ingest_rows_written() << " written, "
            << m.ingest_rows_rejected() << " rejected\n"
            << "fan-out:       " << m.fanout_partners_answered() << " of "
            << m.fanout_partner_calls() << " partner calls answered\n"
            << "store size:    " << Bytes(m.store_bytes()) << "\n"
            << "certificate:   "
            << (m.certificate_days_left() < 0
                    ? std::string("unreadable")
                    : absl::StrFormat("%.0f days left", std::floor(m.certificate_days_left())))
            << ", CA "
            << (m.ca_days_left() < 0
                    ? std::string("unreadable")
                    : absl::StrFormat("%.0f days left", std::floor(m.ca_days_left())))
            << "\n";
}

std::string FieldLine(const v1::FieldSchema& f) {
  std::string line = absl::StrCat("    ", f.name(), "  ", v1::FieldSchema::Type_Name(f.type()), " ",
                                  v1::FieldSchema::Role_Name(f.role()));
  if (f.role() == v1::FieldSchema::MEASURE)
    absl::StrAppend(&line, " [", f.lower(), ", ", f.upper(), "]");
  if (f.categories_size() > 0) {
    absl::StrAppend(&line, " {", absl::StrJoin(f.categories(), ", "), "}");
  }
  if (f.granularity() > 0) absl::StrAppend(&line, " step ", f.granularity());
  if (f.public_values()) absl::StrAppend(&line, " (public values)");
  return line;
}

// The exact-mode limits the node applies, defaults filled in as it fills them.
void PrintExactRules(const v1::Disclosure& disclosure) {
  const policy::DisclosureParams rules = policy::EffectiveDisclosure(disclosure);
  std::cout << "    disclosure: exact, at least " << rules.min_subjects << " people per cell\n";
  std::vector<std::string> dominance;
  for (const policy::DisclosureParams::Dominance& r : rules.dominance) {
    dominance.push_back(absl::StrCat("the largest ", r.n, " at most ", r.percent, "%"));
  }
  if (!dominance.empty()) {
    std::cout << "    dominance: of a cell's sum, " << absl::StrJoin(dominance, "; ") << "\n";
  }
  std::cout << "    repeats:   the same question at most " << rules.repeat_limit << " times per "
            << absl::FormatDuration(rules.repeat_window) << "\n";
  if (rules.cell_key) {
    std::cout << "    counts:    perturbed by cell keys ("
              << (disclosure.ptable().empty() ? "the default p-table"
                                              : "the agreement's own p-table")
              << "); sums and means exact\n";
  }
  if (rules.max_records_per_subject > 0) {
    std::cout << "    records:   at most " << rules.max_records_per_subject
              << " records per person counted in one cell\n";
  }
}

}  // namespace

int RunStatus(const Globals& g) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::StatusResponse> s = (*client)->Status();
  if (!s.ok()) return Fail(s.status(), Listener::kLocal);
  std::cout << "org:           " << s->org_id() << "\n"
            << "trust domain:  " << s->trust_domain() << "\n"
            << "version:       " << s->version() << "\n"
            << "peer listener: " << s->peer_address() << "\n"
            << "local listener:"
            << " " << s->local_address() << "\n"
            << "started:       "
            << fedshare::FormatTime(absl::FromUnixMillis(s->started_at_unix_ms())) << "\n"
            << "datasets:      " << s->datasets() << "\n"
            << "audit entries: " << s->audit_entries() << "\n"
            << "you are:       " << s->caller() << "\n";
  PrintStatusMetrics(s->metrics());
  for (const std::string& w : s->warnings()) std::cout << "warning:       " << w << "\n";
  if (!s->audit_error().empty()) {
    std::cout << "AUDIT LOG FAILED, answering nothing: " << s->audit_error() << "\n";
    return kExitRefused;
  }
  return 0;
}

int RunDescribe(const Globals& g, const std::string& peer) {
  auto client = Dial(g, peer.empty() ? "127.0.0.1:7443" : "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::DescribeResponse> d =
      peer.empty() ? (*client)->Describe() : (*client)->DescribePeer(peer);
  if (!d.ok()) return Fail(d.status(), peer.empty() ? Listener::kPeer : Listener::kLocal);
  std::cout << "org " << d->org_id() << " (fedshare " << d->version() << ")\n";
  if (d->datasets_size() == 0) {
    std::cout << "no agreement in force lets you ask anything\n";
    return 0;
  }
  for (const v1::DatasetOffer& offer : d->datasets()) {
    std::cout << "dataset " << offer.schema().name() << "\n  fields:\n";
    for (const v1::FieldSchema& f : offer.schema().fields()) std::cout << FieldLine(f) << "\n";
    for (const v1::Agreement& a : offer.agreements()) {
      std::vector<std::string> aggs;
      for (int k : a.aggregates()) aggs.push_back(v1::AggregateKind_Name(k));
      std::cout << "  agreement " << a.id() << "\n";
      if (!a.description().empty()) std::cout << "    about:     " << a.description() << "\n";
      std::cout << "    purposes:  " << absl::StrJoin(a.purposes(), ", ") << "\n"
                << "    aggregates: " << absl::StrJoin(aggs, ", ") << "\n"
                << "    filter on: " << absl::StrJoin(a.filter_fields(), ", ") << "\n"
                << "    group by:  " << absl::StrJoin(a.group_fields(), ", ") << "\n"
                << "    measures:  " << absl::StrJoin(a.measure_fields(), ", ") << "\n";
      if (!a.valid_from().empty()) std::cout << "    valid from: " << a.valid_from() << "\n";
      if (!a.valid_until().empty()) std::cout << "    valid until: " << a.valid_until() << "\n";
      if (a.disclosure().mode() == v1::Disclosure::DIFFERENTIAL_PRIVACY) {
        const policy::DpSettings dp = policy::EffectiveDp(a.disclosure());
        std::cout << "    disclosure: differential privacy, epsilon " << dp.epsilon_per_question
                  << " per question, " << dp.budget_epsilon << " per "
                  << absl::FormatDuration(dp.window) << " for your org on this dataset\n"
                  << "    bounds:    each person counts in at most "
                  << dp.bounds.max_groups_per_subject << " cell(s), with at most "
                  << dp.bounds.max_records_per_group << " record(s) in each\n"
                  << "    groups:    keys that are not public appear only past a noisy "
                     "threshold (delta "
                  << dp.delta << ")\n";
      } else {
        PrintExactRules(a.disclosure());
      }
      if (a.rate_limit().queries() > 0) {
        std::cout << "    rate:      at most " << a.rate_limit().queries() << " questions per "
                  << absl::FormatDuration(absl::Seconds(a.rate_limit().window_seconds())) << "\n";
      }
    }
  }
  return 0;
}

int RunPeers(const Globals& g, bool probe, const std::string& output, int warn_days) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(output);
  if (!format.ok()) return Fail(format.status());
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ListPeersResponse> r = (*client)->ListPeers(probe);
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  // The node warns 30 days ahead, as for its own certificate; --warn-days
  // moves the line, in every output format and in the exit code.
  const absl::Time now = absl::Now();
  std::vector<std::string> warnings;
  for (v1::PeerStatus& p : *r->mutable_peers()) {
    if (!p.has_certificate_expires()) continue;
    const absl::Time expires = absl::FromUnixSeconds(p.certificate_expires().seconds());
    const std::string when = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", expires, absl::UTCTimeZone());
    p.clear_certificate_warning();
    if (expires <= now) {
      p.set_certificate_warning(absl::StrCat("peer ", p.org_id(), "'s node certificate expired at ",
                                             when,
                                             ": its calls fail until its operator renews it"));
    } else if (expires - now <= absl::Hours(24) * warn_days) {
      p.set_certificate_warning(absl::StrCat("peer ", p.org_id(), "'s node certificate expires in ",
                                             absl::ToInt64Hours(expires - now) / 24, " day(s), at ",
                                             when, ": ask its operator to renew it"));
    }
    if (!p.certificate_warning().empty()) warnings.push_back(p.certificate_warning());
  }
  std::cout << FormatPeers(*r, *format, probe, now);
  std::cout.flush();
  for (const std::string& w : warnings) std::cerr << "fedshare: WARNING: " << w << "\n";
  return warnings.empty() ? 0 : kExitCertificateExpiring;
}

}  // namespace fedshare::client
