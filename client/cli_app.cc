#include "client/cli_app.h"

#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedshare::client {
namespace {

constexpr int kExitUsageCode = 2;  // the CLI's exit code for bad usage

CLI::App* FindSubcommand(CLI::App* app, const std::string& name) {
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == name) return sub;
  }
  return nullptr;
}

std::vector<std::string> SubcommandNames(CLI::App* app) {
  std::vector<std::string> names;
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
  }
  return names;
}

// The first word of `argv` that stands where a command of `app` (or of one of
// its subcommands) belongs but names none, with the command path before it;
// nullopt if every command word is known.
std::optional<std::pair<std::string, CLI::App*>> UnknownCommand(CLI::App* app, int argc,
                                                                char** argv) {
  CLI::App* level = app;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--") return std::nullopt;
    if (absl::StartsWith(word, "-")) {
      if (word.find('=') != std::string::npos) continue;
      const CLI::Option* opt = level->get_option_no_throw(word);
      if (opt == nullptr) opt = app->get_option_no_throw(word);
      if (opt != nullptr && opt->get_items_expected_min() > 0) ++i;  // skip its value
      continue;
    }
    if (CLI::App* sub = FindSubcommand(level, word)) {
      level = sub;
      continue;
    }
    if (level->get_require_subcommand_min() > 0) return std::make_pair(word, level);
    return std::nullopt;  // a positional argument
  }
  return std::nullopt;
}

}  // namespace

// Parse errors as this CLI's exit codes: --help and --version exit 0 (CLI11
// prints them), everything else is bad usage, exit 2, and an unknown command
// is named with the commands there are.
int ExitForParseError(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
  if (auto unknown = UnknownCommand(&app, argc, argv)) {
    CLI::App* level = unknown->second;
    std::string path = level == &app ? "fedshare" : "fedshare " + level->get_name();
    if (level->get_parent() != nullptr && level->get_parent() != &app) {
      path = "fedshare " + level->get_parent()->get_name() + " " + level->get_name();
    }
    std::cerr << path << ": unknown command '" << unknown->first
              << "'; commands: " << absl::StrJoin(SubcommandNames(level), ", ") << " (see " << path
              << " --help)\n";
    return kExitUsageCode;
  }
  app.exit(e);  // prints CLI11's message
  return kExitUsageCode;
}

// A bash completion script for `app`'s commands and options: completes the
// command words at each level, then that command's options; file names
// otherwise.
std::string BashCompletion(CLI::App& app) {
  std::vector<std::string> paths;
  std::string cases;
  std::function<void(CLI::App*, const std::string&)> walk = [&](CLI::App* level,
                                                                const std::string& path) {
    std::vector<std::string> words = SubcommandNames(level);
    for (const CLI::Option* opt : level->get_options()) {
      for (const std::string& name : opt->get_lnames()) words.push_back("--" + name);
    }
    if (level != &app) {
      for (const CLI::Option* opt : app.get_options()) {
        for (const std::string& name : opt->get_lnames()) words.push_back("--" + name);
      }
    }
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    absl::StrAppend(&cases, "    \"", path, "\") words=\"", absl::StrJoin(words, " "), "\" ;;\n");
    for (CLI::App* sub : level->get_subcommands([](CLI::App*) { return true; })) {
      std::string sub_path = path.empty() ? sub->get_name() : path + " " + sub->get_name();
      paths.push_back(sub_path);
      walk(sub, sub_path);
    }
  };
  walk(&app, "");
  std::string known;
  for (const std::string& path : paths) absl::StrAppend(&known, "      \"", path, "\") ;;\n");
  return absl::StrCat(
      "# bash completion for fedshare. Load it with\n"
      "#   source <(fedshare completion bash)\n"
      "# or save it as /usr/share/bash-completion/completions/fedshare.\n"
      "_fedshare() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" path=\"\" next words i\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    next=\"${path:+$path }${COMP_WORDS[i]}\"\n"
      "    case \"$next\" in\n",
      known,
      "      *) continue ;;\n"
      "    esac\n"
      "    path=\"$next\"\n"
      "  done\n"
      "  case \"$path\" in\n",
      cases,
      "    *) words=\"\" ;;\n"
      "  esac\n"
      "  mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\")\n"
      "}\n"
      "complete -o default -F _fedshare fedshare\n");
}

}  // namespace fedshare::client
