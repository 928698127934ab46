// fedshare: the command line for analysts and operators.
//
//   fedshare certs ca --trust-domain D --out DIR
//   fedshare certs issue --ca DIR --org ORG --role node|operator|analyst [--name N] --out DIR
//   fedshare certs request --trust-domain D --org ORG --role R [--name N] --out DIR
//   fedshare certs sign --ca DIR --csr FILE --out DIR [--days N] [--dry-run]
//   fedshare [--node ADDR] [--identity DIR] status | describe | datasets
//   fedshare peers [--no-probe] [--output table|csv|json] [--warn-days N]
//   fedshare describe --peer ORG
//   fedshare ingest --dataset D [--skip-invalid] [--idempotency-key K] [--delimiter C]
//                   [--map "COLUMN=FIELD"]... [--date-format F] [--allow-duplicate | --replace]
//                   FILE
//   fedshare consent import FILE [--format csv|dpv]
//   fedshare consent export [--format csv|dpv] [--out FILE]
//   fedshare consent report [--at TIME]
//   fedshare backup
//   fedshare erase --subject ID [--yes]
//   fedshare retention run
//   fedshare export --dataset D [--format csv|jsonl] [--out FILE]
//   fedshare query --sql "SELECT ..." [--peers a,b | --all-peers | --group G] [--dry-run]
//       [--output table|csv|json|chart] [--save FILE] [--progress]
//   fedshare show FILE [--output table|csv|json|chart]
//   fedshare audit show [--from N] [--limit N] [--caller ID|ORG] [--decision D]
//       [--since T] [--until T] [--output table|csv|json]
//   fedshare audit export [--out FILE]
//   fedshare audit verify [--log FILE] [--receipt FILE] [--earlier FILE --later FILE] [--key HEX]
//   fedshare dashboard [--port N] [--history-dir DIR]
//   fedshare completion bash
//   fedshare --version
//
// Exit codes: 0 done, 1 the node refused or failed, 2 bad usage or input,
// 3 a federated answer covers fewer partners than --min-coverage, 4 `peers`
// found a peer certificate expiring within --warn-days (or expired).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/audit_commands.h"
#include "client/certs_commands.h"
#include "client/cli_app.h"
#include "client/cli_common.h"
#include "client/dashboard.h"
#include "client/data_commands.h"
#include "client/format.h"
#include "client/node_client.h"
#include "client/saved_answer.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/spiffe.h"
#include "node/identity/x509_verify.h"
#include "openssl/rand.h"
#include "policy/agreement.h"
#include "policy/dp_settings.h"
#include "policy/refusal.h"
#include "query/sql.h"

