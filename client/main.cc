// fedshare: the command line for analysts and operators.
//
//   fedshare certs ca --trust-domain D --out DIR
//   fedshare certs issue --ca DIR --org ORG --role node|operator|analyst [--name N] --out DIR
//   fedshare [--node ADDR] [--identity DIR] status | describe | datasets | peers
//   fedshare ingest --dataset D [--skip-invalid] [--idempotency-key K] FILE
//   fedshare consent import FILE
//   fedshare export --dataset D [--format csv|jsonl] [--out FILE]
//   fedshare query --sql "SELECT ..." [--peers a,b | --all-peers | --group G] [--output
//   table|csv|json] fedshare audit show [--from N] [--limit N]
//
// Exit codes: 0 done, 1 the node refused or failed, 2 bad usage or input,
// 3 a federated answer covers fewer partners than --min-coverage.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/format.h"
#include "client/node_client.h"
#include "client/sql.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "node/common/time_util.h"
#include "node/identity/cert_issuer.h"
#include "node/identity/spiffe.h"
#include "node/identity/x509_verify.h"
#include "openssl/rand.h"

namespace fedshare::client {
namespace {

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIncomplete = 3;  // fewer partners answered than --min-coverage

struct Globals {
  std::string node;
  std::string identity_dir;
  std::string expect_org;
  double timeout_seconds = 60;
};

int Fail(const absl::Status& status) {
  std::cerr << "fedshare: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitRefused;
}

absl::StatusOr<std::unique_ptr<NodeClient>> Dial(const Globals& g,
                                                 const std::string& default_node) {
  std::string dir = g.identity_dir;
  if (dir.empty()) {
    const char* env = std::getenv("FEDSHARE_IDENTITY");
    if (env != nullptr) dir = env;
  }
  if (dir.empty()) {
    return absl::InvalidArgumentError(
        "no identity: pass --identity DIR (holding cert.pem, key.pem, ca.pem) or set "
        "FEDSHARE_IDENTITY");
  }
  FEDSHARE_ASSIGN_OR_RETURN(identity::ClientTlsFiles files, identity::IdentityFromDir(dir));
  identity::ServerExpectation expect;
  expect.org_id = g.expect_org;
  // Expect the server in our own trust domain.
  FEDSHARE_ASSIGN_OR_RETURN(std::string cert, ReadFile(files.cert_file));
  FEDSHARE_ASSIGN_OR_RETURN(identity::CertificateInfo info, identity::InspectCertificate(cert));
  if (info.uri_sans.size() == 1) {
    absl::StatusOr<identity::Identity> own = identity::ParseSpiffeId(info.uri_sans[0]);
    if (own.ok()) expect.trust_domain = own->trust_domain;
  }
  std::string address = g.node.empty() ? default_node : g.node;
  FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<NodeClient> client,
                            NodeClient::Connect(address, files, expect));
  client->set_timeout(absl::Seconds(g.timeout_seconds));
  return client;
}

// Prints progress to stderr: in place on a terminal, every 10% otherwise.
class Progress {
 public:
  Progress(std::string what, int64_t total) : what_(std::move(what)), total_(total) {}
  void operator()(int64_t done, int64_t total) {
    if (total <= 0) total = total_;
    if (total < (4 << 20)) return;  // small files finish before it matters
    int percent = static_cast<int>(100 * done / total);
    if (isatty(STDERR_FILENO)) {
      std::cerr << absl::StrFormat("\r%s: %3d%% (%.1f of %.1f MiB)", what_, percent,
                                   done / 1048576.0, total / 1048576.0)
                << std::flush;
      if (done >= total) std::cerr << "\n";
    } else if (percent >= last_ + 10 || done >= total) {
      last_ = percent;
      std::cerr << what_ << ": " << percent << "%\n";
    }
  }

