// The node's log output (DESIGN §12): one event per line on stderr, as
//
//   text: 2026-01-01T00:00:00.000Z level=info event=node_started org=acme ...
//   json: {"time":"2026-01-01T00:00:00.000Z","level":"info","event":"node_started","org":"acme"}
//
// Log statements are written as logfmt (`key=value key="quoted value"`); in
// JSON mode each pair becomes a field, and a message that is not logfmt
// becomes "msg". gRPC's own log lines are routed through the same logger as
// event=grpc with the source file, line and message, so no raw gRPC line is
// mixed into the output. Log statements never carry subject ids.
#ifndef FEDSHARE_NODE_SERVER_LOGGING_H_
#define FEDSHARE_NODE_SERVER_LOGGING_H_

#include <string>

#include "absl/strings/string_view.h"

namespace fedshare::server {

enum class LogFormat { kText, kJson };

// Installs the default logger on stderr with `format` and `level` (trace,
// debug, info, warn, error) and routes gRPC's logging into it. Call once,
// before any other thread logs.
void InitLogging(LogFormat format, const std::string& level);

// The JSON object (without a newline) for one logfmt `message`; exposed for
// tests.
std::string LogfmtToJsonFields(absl::string_view message);

}  // namespace fedshare::server

#endif  // FEDSHARE_NODE_SERVER_LOGGING_H_