namespace fedshare::client {
namespace {

int RunCertsCa(const std::string& trust_domain, const std::string& out, int days) {
  absl::Status s = identity::CreateCa(trust_domain, out, days);
  if (!s.ok()) return Fail(s);
  std::cout << "created CA for trust domain " << trust_domain << " in " << out
            << " (ca.pem, ca.key)\n";
  return 0;
}

int RunCertsIssue(const std::string& ca, const std::string& org, const std::string& role,
                  const std::string& name, const std::string& out, int days,
                  const std::vector<std::string>& dns, const std::vector<std::string>& ips) {
  absl::StatusOr<identity::Role> parsed_role = identity::ParseRole(role);
  if (!parsed_role.ok()) return Fail(parsed_role.status());
  identity::IssueOptions options;
  options.org = org;
  options.role = *parsed_role;
  options.name = name;
  options.out_dir = out;
  options.days = days;
  if (!dns.empty()) options.dns_names = dns;
  if (!ips.empty()) options.ip_addresses = ips;
  absl::Status s = identity::IssueCertificate(ca, options);
  if (!s.ok()) return Fail(s);
  absl::StatusOr<std::string> td = identity::ReadCaTrustDomain(ca);
  absl::StatusOr<std::string> id =
      td.ok() ? identity::SpiffeIdFor(*td, options) : absl::StatusOr<std::string>(td.status());
  std::cout << "issued " << (id.ok() ? *id : role) << " in " << out
            << " (cert.pem, key.pem, ca.pem)\n";
  return 0;
}

int RunCertsRequest(const std::string& trust_domain, const std::string& org,
                    const std::string& role, const std::string& name, const std::string& out,
                    const std::vector<std::string>& dns, const std::vector<std::string>& ips) {
  absl::StatusOr<identity::Role> parsed_role = identity::ParseRole(role);
  if (!parsed_role.ok()) return Fail(parsed_role.status());
  identity::RequestOptions options;
  options.trust_domain = trust_domain;
  options.org = org;
  options.role = *parsed_role;
  options.name = name;
  options.out_dir = out;
  options.dns_names = dns;
  options.ip_addresses = ips;
  if (options.role == identity::Role::kNode && dns.empty() && ips.empty()) {
    // As `certs issue`: a node certificate names some address, or every
    // partner that dials it logs a server-name mismatch on each connection.
    options.dns_names = {"localhost"};
    options.ip_addresses = {"127.0.0.1"};
  }
  absl::Status s = CertsRequest(options, std::cout);
  return s.ok() ? 0 : Fail(s);
}

int RunCertsSign(const std::string& ca, const std::string& csr_file, const std::string& out,
                 int days, const std::string& org, const std::string& role, bool dry_run) {
  identity::SignOptions options;
  options.out_dir = out;
  options.days = days;
  options.expect.org = org;
  if (!role.empty()) {
    absl::StatusOr<identity::Role> parsed_role = identity::ParseRole(role);
    if (!parsed_role.ok()) return Fail(parsed_role.status());
    options.expect.role = *parsed_role;
  }
  absl::Status s = CertsSign(ca, csr_file, options, dry_run, std::cout);
  return s.ok() ? 0 : Fail(s);
}

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

// Without `peer`: the node at --node (a peer listener) describes itself to
// the caller's node certificate. With `peer`: the caller's own node (local
// listener) asks that partner and passes its answer on.
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

// Prints `saved` in `output` and writes it to `save_path` when given.
int PrintAndSave(const v1::SavedAnswer& saved, const std::string& output,
                 const std::string& save_path) {
  absl::StatusOr<std::string> text = RenderAnswer(saved, output);
  if (!text.ok()) return Fail(text.status());
  std::cout << *text;
  std::cout.flush();
  if (!save_path.empty()) {
    if (absl::Status s = WriteSavedAnswer(save_path, saved); !s.ok()) return Fail(s);
  }
  return 0;
}

// Shows partners answering as they come, on stderr: on a terminal one line
// per partner and a progress line rewritten in place, else one line per
// partner ("progress N/M: ORG STATE ...").
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool terminal) : terminal_(terminal) {}
  ~ProgressPrinter() {
    if (terminal_ && shown_) std::cerr << "\r\x1b[K" << std::flush;
  }
  void Show(const v1::FederatedAggregateProgress& p) {
    const v1::PartnerCoverage& c = p.partner();
    std::string line = absl::StrCat(
        c.org_id(), " ", absl::AsciiStrToLower(v1::PartnerCoverage::State_Name(c.state())));
    if (c.state() == v1::PartnerCoverage::ANSWERED) {
      absl::StrAppend(&line, " (", c.released_cells(), " cell(s) released, ", c.withheld_cells(),
                      " withheld)");
    } else if (!c.reason().empty()) {
      absl::StrAppend(&line, ": ", c.reason());
    }
    if (!terminal_) {
      std::cerr << "progress " << p.finished() << "/" << p.asked() << ": " << line << "\n"
                << std::flush;
      return;
    }
    shown_ = true;
    std::cerr << "\r\x1b[K  " << line << "\n[" << p.finished() << "/" << p.asked() << "] "
              << (p.finished() < p.asked()
                      ? absl::StrCat("waiting for ", p.asked() - p.finished(), " partner(s)...")
                      : std::string("combining..."))
              << std::flush;
  }

 private:
  bool terminal_;
  bool shown_ = false;
};