 private:
  std::string what_;
  int64_t total_;
  int last_ = -10;
};

v1::DataFormat FormatFor(const std::string& name, const std::string& file) {
  std::string f = absl::AsciiStrToLower(name);
  if (f == "jsonl" || f == "json") return v1::JSONL;
  if (f == "csv") return v1::CSV;
  if (absl::EndsWith(file, ".jsonl") || absl::EndsWith(file, ".ndjson")) return v1::JSONL;
  return v1::CSV;
}

void PrintRowErrors(const google::protobuf::RepeatedPtrField<v1::RowError>& errors,
                    int64_t rejected) {
  for (const v1::RowError& e : errors) {
    std::cerr << "  line " << e.line();
    if (!e.column().empty()) std::cerr << ", column " << e.column();
    std::cerr << ": " << e.reason() << "\n";
  }
  if (rejected > errors.size()) {
    std::cerr << "  ... and " << (rejected - errors.size()) << " more\n";
  }
}

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
  if (!s.ok()) return Fail(s.status());
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

int RunDescribe(const Globals& g) {
  auto client = Dial(g, "127.0.0.1:7443");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::DescribeResponse> d = (*client)->Describe();
  if (!d.ok()) return Fail(d.status());
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
      std::cout << "  agreement " << a.id() << "\n"
                << "    purposes:  " << absl::StrJoin(a.purposes(), ", ") << "\n"
                << "    aggregates: " << absl::StrJoin(aggs, ", ") << "\n"
                << "    filter on: " << absl::StrJoin(a.filter_fields(), ", ") << "\n"
                << "    group by:  " << absl::StrJoin(a.group_fields(), ", ") << "\n"
                << "    measures:  " << absl::StrJoin(a.measure_fields(), ", ") << "\n";
      if (!a.valid_until().empty()) std::cout << "    valid until: " << a.valid_until() << "\n";
      int k = a.disclosure().min_subjects() > 0 ? a.disclosure().min_subjects() : 10;
      std::cout << "    disclosure: exact, at least " << k << " people per cell\n";
    }
  }
  return 0;
}

int RunDatasets(const Globals& g) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ListDatasetsResponse> r = (*client)->ListDatasets();
  if (!r.ok()) return Fail(r.status());
  for (const v1::DatasetInfo& d : r->datasets()) {
    std::cout << d.name() << ": " << d.rows() << " rows, " << d.subjects() << " subjects, "
              << d.blocks() << " blocks\n";
    for (const v1::PurposeCoverage& c : d.coverage()) {
      double pct = d.subjects() > 0 ? 100.0 * c.subjects_counted() / d.subjects() : 0.0;
      std::cout << absl::StrFormat("  %-28s %8d subjects counted (%.1f%%)\n", c.purpose(),
                                   c.subjects_counted(), pct);
    }
  }
  return 0;
}

// A fresh idempotency key: 128 random bits in hex.
std::string NewIdempotencyKey() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return "";
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

int RunIngest(const Globals& g, const std::string& dataset, const std::string& format,
              bool skip_invalid, const std::string& rejects_file, const std::string& file,
              std::string idempotency_key) {
  absl::StatusOr<std::string> data = ReadFile(file);
  if (!data.ok()) return Fail(data.status());
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  // The node needs time in proportion to the file: --timeout plus one second
  // per MiB, so a big upload is not cut off (and abandoned) by a fixed limit.
  (*client)->set_timeout(absl::Seconds(g.timeout_seconds) +
                         absl::Seconds(static_cast<int64_t>(data->size() >> 20)));
  if (idempotency_key.empty()) idempotency_key = NewIdempotencyKey();
  Progress progress("ingest " + file, static_cast<int64_t>(data->size()));
  absl::StatusOr<v1::IngestResponse> r = (*client)->Ingest(
      dataset, FormatFor(format, file), skip_invalid, *data, std::ref(progress), idempotency_key);
  if (!r.ok()) {
    int code = Fail(r.status());
    const absl::StatusCode c = r.status().code();
    const bool outcome_unknown =
        c == absl::StatusCode::kUnavailable || c == absl::StatusCode::kDeadlineExceeded ||
        c == absl::StatusCode::kCancelled || c == absl::StatusCode::kUnknown;
    if (!outcome_unknown) return code;
    std::cerr << "fedshare: to retry without risk of writing twice, run the same command with "
                 "--idempotency-key "
              << idempotency_key << "\n";
    return code;
  }
  if (r->replayed()) {
    std::cout << "already ingested earlier with idempotency key " << idempotency_key
              << "; nothing written now. Earlier: ";
  }
  if (r->rows_written() == 0 && r->rows_rejected() == 0 && r->errors_size() > 0) {
    std::cerr << "fedshare: nothing written: the file cannot be used as it is:\n";
    PrintRowErrors(r->errors(), r->errors_size());
    return kExitUsage;
  }
  if (r->rows_rejected() > 0 && !skip_invalid) {
    std::cerr << "fedshare: nothing written: " << r->rows_rejected()
              << " row(s) are invalid (fix them, or pass --skip-invalid to write the rest):\n";
    PrintRowErrors(r->errors(), r->rows_rejected());
    return kExitUsage;
  }
  std::cout << "wrote " << r->rows_written() << " rows to " << dataset << " (" << r->new_subjects()
            << " new subjects)\n";
  if (r->rows_rejected() > 0) {
    std::string out = rejects_file.empty() ? file + ".rejects" : rejects_file;
    absl::Status s = WriteFileAtomic(out, r->rejected_rows());
    if (!s.ok()) return Fail(s);
    std::cerr << "skipped " << r->rows_rejected() << " invalid row(s), saved to " << out << ":\n";
    PrintRowErrors(r->errors(), r->rows_rejected());
  }
  return 0;
}

