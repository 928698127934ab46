// The CLI's commands that move an org's own data through its node's local
// listener: datasets, ingest, consent import, export and report, export.
#ifndef FEDSHARE_CLIENT_DATA_COMMANDS_H_
#define FEDSHARE_CLIENT_DATA_COMMANDS_H_

#include <string>
#include <vector>

#include "client/cli_common.h"

namespace fedshare::client {

struct IngestArgs {
  std::string dataset, format, rejects_file, file, idempotency_key;
  bool skip_invalid = false;
  std::string delimiter, date_format;
  std::vector<std::string> maps;  // "COLUMN=FIELD"
  bool allow_duplicate = false;
  bool replace = false;
};

// Each returns the process's exit code.
int RunDatasets(const Globals& g);
int RunIngest(const Globals& g, IngestArgs a);
// `format`: csv, dpv, or empty (from the file name: .jsonl/.json/.ndjson is
// DPV, anything else CSV).
int RunConsentImport(const Globals& g, const std::string& file, const std::string& format);
int RunConsentExport(const Globals& g, const std::string& format, const std::string& out);
// `at`: RFC 3339 or a date; empty: now.
int RunConsentReport(const Globals& g, const std::string& at);
// Asks the node for a backup (AdminService.Backup) and says how to restore it.
int RunBackup(const Globals& g);
// Erases one subject everywhere (AdminService.EraseSubject). Without `yes`,
// asks for confirmation on a terminal and refuses otherwise.
int RunErase(const Globals& g, const std::string& subject, bool yes);
// Purges now what is past each dataset's retention (AdminService.RunRetention).
int RunRetention(const Globals& g);
int RunExport(const Globals& g, const std::string& dataset, const std::string& format,
              const std::string& out);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_DATA_COMMANDS_H_
