// The fedshare CLI's use of CLI11 beyond parsing: exit codes for parse
// errors (naming an unknown command) and a bash completion script.
#ifndef FEDSHARE_CLIENT_CLI_APP_H_
#define FEDSHARE_CLIENT_CLI_APP_H_

#include <string>

#include "CLI/CLI.hpp"

namespace fedshare::client {

// Parse errors as this CLI's exit codes: --help and --version exit 0 (CLI11
// prints them), everything else is bad usage, exit 2, and an unknown command
// is named with the commands there are.
int ExitForParseError(CLI::App& app, const CLI::ParseError& e, int argc, char** argv);

// A bash completion script for `app`'s commands and options.
std::string BashCompletion(CLI::App& app);

}  // namespace fedshare::client

#endif  // FEDSHARE_CLIENT_CLI_APP_H_