int RunConsentImport(const Globals& g, const std::string& file) {
  absl::StatusOr<std::string> data = ReadFile(file);
  if (!data.ok()) return Fail(data.status());
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  Progress progress("consent " + file, static_cast<int64_t>(data->size()));
  absl::StatusOr<v1::ConsentImportResponse> r = (*client)->ImportConsent(*data, std::ref(progress));
  if (!r.ok()) return Fail(r.status());
  if (r->events_rejected() > 0 || r->errors_size() > 0) {
    std::cerr << "fedshare: nothing imported: the file has errors (fix them and import again):\n";
    PrintRowErrors(r->errors(), std::max<int64_t>(r->events_rejected(), r->errors_size()));
    return kExitUsage;
  }
  std::cout << "read " << r->events_read() << " consent events, " << r->events_new() << " new\n";
  return 0;
}

int RunExport(const Globals& g, const std::string& dataset, const std::string& format,
              const std::string& out) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  std::ofstream file;
  std::ostream* sink = &std::cout;
  std::string tmp;
  if (!out.empty()) {
    tmp = out + ".partial";
    file.open(tmp, std::ios::binary | std::ios::trunc);
    if (!file) return Fail(absl::FailedPreconditionError("cannot write " + tmp));
    sink = &file;
  }
  int64_t rows = 0;
  absl::Status s = (*client)->Export(dataset, FormatFor(format, out),
                                     [&](const v1::ExportChunk& chunk) -> absl::Status {
                                       sink->write(chunk.data().data(), chunk.data().size());
                                       rows = chunk.rows_so_far();
                                       if (!*sink) return absl::DataLossError("write failed");
                                       return absl::OkStatus();
                                     });
  if (!s.ok()) {
    if (!tmp.empty()) std::remove(tmp.c_str());
    return Fail(s);
  }
  if (!out.empty()) {
    file.close();
    if (std::rename(tmp.c_str(), out.c_str()) != 0) {
      return Fail(absl::FailedPreconditionError("cannot rename " + tmp + " to " + out));
    }
    std::cerr << "exported " << rows << " rows to " << out << "\n";
  }
  return 0;
}

int RunQuery(const Globals& g, const std::string& sql, const std::string& peers, bool all_peers,
             const std::string& group, const std::string& output, int deadline_ms,
             int min_coverage) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(output);
  if (!format.ok()) return Fail(format.status());
  absl::StatusOr<v1::AggregateQuery> query = ParseSql(sql);
  if (!query.ok()) return Fail(query.status());
  query->set_query_id(absl::StrCat("q-", absl::ToUnixMillis(absl::Now())));
  bool federated = all_peers || !peers.empty() || !group.empty();
  auto client = Dial(g, federated ? "127.0.0.1:7444" : "127.0.0.1:7443");
  if (!client.ok()) return Fail(client.status());
  if (!federated) {
    absl::StatusOr<v1::AggregateResult> r = (*client)->Aggregate(*query);
    if (!r.ok()) return Fail(r.status());
    std::cout << FormatResult(*r, *format);
    return 0;
  }
  v1::FederatedAggregateRequest request;
  *request.mutable_query() = *query;
  for (absl::string_view p : absl::StrSplit(peers, ',', absl::SkipEmpty())) {
    request.add_peers(std::string(absl::StripAsciiWhitespace(p)));
  }
  request.set_all_peers(all_peers);
  request.set_group(group);
  request.set_deadline_ms(deadline_ms);
  absl::StatusOr<v1::FederatedAggregateResponse> r = (*client)->FederatedAggregate(request);
  if (!r.ok()) return Fail(r.status());
  std::cout << FormatFederated(*r, *format);
  std::cout.flush();
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

