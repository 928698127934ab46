// `fedshare dashboard`: a page on 127.0.0.1 for asking federated questions,
// with charts, coverage, withheld cells and receipts (docs/dashboard.md).
//
//   fedshare dashboard --node 127.0.0.1:7444 --identity ~/.fedshare/ana
//   dashboard: http://127.0.0.1:41233/?token=6f1c...
//
// This process holds the identity and calls the node's local listener over
// mutual TLS; the browser only talks to this process, so no certificate or
// key ever reaches it. The page and its scripts are embedded in the binary
// (client/dashboard/, built from npm packages at build time).
//
// Who may use it: whoever has the URL. Every request must carry the one-time
// token (a ?token= parameter, the X-Fedshare-Token header, or the cookie the
// page gets when first opened with its token; the JSON calls under /api/
// accept only the first two, so another site's page cannot make the
// browser send them), compared in constant time, and name this server in
// its Host header (against DNS rebinding); anything else gets 403.
//
// The JSON calls:
//   GET  /api/describe   the configured peers and what each lets this org ask
//                        (DescribeResponse JSON per peer, or its error)
//   POST /api/query      {"sql": TEXT} or {"query": AggregateQuery JSON},
//                        optional "peers": [ORG...] (default: all peers),
//                        "deadline_ms"; answers {"sql", "question",
//                        "answer", "saved"}: the question as SQL and as
//                        AggregateQuery JSON, "answer" exactly what
//                        `fedshare query --output json` prints for it, and
//                        where it was saved (null if it could not be); or
//                        {"error": {"code", "message", "rule", "agreement",
//                        "field"}} with a 4xx/5xx status
//   GET  /api/history    the answers asked in this dashboard session
//   GET  /api/history/ID one of them: {"id", "sql", "question", "asked_at",
//                        "answer"}, read back from its file
//
// Each answer is saved in the history folder as ID.json: a SavedAnswer
// (proto/fedshare/v1/saved_answer.proto) in its JSON mapping, as `fedshare
// query --save` writes it, so `fedshare show ID.json` prints it again. Its
// "federated" member is the `fedshare query --output json` document.
#ifndef FEDSHARE_CLIENT_DASHBOARD_H_
#define FEDSHARE_CLIENT_DASHBOARD_H_

#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/cli_common.h"
#include "client/http_server.h"
#include "client/node_client.h"

namespace fedshare::client {

struct DashboardOptions {
  int port = 0;             // 0: a free port
  std::string history_dir;  // "": DefaultHistoryDir()
  int deadline_ms = 0;      // per-partner deadline; 0: the node's
};

// $XDG_STATE_HOME/fedshare/answers, else ~/.local/state/fedshare/answers.
std::string DefaultHistoryDir();

// The server side of the page, without the sockets. Thread-safe.
class Dashboard {
 public:
  // `client` (dialled to the asker's local listener, whose address is
  // `node`) must outlive this. `port` is the HTTP server's, for the Host
  // check. `history_dir` must exist.
  Dashboard(NodeClient* client, std::string node, std::string token, int port,
            std::string history_dir, int deadline_ms);

  HttpResponse Handle(const HttpRequest& request);

 private:
  struct Saved {
    std::string id, sql, asked_at, file;
  };

  bool HostAllowed(const HttpRequest& request) const;
  bool TokenMatches(const std::string& given) const;
  HttpResponse Describe();
  HttpResponse Query(const HttpRequest& request);
  HttpResponse History();
  HttpResponse HistoryEntry(const std::string& id);

  NodeClient* const client_;
  const std::string node_;
  const std::string token_;
  const int port_;
  const std::string cookie_name_;
  const std::string history_dir_;
  const int deadline_ms_;
  absl::Mutex mu_;
  std::vector<Saved> saved_ ABSL_GUARDED_BY(mu_);
};

// Adds the `dashboard` subcommand to `app`, its options bound to `options`.
CLI::App* AddDashboardCommand(CLI::App& app, DashboardOptions& options);

// Dials the node, prints the URL and serves until the process is stopped.
// Returns an exit code.
int RunDashboard(const Globals& g, const DashboardOptions& options);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_DASHBOARD_H_