int RunQuery(const Globals& g, const std::string& sql, const std::string& peers, bool all_peers,
             const std::string& group, const std::string& output, int deadline_ms, int min_coverage,
             const std::string& save_path, bool dry_run, bool progress) {
  // Refuse a bad --output before the question spends a repeat-limit slot.
  if (absl::Status s = CheckRenderFormat(output); !s.ok()) return Fail(s);
  absl::StatusOr<v1::AggregateQuery> query = ParseSql(sql);
  if (!query.ok()) return Fail(query.status());
  query->set_query_id(absl::StrCat("q-", absl::ToUnixMillis(absl::Now())));
  bool federated = all_peers || !peers.empty() || !group.empty();
  const std::string node = !g.node.empty() ? g.node
                           : federated     ? "127.0.0.1:7444"
                                           : "127.0.0.1:7443";
  auto client = Dial(g, node);
  if (!client.ok()) return Fail(client.status());
  if (!federated) {
    v1::AggregateRequest direct;
    *direct.mutable_query() = *query;
    direct.set_dry_run(dry_run);
    absl::StatusOr<v1::AggregateResult> r = (*client)->Aggregate(direct);
    if (!r.ok()) return Fail(r.status(), Listener::kPeer);
    return PrintAndSave(SaveDirect(sql, *query, node, *r), output, save_path);
  }
  v1::FederatedAggregateRequest request;
  *request.mutable_query() = *query;
  for (absl::string_view p : absl::StrSplit(peers, ',', absl::SkipEmpty())) {
    request.add_peers(std::string(absl::StripAsciiWhitespace(p)));
  }
  request.set_all_peers(all_peers);
  request.set_group(group);
  request.set_deadline_ms(deadline_ms);
  request.set_dry_run(dry_run);
  absl::StatusOr<v1::FederatedAggregateResponse> r;
  const bool terminal = isatty(STDERR_FILENO) == 1;
  if (progress || terminal) {
    ProgressPrinter printer(terminal);
    r = (*client)->FederatedAggregateStream(
        request, [&](const v1::FederatedAggregateProgress& p) { printer.Show(p); });
  } else {
    r = (*client)->FederatedAggregate(request);
  }
  if (!r.ok()) return Fail(r.status(), Listener::kLocal);
  if (int code = PrintAndSave(SaveFederated(sql, *query, node, *r), output, save_path); code != 0) {
    return code;
  }
  // A total that silently misses a partner is the worst wrong answer: fewer
  // answers than asked for is a failure unless the caller settles for less.
  const int asked = r->coverage_size();
  int answered = 0;
  std::vector<std::string> missing;
  for (const v1::PartnerCoverage& c : r->coverage()) {
    if (c.state() == v1::PartnerCoverage::ANSWERED) {
      ++answered;
    } else {
      missing.push_back(absl::StrCat(
          c.org_id(), " ", absl::AsciiStrToLower(v1::PartnerCoverage::State_Name(c.state())),
          c.reason().empty() ? "" : ": ", c.reason()));
    }
  }
  const int wanted = min_coverage < 0 ? asked : min_coverage;
  if (answered < wanted) {
    std::cerr << "fedshare: incomplete: " << answered << " of " << asked
              << " partners answered, fewer than --min-coverage " << wanted
              << " (the figures above leave out the others):\n";
    for (const std::string& m : missing) std::cerr << "  " << m << "\n";
    return kExitIncomplete;
  }
  return 0;
}

int RunShow(const std::string& file, const std::string& output) {
  absl::StatusOr<v1::SavedAnswer> saved = ReadSavedAnswer(file);
  if (!saved.ok()) return Fail(saved.status());
  absl::StatusOr<std::string> text = RenderAnswer(*saved, output);
  if (!text.ok()) return Fail(text.status());
  std::cout << *text;
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

struct AuditShowOptions {
  uint64_t from = 0;
  int limit = 100;
  std::string caller, decision, since, until, output = "table";
};

absl::StatusOr<v1::ListAuditRequest> AuditRequest(const AuditShowOptions& o) {
  v1::ListAuditRequest request;
  request.set_from_index(o.from);
  request.set_caller(o.caller);
  if (!o.decision.empty()) {
    v1::AuditEntry::Decision decision;
    if (!v1::AuditEntry::Decision_Parse(absl::AsciiStrToUpper(o.decision), &decision) ||
        decision == v1::AuditEntry::DECISION_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--decision '", o.decision, "': use answered, refused, failed or cancelled"));
    }
    request.set_decision(decision);
  }
  for (const auto& [text, field] : {std::pair{o.since, &v1::ListAuditRequest::mutable_since},
                                    std::pair{o.until, &v1::ListAuditRequest::mutable_until}}) {
    if (text.empty()) continue;
    absl::StatusOr<absl::Time> t = fedshare::ParseTimeOrDate(text);
    if (!t.ok()) return t.status();
    google::protobuf::Timestamp* out = (request.*field)();
    out->set_seconds(absl::ToUnixSeconds(*t));
    out->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(*t - absl::FromUnixSeconds(out->seconds()))));
  }
  return request;
}

