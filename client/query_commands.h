// The CLI's questions: `query` (one node, or partners through the caller's
// own node, with streamed progress) and `show` (a saved answer printed again
// without asking any node).
#ifndef FEDSHARE_CLIENT_QUERY_COMMANDS_H_
#define FEDSHARE_CLIENT_QUERY_COMMANDS_H_

#include <string>

#include "client/cli_common.h"

namespace fedshare::client {

struct QueryArgs {
  std::string sql;
  // Federated when any of these is set: asked through the local listener.
  std::string peers;  // comma-separated org ids
  bool all_peers = false;
  std::string group;
  std::string output = "table";  // table, csv, json or chart
  int deadline_ms = 0;           // per partner; 0: the node's default
  int min_coverage = -1;         // -1: every partner asked
  std::string save_path;         // also write the answer here (`show` reads it)
  bool dry_run = false;
  bool progress = false;  // stream progress to stderr (always on a terminal)
  bool all_partners = false;  // a table lists every partner (FormatFederated)
};

// Each returns the process's exit code: kExitIncomplete when fewer partners
// answer than `min_coverage`.
int RunQuery(const Globals& g, const QueryArgs& a);
int RunShow(const std::string& file, const std::string& output, bool all_partners = false);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_QUERY_COMMANDS_H_
