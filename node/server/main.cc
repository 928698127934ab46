// fedshare-node: runs one node.
//
//   fedshare-node --config node.textproto [--ready-file F] [--log-level info]
//   fedshare-node --config node.textproto --check-config
//   fedshare-node --config node.textproto --probe   # exit 0 if the node is serving
//   fedshare-node --config node.textproto --restore-from BACKUP_DIR [--backup-id N]
//                 [--backup-key-file OLD_KEY]
//   fedshare-node --version
//
// Paths and addresses in the config may be overridden by flags or
// environment variables (node/server/overrides.h); --log-format json writes
// one JSON object a line (node/server/logging.h).
//
// On start it prints one line to stdout,
//   ready org=ORG peer=HOST:PORT local=HOST:PORT [metrics=HOST:PORT]
// once both listeners accept calls (and writes the same to --ready-file), so
// scripts and tests can wait for it; `metrics` names the metrics listener
// when one is configured (its port as bound: a configured port 0 is chosen
// then). SIGTERM or SIGINT stops it cleanly (a
// second one while stopping exits 1 at once);
// SIGHUP reloads the agreements, peers and certificates and prints
//   reloaded agreements=N peers=M certificates=ok
// (a part that kept its previous settings says "kept-old (reason)").
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "node/common/files.h"
#include "node/identity/server_credentials.h"
#include "node/server/config.h"
#include "node/server/logging.h"
#include "node/server/node.h"
#include "node/server/overrides.h"
#include "node/server/probe.h"
#include "node/storage/encryption.h"
#include "node/storage/storage.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
#ifdef NDEBUG
  // Debian builds Abseil with its lock-order check on; it made each nested
  // Lock about 5x dearer. Tests and debug builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  CLI::App app{"fedshare-node: a federated data-sharing node"};
  app.set_version_flag("--version", std::string("fedshare-node ") + FEDSHARE_VERSION);
  std::string config_path;
  std::string ready_file;
  std::string log_level = "info";
  bool check_only = false;
  app.add_option("--config", config_path, "node config (text format or JSON)")
      ->envname("FEDSHARE_CONFIG")
      ->required();
  app.add_flag("--check-config", check_only, "validate the config and exit");
  app.add_option("--ready-file", ready_file, "write the bound addresses here once serving");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text, or json (one JSON object a line)")
      ->envname("FEDSHARE_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));
  bool probe = false;
  app.add_flag("--probe", probe,
               "check the running node's health over mTLS with its own certificate; exit 0 if "
               "serving, 1 if not");
  std::string restore_from;
  uint32_t backup_id = 0;
  app.add_option("--restore-from", restore_from,
                 "restore the newest backup in this folder (`fedshare backup`) into the config's "
                 "data_dir, which must be absent or empty, then exit; the node must be stopped");
  app.add_option("--backup-id", backup_id, "with --restore-from: this backup, not the newest");
  std::string backup_key_file;
  app.add_option("--backup-key-file", backup_key_file,
                 "with --restore-from: the storage key the backup was made with, when it is not "
                 "the config's (this changes the store's key)");
  std::map<std::string, std::string> overrides;
  for (const fedshare::server::ConfigOverride& o : fedshare::server::ConfigOverrides()) {
    app.add_option_function<std::string>(
        o.flag, [&overrides, setting = o.setting](const std::string& v) { overrides[setting] = v; },
        "override " + o.setting + " (env " + o.env + ")");
  }
  CLI11_PARSE(app, argc, argv);

  fedshare::server::InitLogging(log_format == "json" ? fedshare::server::LogFormat::kJson
                                                     : fedshare::server::LogFormat::kText,
                                log_level);

  absl::StatusOr<fedshare::v1::NodeConfig> config = fedshare::server::LoadNodeConfig(config_path);
  if (config.ok()) {
    absl::Status applied = fedshare::server::ApplyOverrides(&*config, overrides, ::getenv);
    if (!applied.ok()) config = applied;
  }
  if (!config.ok()) {
    std::cerr << "fedshare-node: invalid config: " << config.status().message() << "\n";
    return 2;
  }
  if (probe) {
    absl::Status healthy = fedshare::server::ProbeNode(
        *config, fedshare::server::ProbeTarget::kPeer, absl::Seconds(5));
    if (!healthy.ok()) {
      std::cerr << "fedshare-node: probe failed: " << healthy.message() << "\n";
      return 1;
    }
    std::cout << "SERVING\n";
    return 0;
  }
  if (!restore_from.empty()) {
    absl::StatusOr<std::string> key = fedshare::server::LoadStorageKey(*config);
    std::optional<std::string> backup_key;
    if (key.ok() && !backup_key_file.empty()) {
      absl::StatusOr<std::string> text = fedshare::ReadFile(backup_key_file);
      absl::StatusOr<std::string> parsed =
          text.ok() ? fedshare::storage::ParseEncryptionKey(*text) : text.status();
      if (!parsed.ok()) {
        key = absl::InvalidArgumentError(
            absl::StrCat("--backup-key-file ", backup_key_file, ": ", parsed.status().message()));
      } else {
        backup_key = *parsed;
      }
    }
    absl::Status restored = key.ok()
                                ? fedshare::storage::Storage::RestoreBackup(
                                      restore_from, config->data_dir(), backup_id, *key, backup_key)
                                : key.status();
    if (!restored.ok()) {
      std::cerr << "fedshare-node: cannot restore: " << restored.message() << "\n";
      return 1;
    }
    std::cout << "restored "
              << (backup_id == 0 ? std::string("the newest backup")
                                 : absl::StrCat("backup ", backup_id))
              << " from " << restore_from << " into " << config->data_dir()
              << "; start the node as usual\n";
    return 0;
  }
  if (check_only) {
    // The checks the node makes at start, against the existing store if any.
    absl::StatusOr<std::vector<std::string>> warnings =
        fedshare::server::Node::CheckConfig(*config, absl::Now());
    if (!warnings.ok()) {
      std::cerr << "fedshare-node: invalid config: " << warnings.status().message() << "\n";
      return 2;
    }
    for (const std::string& w : *warnings) std::cerr << "fedshare-node: warning: " << w << "\n";
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
  sigaddset(&stop_signals, SIGHUP);
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
  if ((*node)->metrics_port() > 0) {
    const std::string& metrics = config->metrics_address();
    absl::StrAppend(&ready, " metrics=", metrics.substr(0, metrics.rfind(':')), ":",
                    (*node)->metrics_port());
  }
  if (!ready_file.empty()) {
    absl::Status written = fedshare::WriteFileAtomic(ready_file, ready + "\n");
    if (!written.ok()) {
      std::cerr << "fedshare-node: " << written.message() << "\n";
      return 1;
    }
  }
  std::cout << ready << std::endl;

  int signal = 0;
  for (;;) {
    sigwait(&stop_signals, &signal);
    if (signal != SIGHUP) break;
    // SIGHUP: what can change while serving is in force for the next
    // question, said on stdout (after the ready line) so scripts can wait for
    // it. The config file is read again with the same overrides.
    absl::StatusOr<fedshare::v1::NodeConfig> next = fedshare::server::LoadNodeConfig(config_path);
    if (next.ok()) {
      absl::Status applied = fedshare::server::ApplyOverrides(&*next, overrides, ::getenv);
      if (!applied.ok()) next = applied;
    }
    std::cout << (*node)->Reload(next).Line() << std::endl;
  }
  spdlog::info("event=stopping signal={}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  // A second SIGTERM or SIGINT while stopping ends the process at once, with
  // status 1: whoever asks twice wants it gone, and a stop held up by a call
  // that outlives its grace then needs no SIGKILL to end, and says so. What
  // the node acknowledged is already on disk, as it must be for a crash.
  std::thread([stop_signals] {
    int again = 0;
    do {
      sigwait(&stop_signals, &again);
    } while (again == SIGHUP);  // nothing to reload while stopping
    spdlog::warn(
        "event=stop_forced signal={} reason=\"a second stop signal while stopping: "
        "exiting without waiting for calls in flight or closing the store\"",
        again == SIGTERM ? "SIGTERM" : "SIGINT");
    spdlog::default_logger()->flush();
    std::_Exit(1);
  }).detach();
  (*node)->Shutdown();
  node->reset();
  return 0;
}