// Pages through the log until `limit` entries match or the end is reached;
// the node bounds each page's work, so a narrow filter takes several calls.
int RunAuditShow(const Globals& g, const AuditShowOptions& options) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(options.output);
  if (!format.ok()) return Fail(format.status());
  if (options.limit < 1 || options.limit > 1000) {
    return Fail(absl::InvalidArgumentError("--limit must be 1 to 1000"));
  }
  absl::StatusOr<v1::ListAuditRequest> request = AuditRequest(options);
  if (!request.ok()) return Fail(request.status());
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  v1::ListAuditResponse shown;
  while (true) {
    request->set_limit(options.limit - shown.entries_size());
    absl::StatusOr<v1::ListAuditResponse> page = (*client)->ListAudit(*request);
    if (!page.ok()) return Fail(page.status(), Listener::kLocal);
    for (v1::AuditEntry& e : *page->mutable_entries()) *shown.add_entries() = std::move(e);
    shown.set_total(page->total());
    shown.set_chain_valid(page->chain_valid());
    shown.set_chain_error(page->chain_error());
    shown.set_next_index(page->next_index());
    if (shown.entries_size() >= options.limit || page->next_index() >= page->total() ||
        page->next_index() <= request->from_index()) {
      break;
    }
    request->set_from_index(page->next_index());
  }
  std::cout << FormatAudit(shown, *format);
  return shown.chain_valid() ? 0 : kExitRefused;
}

}  // namespace
}  // namespace fedshare::client