int RunPeers(const Globals& g, bool probe) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ListPeersResponse> r = (*client)->ListPeers(probe);
  if (!r.ok()) return Fail(r.status());
  std::cout << absl::StrFormat("%-20s %-24s %-12s %s\n", "PEER", "ADDRESS", "STATE", "DETAIL");
  for (const v1::PeerStatus& p : r->peers()) {
    std::string state =
        probe ? absl::AsciiStrToLower(v1::PartnerCoverage::State_Name(p.state())) : "not probed";
    std::string detail = p.state() == v1::PartnerCoverage::ANSWERED
                             ? absl::StrCat(p.datasets_offered(), " dataset(s) offered")
                             : p.reason();
    if (p.groups_size() > 0) {
      absl::StrAppend(&detail, detail.empty() ? "" : "; ",
                      "groups: ", absl::StrJoin(p.groups(), ","));
    }
    std::cout << absl::StrFormat("%-20s %-24s %-12s %s\n", p.org_id(), p.address(), state, detail);
  }
  return 0;
}

int RunAuditShow(const Globals& g, uint64_t from, int limit) {
  auto client = Dial(g, "127.0.0.1:7444");
  if (!client.ok()) return Fail(client.status());
  absl::StatusOr<v1::ListAuditResponse> r = (*client)->ListAudit(from, limit);
  if (!r.ok()) return Fail(r.status());
  std::cout << absl::StrFormat("%-6s %-24s %-9s %-22s %-18s %s\n", "INDEX", "TIME", "DECISION",
                               "DATASET", "RULE", "CALLER / REASON");
  for (const v1::AuditEntry& e : r->entries()) {
    std::string decision = absl::AsciiStrToLower(v1::AuditEntry::Decision_Name(e.decision()));
    std::string rule = e.rule().empty() ? e.agreement_id() : e.rule();
    std::cout << absl::StrFormat("%-6d %-24s %-9s %-22s %-18s %s\n", e.index(),
                                 fedshare::FormatTime(absl::FromUnixMillis(e.time_unix_ms())),
                                 decision, e.dataset(), rule, e.caller());
    if (!e.reason().empty()) std::cout << "       " << e.reason() << "\n";
  }
  std::cout << r->total() << " entries; hash chain "
            << (r->chain_valid() ? "verifies" : "BROKEN: " + r->chain_error()) << "\n";
  return r->chain_valid() ? 0 : kExitRefused;
}

}  // namespace
}  // namespace fedshare::client

