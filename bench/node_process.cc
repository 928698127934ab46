#include "bench/node_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/text_format.h"

extern char** environ;

namespace fedshare::bench {

absl::StatusOr<std::string> ReadLine(int fd, absl::Duration timeout) {
  std::string line;
  const absl::Time deadline = absl::Now() + timeout;
  char c;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    if (read(fd, &c, 1) != 1) return absl::UnavailableError("closed");
    if (c == '\n') return line;
    line.push_back(c);
  }
  return absl::DeadlineExceededError("no line");
}

int64_t ProcStatusKb(pid_t pid, const std::string& key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, key + ":")) continue;
    int64_t value = -1;
    std::vector<std::string> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() >= 2 && absl::SimpleAtoi(f[1], &value)) return value;
  }
  return -1;
}

namespace {

// A /proc stat file's text, and the name between its parentheses.
std::string ReadStat(const std::string& path, std::string* name) {
  std::ifstream in(path);
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  if (name != nullptr) *name = stat.substr(open + 1, close - open - 1);
  return stat;
}

// User plus system CPU time in a /proc stat file's text (zero if unreadable).
absl::Duration CpuOfStat(const std::string& stat) {
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return absl::ZeroDuration();
  // Fields after the ")" that ends the command name; utime and stime are the
  // 14th and 15th fields of the line.
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty());
  int64_t utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &utime) || !absl::SimpleAtoi(f[12], &stime)) {
    return absl::ZeroDuration();
  }
  return absl::Seconds(static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK));
}

}  // namespace

absl::Duration ProcCpu(pid_t pid) {
  return CpuOfStat(ReadStat(absl::StrCat("/proc/", pid, "/stat"), nullptr));
}

absl::Duration ThreadsCpu(pid_t pid, absl::string_view name_prefix) {
  absl::Duration total;
  std::error_code error;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), error)) {
    std::string name;
    const std::string stat = ReadStat((task.path() / "stat").string(), &name);
    if (absl::StartsWith(name, name_prefix)) total += CpuOfStat(stat);
  }
  return total;
}

absl::Duration RocksDbCpu(pid_t pid) { return ThreadsCpu(pid, "rocksdb:"); }

absl::Duration WaitForRocksDbIdle(pid_t pid) {
  const absl::Time start = absl::Now();
  for (absl::Duration before = RocksDbCpu(pid); absl::Now() - start < absl::Minutes(1);) {
    absl::SleepFor(absl::Milliseconds(500));
    const absl::Duration now = RocksDbCpu(pid);
    if (now == before) break;
    before = now;
  }
  return absl::Now() - start;
}

void ResetPeakRss(pid_t pid) { std::ofstream(absl::StrCat("/proc/", pid, "/clear_refs")) << "5"; }

absl::StatusOr<ProcessRun> RunProcess(const std::vector<std::string>& args,
                                      const std::string& stdout_path, absl::Duration timeout) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, (stdout_path + ".err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const absl::Time spawned = absl::Now();
  const int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) return absl::InternalError(absl::StrCat("cannot start ", args[0]));
  ProcessRun run;
  int status = 0;
  rusage usage{};
  // The process's descriptor becomes readable when it exits (a kernel
  // without pidfd_open: waited for without a timeout).
  // (glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage.)
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd exited{pidfd, POLLIN, 0};
    const absl::Time deadline = spawned + timeout;
    int ready;
    do {  // again after a signal, for the time left
      const int64_t left_ms =
          std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
      ready = poll(&exited, 1, static_cast<int>(std::min<int64_t>(left_ms, INT32_MAX)));
    } while (ready < 0 && errno == EINTR);
    close(pidfd);
    if (ready != 1) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &usage);
      return absl::DeadlineExceededError(
          absl::StrCat(args[0], " did not finish within ", absl::FormatDuration(timeout)));
    }
  }
  wait4(pid, &status, 0, &usage);
  run.wall = absl::Now() - spawned;
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.cpu = absl::DurationFromTimeval(usage.ru_utime) + absl::DurationFromTimeval(usage.ru_stime);
  return run;
}

absl::StatusOr<NodeProcess> NodeProcess::Start(const std::string& node_binary,
                                               const v1::NodeConfig& config,
                                               const std::string& config_path,
                                               absl::Duration wait) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  std::ofstream(config_path) << text;
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return absl::InternalError("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  posix_spawn_file_actions_addopen(&actions, 2, (config_path + ".log").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {node_binary, "--config", config_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  NodeProcess node;
  const int spawned = posix_spawn(&node.pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawned != 0) {
    close(pipe_fds[0]);
    node.pid_ = -1;
    return absl::InternalError("cannot start " + node_binary);
  }
  node.stdout_fd_ = pipe_fds[0];
  absl::StatusOr<std::string> ready = ReadLine(node.stdout_fd_, wait);
  if (!ready.ok()) {
    return absl::UnavailableError(absl::StrCat(node_binary, " did not get ready (see ", config_path,
                                               ".log): ", ready.status().message()));
  }
  // "ready org=ORG peer=HOST:PORT local=HOST:PORT [metrics=HOST:PORT]"
  for (absl::string_view part : absl::StrSplit(*ready, ' ')) {
    if (absl::ConsumePrefix(&part, "peer=")) node.peer_address_ = std::string(part);
    if (absl::ConsumePrefix(&part, "local=")) node.local_address_ = std::string(part);
    if (absl::ConsumePrefix(&part, "metrics=")) node.metrics_address_ = std::string(part);
  }
  return node;
}

NodeProcess::NodeProcess(NodeProcess&& other) noexcept
    : pid_(other.pid_),
      stdout_fd_(other.stdout_fd_),
      peer_address_(std::move(other.peer_address_)),
      local_address_(std::move(other.local_address_)),
      metrics_address_(std::move(other.metrics_address_)) {
  other.pid_ = -1;
  other.stdout_fd_ = -1;
}

NodeProcess::~NodeProcess() { Stop(); }

int NodeProcess::Stop() {
  int status = 0;
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
  return status;
}

}  // namespace fedshare::bench
