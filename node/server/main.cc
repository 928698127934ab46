// fedshare-node: runs one node.
//
//   fedshare-node --config node.textproto [--ready-file F] [--log-level info]
//   fedshare-node --config node.textproto --check-config
//
// On start it prints one line to stdout,
//   ready org=ORG peer=HOST:PORT local=HOST:PORT
// once both listeners accept calls (and writes the same to --ready-file), so
// scripts and tests can wait for it. SIGTERM or SIGINT stops it cleanly.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "node/common/files.h"
#include "node/identity/server_credentials.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{"fedshare-node: a federated data-sharing node"};
  std::string config_path;
  std::string ready_file;
  std::string log_level = "info";
  bool check_only = false;
  app.add_option("--config", config_path, "node config (text format or JSON)")->required();
  app.add_flag("--check-config", check_only, "validate the config and exit");
  app.add_option("--ready-file", ready_file, "write the bound addresses here once serving");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_logger_mt("fedshare");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(log_level));

  absl::StatusOr<fedshare::v1::NodeConfig> config = fedshare::server::LoadNodeConfig(config_path);
  if (!config.ok()) {
    std::cerr << "fedshare-node: invalid config: " << config.status().message() << "\n";
    return 2;
  }
  if (check_only) {
    if (absl::Status tls = fedshare::identity::CheckServerTlsConfig(config->tls()); !tls.ok()) {
      std::cerr << "fedshare-node: invalid config: " << tls.message() << "\n";
      return 2;
    }
    std::cout << "config OK: org " << config->org_id() << ", " << config->datasets_size()
              << " dataset(s), " << config->agreements_size() << " agreement(s) inline, "
              << config->peers_size() << " peer(s)\n";
    return 0;
  }

  // Every connection holds a descriptor: take all the system allows (systemd's
  // default soft limit is 1024), and say what it is.
  if (struct rlimit nofile; getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    nofile.rlim_cur = nofile.rlim_max;
    bool raised = setrlimit(RLIMIT_NOFILE, &nofile) == 0;
    getrlimit(RLIMIT_NOFILE, &nofile);
    spdlog::info("event=nofile_limit open_files={} raised={}", nofile.rlim_cur, raised);
  }

  // Block the stop signals in every thread (gRPC's included) and take them
  // synchronously below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::unique_ptr<fedshare::server::Node>> node =
      fedshare::server::Node::Create(*config, fedshare::server::NodeOptions());
  if (!node.ok()) {
    std::cerr << "fedshare-node: cannot start: " << node.status().message() << "\n";
    return 1;
  }
  std::string ready =
      absl::StrCat("ready org=", config->org_id(), " peer=", (*node)->peer_address(),
                   " local=", (*node)->local_address());
  if (!ready_file.empty()) {
    absl::Status written = fedshare::WriteFileAtomic(ready_file, ready + "\n");
    if (!written.ok()) {
      std::cerr << "fedshare-node: " << written.message() << "\n";
      return 1;
    }
  }
  std::cout << ready << std::endl;

  int signal = 0;
  sigwait(&stop_signals, &signal);
  spdlog::info("event=stopping signal={}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*node)->Shutdown();
  node->reset();
  return 0;
}