int main(int argc, char** argv) {
  using namespace fedshare::client;
  CLI::App app{"fedshare: ask and manage fedshare nodes"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("fedshare ") + FEDSHARE_VERSION);
  // --node, --identity, --expect-org and --timeout may come before or after
  // the subcommand: `fedshare query --node ADDR --sql ...` works too.
  app.fallthrough();
  Globals g;
  app.add_option("--node", g.node,
                 "node address HOST:PORT (default: local listener 127.0.0.1:7444, "
                 "or peer listener 127.0.0.1:7443 for describe and direct query)");
  app.add_option("--identity", g.identity_dir,
                 "folder with cert.pem, key.pem, ca.pem (default $FEDSHARE_IDENTITY)");
  app.add_option("--expect-org", g.expect_org, "refuse a server that is not this org's node");
  app.add_option("--timeout", g.timeout_seconds, "seconds per call")->capture_default_str();

  auto* certs = app.add_subcommand("certs", "development CA and certificates");
  certs->require_subcommand(1);
  std::string td, out, ca, org, role, name;
  std::vector<std::string> dns, ips;
  auto* certs_ca = certs->add_subcommand("ca", "create a development CA");
  certs_ca->add_option("--trust-domain", td, "e.g. fedshare.example")->required();
  certs_ca->add_option("--out", out, "folder for ca.pem and ca.key")->required();
  int ca_days = 3650;
  certs_ca->add_option("--days", ca_days, "validity in days, 1 to 36500")->capture_default_str();
  auto* certs_issue = certs->add_subcommand("issue", "issue a node/operator/analyst certificate");
  certs_issue->add_option("--ca", ca, "the CA folder")->required();
  certs_issue->add_option("--org", org, "org id")->required();
  certs_issue->add_option("--role", role, "node, operator or analyst")
      ->required()
      ->check(CLI::IsMember({"node", "operator", "analyst"}));
  certs_issue->add_option("--name", name, "person's name (operator, analyst)");
  certs_issue->add_option("--out", out, "folder for cert.pem, key.pem, ca.pem")->required();
  int issue_days = 365;
  certs_issue->add_option("--days", issue_days, "validity in days, 1 to 36500")
      ->capture_default_str();
  certs_issue->add_option("--dns", dns, "DNS names for a node (default localhost)");
  certs_issue->add_option("--ip", ips, "IP addresses for a node (default 127.0.0.1)");
  auto* certs_request = certs->add_subcommand(
      "request", "make a key and a certificate request to send to the federation's CA holder");
  certs_request->add_option("--trust-domain", td, "the federation's, from its CA holder")
      ->required();
  certs_request->add_option("--org", org, "org id")->required();
  certs_request->add_option("--role", role, "node, operator or analyst")
      ->required()
      ->check(CLI::IsMember({"node", "operator", "analyst"}));
  certs_request->add_option("--name", name, "person's name (operator, analyst)");
  certs_request->add_option("--out", out, "folder for key.pem and the request (.csr)")->required();
  certs_request->add_option("--dns", dns, "DNS names for a node (default localhost)");
  certs_request->add_option("--ip", ips, "IP addresses for a node (default 127.0.0.1)");
  std::string csr_file;
  int sign_days = 365;
  bool dry_run = false;
  auto* certs_sign =
      certs->add_subcommand("sign", "check a certificate request and issue its certificate");
  certs_sign->add_option("--ca", ca, "the CA folder")->required();
  certs_sign->add_option("--csr", csr_file, "the request (.csr)")->required();
  certs_sign->add_option("--out", out, "folder for cert.pem and ca.pem to send back")->required();
  certs_sign->add_option("--days", sign_days, "validity in days, 1 to 36500")
      ->capture_default_str();
  certs_sign->add_option("--org", org, "refuse a request for another org");
  certs_sign->add_option("--role", role, "refuse a request for another role")
      ->check(CLI::IsMember({"node", "operator", "analyst"}));
  certs_sign->add_flag("--dry-run", dry_run, "check and show the request, sign nothing");

  auto* status = app.add_subcommand("status", "the node's status (local listener)");
  auto* describe = app.add_subcommand(
      "describe",
      "what a partner lets your org ask: --peer ORG through your node, or a peer listener at "
      "--node with a node identity");
  std::string describe_peer;
  describe->add_option("--peer", describe_peer,
                       "a configured partner, asked through your node's local listener");
  auto* datasets = app.add_subcommand("datasets", "datasets, rows, subjects, consent coverage");
  auto* peers_cmd = app.add_subcommand("peers", "configured peers and whether they answer");
  bool no_probe = false;
  peers_cmd->add_flag("--no-probe", no_probe, "only list them");
  std::string peers_output = "table";
  peers_cmd->add_option("--output", peers_output, "table, csv or json")->capture_default_str();
  int warn_days = 30;
  peers_cmd
      ->add_option("--warn-days", warn_days,
                   "warn (and exit 4) when a peer's certificate expires within this many days")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);

  std::string dataset, format, file;
  IngestArgs in;
  auto* ingest = app.add_subcommand("ingest", "load records from CSV or JSON Lines");
  ingest->add_option("--dataset", in.dataset, "dataset name")->required();
  ingest->add_option("--format", in.format, "csv or jsonl (default: from the file name)");
  ingest->add_flag("--skip-invalid", in.skip_invalid, "write the good rows, save the rejects");
  ingest->add_option("--rejects", in.rejects_file, "where to save rejects (default FILE.rejects)");
  ingest->add_option("file", in.file, "the file")->required();
  ingest->add_option("--idempotency-key", in.idempotency_key,
                     "names this ingest: a retry with the same key and file writes nothing "
                     "again (default: a random key, printed if the call fails)");
  ingest->add_option("--delimiter", in.delimiter,
                     "CSV field separator: ',', ';', tab or '|' (default: detected from the "
                     "header line)");
  ingest
      ->add_option("--map", in.maps,
                   "read a column as a field: \"Participant ID=participant_id\" (repeatable)")
      ->allow_extra_args(false);  // one value per --map, so the file is never taken as one
  ingest->add_option("--date-format", in.date_format,
                     "how dates are written, e.g. %d/%m/%Y or %m/%d/%Y (default %Y-%m-%d)");
  ingest->add_flag("--allow-duplicate", in.allow_duplicate,
                   "load a file even if the same file was loaded into the dataset before");
  ingest->add_flag("--replace", in.replace,
                   "make the file the dataset's whole content, in one atomic, audited write");

  auto* consent = app.add_subcommand("consent", "consent records");
  consent->require_subcommand(1);
  auto* consent_import = consent->add_subcommand(
      "import",
      "import consent events (CSV: subject,purpose,event,time,valid_until,scope; or W3C DPV "
      "consent records, one JSON object per line)");
  consent_import->add_option("file", file, "the file")->required();
  consent_import->add_option("--format", format,
                             "csv or dpv (default: dpv for .jsonl/.json/.ndjson, else csv)");
  auto* consent_export = consent->add_subcommand(
      "export", "export every consent event as CSV or W3C DPV records (imports back)");
  consent_export->add_option(
      "--format", format, "csv or dpv (default: dpv for a .jsonl/.json/.ndjson --out, else csv)");
  consent_export->add_option("--out", out, "file to write (default stdout)");
  std::string consent_at;
  auto* consent_report = consent->add_subcommand(
      "report", "how many people consent to each purpose (counts only; never leaves the node)");
  consent_report->add_option("--at", consent_at,
                             "as of this time (RFC 3339 or a date; default now)");

  auto* backup = app.add_subcommand(
      "backup", "back the node's whole store up (audit log included) into its storage.backup_dir");

  std::string erase_subject;
  bool erase_yes = false;
  auto* erase = app.add_subcommand(
      "erase", "erase one subject's records and consent everywhere (audited without the id)");
  erase->add_option("--subject", erase_subject, "the subject id, exactly as stored")->required();
  erase->add_flag("--yes", erase_yes, "do not ask for confirmation");
  auto* retention = app.add_subcommand("retention", "records past their dataset's retention_days");
  auto* retention_run = retention->add_subcommand("run", "purge them now and say what went");

  auto* export_cmd = app.add_subcommand("export", "export a dataset as CSV or JSON Lines");
  export_cmd->add_option("--dataset", dataset, "dataset name")->required();
  export_cmd->add_option("--format", format, "csv or jsonl (default: from --out, else csv)");
  export_cmd->add_option("--out", out, "file to write (default stdout)");

  std::string sql, peers, group, output = "table";
  bool all_peers = false;
  int deadline_ms = 0;
  int min_coverage = -1;
  bool query_dry_run = false;
  auto* query = app.add_subcommand("query", "ask an aggregate question");
  query
      ->add_option("--sql", sql,
                   "the question, e.g. SELECT program, COUNT(*) FROM d GROUP BY "
                   "program PURPOSE 'program-evaluation'")
      ->required();
  query->add_option("--peers", peers, "ask these partners through your node (comma-separated)");
  query->add_flag("--all-peers", all_peers, "ask every configured partner");
  query->add_option("--group", group, "ask a configured group of partners");
  query->add_option("--output", output, "table, csv, json or chart")->capture_default_str();
  std::string save_path;
  query->add_option("--save", save_path,
                    "also write the whole answer to this file as JSON, for `fedshare show`");
  query->add_option("--deadline-ms", deadline_ms, "per-partner deadline");
  bool query_progress = false;
  query->add_flag("--progress", query_progress,
                  "show partners answering as they come on stderr (default: when stderr is a "
                  "terminal); the answer on stdout is unchanged");
  query->add_flag("--dry-run", query_dry_run,
                  "show the privacy budget (epsilon) the question would cost and what is left; "
                  "spend and release nothing");
  query
      ->add_option("--min-coverage", min_coverage,
                   "exit 3 if fewer partners answer (default: every partner asked)")
      ->check(CLI::NonNegativeNumber);

  std::string show_file, show_output = "table";
  auto* show = app.add_subcommand(
      "show", "print an answer saved with `query --save` again, without asking any node");
  show->add_option("file", show_file, "the saved answer")->required();
  show->add_option("--output", show_output, "table, csv, json or chart")->capture_default_str();

  auto* audit = app.add_subcommand("audit", "the audit log");
  audit->require_subcommand(1);
  AuditShowOptions audit_options;
  auto* audit_show = audit->add_subcommand("show", "list entries and verify the log");
  audit_show->add_option("--from", audit_options.from, "first index");
  audit_show->add_option("--limit", audit_options.limit, "at most this many (1000 max)")
      ->capture_default_str();
  audit_show->add_option("--caller", audit_options.caller,
                         "only this caller or end user (a SPIFFE ID), or callers of this org");
  audit_show->add_option("--decision", audit_options.decision,
                         "only answered, refused, failed or cancelled entries");
  audit_show->add_option("--since", audit_options.since,
                         "only entries at or after this time (RFC 3339 or YYYY-MM-DD)");
  audit_show->add_option("--until", audit_options.until,
                         "only entries before this time (RFC 3339 or YYYY-MM-DD)");
  audit_show->add_option("--output", audit_options.output, "table, csv or json")
      ->capture_default_str();

  std::string audit_export_out;
  auto* audit_export = audit->add_subcommand(
      "export", "write the whole log with its signed checkpoint, for `audit verify --log`");
  audit_export->add_option("--out", audit_export_out, "the file (default: stdout)");
  AuditVerifyOptions verify_options;
  auto* audit_verify = audit->add_subcommand(
      "verify",
      "check a log export, receipts, or a later checkpoint against an earlier one, "
      "trusting no node");
  audit_verify->add_option("--log", verify_options.log, "a log export (`audit export`)");
  audit_verify->add_option("--receipt", verify_options.receipt,
                           "a receipt, an answer (`query --output json`) or a saved answer");
  audit_verify->add_option("--earlier", verify_options.earlier,
                           "a checkpoint held earlier (or a receipt or export holding one)");
  audit_verify->add_option("--later", verify_options.later,
                           "a later checkpoint (or a receipt or export holding one)");
  audit_verify->add_option("--key", verify_options.key,
                           "the node's audit public key (hex); checkpoints must be signed by it");

  DashboardOptions dashboard_options;
  auto* dashboard = AddDashboardCommand(app, dashboard_options);

  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  std::string shell;
  completion->add_option("shell", shell, "bash")->required()->check(CLI::IsMember({"bash"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return ExitForParseError(app, e, argc, argv);
  }

  if (completion->parsed()) {
    std::cout << BashCompletion(app);
    return 0;
  }

  if (certs_ca->parsed()) return RunCertsCa(td, out, ca_days);
  if (certs_issue->parsed()) return RunCertsIssue(ca, org, role, name, out, issue_days, dns, ips);
  if (certs_request->parsed()) {
    return RunCertsRequest(td, org, role, name, out, dns, ips);
  }
  if (certs_sign->parsed()) return RunCertsSign(ca, csr_file, out, sign_days, org, role, dry_run);
  if (status->parsed()) return RunStatus(g);
  if (describe->parsed()) return RunDescribe(g, describe_peer);
  if (datasets->parsed()) return RunDatasets(g);
  if (peers_cmd->parsed()) return RunPeers(g, !no_probe, peers_output, warn_days);
  if (ingest->parsed()) return RunIngest(g, in);
  if (consent_import->parsed()) return RunConsentImport(g, file, format);
  if (consent_export->parsed()) return RunConsentExport(g, format, out);
  if (consent_report->parsed()) return RunConsentReport(g, consent_at);
  if (backup->parsed()) return RunBackup(g);
  if (erase->parsed()) return RunErase(g, erase_subject, erase_yes);
  if (retention_run->parsed()) return RunRetention(g);
  if (export_cmd->parsed()) return RunExport(g, dataset, format, out);
  if (query->parsed())
    return RunQuery(g, sql, peers, all_peers, group, output, deadline_ms, min_coverage, save_path,
                    query_dry_run, query_progress);
  if (show->parsed()) return RunShow(show_file, show_output);
  if (audit_show->parsed()) return RunAuditShow(g, audit_options);
  if (audit_export->parsed()) return RunAuditExport(g, audit_export_out);
  if (audit_verify->parsed()) return RunAuditVerify(g, verify_options);
  if (dashboard->parsed()) return RunDashboard(g, dashboard_options);
  std::cerr << app.help();
  return kExitUsage;
}
