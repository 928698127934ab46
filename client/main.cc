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
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "client/audit_commands.h"
#include "client/certs_commands.h"
#include "client/cli_app.h"
#include "client/cli_common.h"
#include "client/dashboard.h"
#include "client/data_commands.h"
#include "client/node_commands.h"
#include "client/query_commands.h"

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

  QueryArgs qa;
  auto* query = app.add_subcommand("query", "ask an aggregate question");
  query
      ->add_option("--sql", qa.sql,
                   "the question, e.g. SELECT program, COUNT(*) FROM d GROUP BY "
                   "program PURPOSE 'program-evaluation'")
      ->required();
  query->add_option("--peers", qa.peers, "ask these partners through your node (comma-separated)");
  query->add_flag("--all-peers", qa.all_peers, "ask every configured partner");
  query->add_option("--group", qa.group, "ask a configured group of partners");
  query->add_option("--output", qa.output, "table, csv, json or chart")->capture_default_str();
  query->add_option("--save", qa.save_path,
                    "also write the whole answer to this file as JSON, for `fedshare show`");
  query->add_option("--deadline-ms", qa.deadline_ms, "per-partner deadline");
  query->add_flag("--progress", qa.progress,
                  "show partners answering as they come on stderr (default: when stderr is a "
                  "terminal); the answer on stdout is unchanged");
  query->add_flag("--dry-run", qa.dry_run,
                  "show the privacy budget (epsilon) the question would cost and what is left; "
                  "spend and release nothing");
  query->add_flag("--all-partners", qa.all_partners,
                  "in a table, list every partner and its own answer (default: with more than 20 "
                  "partners asked, only those that did not answer, the others counted)");
  query
      ->add_option("--min-coverage", qa.min_coverage,
                   "exit 3 if fewer partners answer (default: every partner asked)")
      ->check(CLI::NonNegativeNumber);

  std::string show_file, show_output = "table";
  auto* show = app.add_subcommand(
      "show", "print an answer saved with `query --save` again, without asking any node");
  show->add_option("file", show_file, "the saved answer")->required();
  show->add_option("--output", show_output, "table, csv, json or chart")->capture_default_str();
  bool show_all_partners = false;
  show->add_flag("--all-partners", show_all_partners,
                 "in a table, list every partner and its own answer (as `query --all-partners`)");

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
  if (query->parsed()) return RunQuery(g, qa);
  if (show->parsed()) return RunShow(show_file, show_output, show_all_partners);
  if (audit_show->parsed()) return RunAuditShow(g, audit_options);
  if (audit_export->parsed()) return RunAuditExport(g, audit_export_out);
  if (audit_verify->parsed()) return RunAuditVerify(g, verify_options);
  if (dashboard->parsed()) return RunDashboard(g, dashboard_options);
  std::cerr << app.help();
  return kExitUsage;
}