int main(int argc, char** argv) {
  using namespace fedshare::client;
  CLI::App app{"fedshare: ask and manage fedshare nodes"};
  app.require_subcommand(1);
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
  int days = 0;
  std::vector<std::string> dns, ips;
  auto* certs_ca = certs->add_subcommand("ca", "create a development CA");
  certs_ca->add_option("--trust-domain", td, "e.g. fedshare.example")->required();
  certs_ca->add_option("--out", out, "folder for ca.pem and ca.key")->required();
  certs_ca->add_option("--days", days, "validity (default 3650)");
  auto* certs_issue = certs->add_subcommand("issue", "issue a node/operator/analyst certificate");
  certs_issue->add_option("--ca", ca, "the CA folder")->required();
  certs_issue->add_option("--org", org, "org id")->required();
  certs_issue->add_option("--role", role, "node, operator or analyst")
      ->required()
      ->check(CLI::IsMember({"node", "operator", "analyst"}));
  certs_issue->add_option("--name", name, "person's name (operator, analyst)");
  certs_issue->add_option("--out", out, "folder for cert.pem, key.pem, ca.pem")->required();
  certs_issue->add_option("--days", days, "validity (default 365)");
  certs_issue->add_option("--dns", dns, "DNS names for a node (default localhost)");
  certs_issue->add_option("--ip", ips, "IP addresses for a node (default 127.0.0.1)");

  auto* status = app.add_subcommand("status", "the node's status (local listener)");
  auto* describe = app.add_subcommand("describe", "what a node lets you ask (peer listener)");
  auto* datasets = app.add_subcommand("datasets", "datasets, rows, subjects, consent coverage");
  auto* peers_cmd = app.add_subcommand("peers", "configured peers and whether they answer");
  bool no_probe = false;
  peers_cmd->add_flag("--no-probe", no_probe, "only list them");

  std::string dataset, format, file, rejects;
  bool skip_invalid = false;
  auto* ingest = app.add_subcommand("ingest", "load records from CSV or JSON Lines");
  ingest->add_option("--dataset", dataset, "dataset name")->required();
  ingest->add_option("--format", format, "csv or jsonl (default: from the file name)");
  ingest->add_flag("--skip-invalid", skip_invalid, "write the good rows, save the rejects");
  ingest->add_option("--rejects", rejects, "where to save rejects (default FILE.rejects)");
  ingest->add_option("file", file, "the file")->required();
  std::string idempotency_key;
  ingest->add_option("--idempotency-key", idempotency_key,
                     "names this ingest: a retry with the same key and file writes nothing "
                     "again (default: a random key, printed if the call fails)");

  auto* consent = app.add_subcommand("consent", "consent records");
  consent->require_subcommand(1);
  auto* consent_import = consent->add_subcommand(
      "import", "import consent events (CSV: subject,purpose,event,time,valid_until,scope)");
  consent_import->add_option("file", file, "the CSV file")->required();

  auto* export_cmd = app.add_subcommand("export", "export a dataset as CSV or JSON Lines");
  export_cmd->add_option("--dataset", dataset, "dataset name")->required();
  export_cmd->add_option("--format", format, "csv or jsonl (default: from --out, else csv)");
  export_cmd->add_option("--out", out, "file to write (default stdout)");

  std::string sql, peers, group, output = "table";
  bool all_peers = false;
  int deadline_ms = 0;
  int min_coverage = -1;
  auto* query = app.add_subcommand("query", "ask an aggregate question");
  query
      ->add_option("--sql", sql,
                   "the question, e.g. SELECT program, COUNT(*) FROM d GROUP BY "
                   "program PURPOSE 'program-evaluation'")
      ->required();
  query->add_option("--peers", peers, "ask these partners through your node (comma-separated)");
  query->add_flag("--all-peers", all_peers, "ask every configured partner");
  query->add_option("--group", group, "ask a configured group of partners");
  query->add_option("--output", output, "table, csv or json")->capture_default_str();
  query->add_option("--deadline-ms", deadline_ms, "per-partner deadline");
  query
      ->add_option("--min-coverage", min_coverage,
                   "exit 3 if fewer partners answer (default: every partner asked)")
      ->check(CLI::NonNegativeNumber);

  auto* audit = app.add_subcommand("audit", "the audit log");
  audit->require_subcommand(1);
  uint64_t from = 0;
  int limit = 100;
  auto* audit_show = audit->add_subcommand("show", "list entries and verify the hash chain");
  audit_show->add_option("--from", from, "first index");
  audit_show->add_option("--limit", limit, "at most this many (1000 max)")->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (certs_ca->parsed()) return RunCertsCa(td, out, days > 0 ? days : 3650);
  if (certs_issue->parsed()) {
    return RunCertsIssue(ca, org, role, name, out, days > 0 ? days : 365, dns, ips);
  }
  if (status->parsed()) return RunStatus(g);
  if (describe->parsed()) return RunDescribe(g);
  if (datasets->parsed()) return RunDatasets(g);
  if (peers_cmd->parsed()) return RunPeers(g, !no_probe);
  if (ingest->parsed())
    return RunIngest(g, dataset, format, skip_invalid, rejects, file, idempotency_key);
  if (consent_import->parsed()) return RunConsentImport(g, file);
  if (export_cmd->parsed()) return RunExport(g, dataset, format, out);
  if (query->parsed())
    return RunQuery(g, sql, peers, all_peers, group, output, deadline_ms, min_coverage);
  if (audit_show->parsed()) return RunAuditShow(g, from, limit);
  std::cerr << app.help();
  return kExitUsage;
}
