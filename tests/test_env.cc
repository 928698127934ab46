#include "tests/test_env.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/synthetic.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"

extern char** environ;

namespace fedshare::testing {

TempDir::TempDir(const std::string& name) {
  std::string tmpl = ::testing::TempDir() + "fedshare_" + name + "_XXXXXX";
  char* made = mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr) << std::strerror(errno);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& contents) const {
  std::string path = Sub(name);
  absl::Status written = WriteFileAtomic(path, contents);
  EXPECT_TRUE(written.ok()) << written;
  return path;
}

Pki::Pki(std::string dir, std::string trust_domain)
    : dir_(std::move(dir)), trust_domain_(std::move(trust_domain)), ca_dir_(dir_ + "/ca") {
  absl::Status s = identity::CreateCa(trust_domain_, ca_dir_, 3650);
  EXPECT_TRUE(s.ok()) << s;
}

std::string Pki::Issue(const std::string& org, identity::Role role, const std::string& name) {
  identity::IssueOptions options;
  options.org = org;
  options.role = role;
  options.name = name;
  std::string label =
      absl::StrCat(org, "-", identity::RoleName(role), name.empty() ? "" : "-", name);
  return IssueWith(label, std::move(options));
}

std::string Pki::IssueWith(const std::string& label, identity::IssueOptions options) {
  options.out_dir = dir_ + "/" + label;
  absl::Status s = identity::IssueCertificate(ca_dir_, options);
  EXPECT_TRUE(s.ok()) << s;
  return options.out_dir;
}

identity::ClientTlsFiles Pki::Files(const std::string& identity_dir) {
  identity::ClientTlsFiles files;
  files.cert_file = identity_dir + "/cert.pem";
  files.key_file = identity_dir + "/key.pem";
  files.ca_file = identity_dir + "/ca.pem";
  return files;
}

v1::NodeConfig BaseNodeConfig(const std::string& org, const std::string& trust_domain,
                              const std::string& data_dir, const std::string& identity_dir) {
  v1::NodeConfig config;
  config.set_org_id(org);
  config.set_trust_domain(trust_domain);
  config.set_data_dir(data_dir);
  config.set_peer_address("127.0.0.1:0");
  config.set_local_address("127.0.0.1:0");
  config.mutable_tls()->set_cert_file(identity_dir + "/cert.pem");
  config.mutable_tls()->set_key_file(identity_dir + "/key.pem");
  config.mutable_tls()->set_ca_file(identity_dir + "/ca.pem");
  config.mutable_tls()->set_reload_interval_seconds(1);
  config.set_peer_deadline_ms(10000);
  v1::Purpose* research = config.add_purposes();
  research->set_id("research");
  v1::Purpose* eval = config.add_purposes();
  eval->set_id("program-evaluation");
  eval->set_parent("research");
  config.add_purposes()->set_id("marketing");
  return config;
}

v1::DatasetSchema ProgramOutcomesSchema() { return synthetic::ProgramOutcomesSchema(); }

v1::Agreement OpenAgreement(const std::string& id, const std::string& peer) {
  v1::Agreement a;
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        dataset: "program_outcomes"
        purposes: "program-evaluation"
        aggregates: [ COUNT, COUNT_SUBJECTS, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM ]
        filter_fields: [ "program", "region", "cohort_year", "age", "completed" ]
        group_fields: [ "program", "region", "cohort_year", "completed" ]
        measure_fields: [ "outcome_score", "sessions_attended" ]
      )pb",
      &a);
  a.set_id(id);
  a.add_peers(peer);
  return a;
}

absl::StatusOr<v1::PeerStatus> ListedPeer(client::NodeClient* client, const std::string& org,
                                          bool probe) {
  if (client == nullptr) return absl::InternalError("no client");
  absl::StatusOr<v1::ListPeersResponse> peers = client->ListPeers(probe);
  if (!peers.ok()) return peers.status();
  for (const v1::PeerStatus& p : peers->peers()) {
    if (p.org_id() == org) return p;
  }
  return absl::NotFoundError(absl::StrCat("no peer ", org, " listed"));
}

std::unique_ptr<client::NodeClient> Connect(const std::string& address,
                                            const std::string& identity_dir,
                                            const std::string& trust_domain,
                                            const std::string& org) {
  identity::ServerExpectation expect;
  expect.trust_domain = trust_domain;
  expect.org_id = org;
  auto client = client::NodeClient::Connect(address, Pki::Files(identity_dir), expect);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return nullptr;
  (*client)->set_timeout(absl::Seconds(60));
  return std::move(client).value();
}

RawReply CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  absl::Mutex mu;
  bool done = false;
  RawReply reply;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    absl::MutexLock lock(&mu);
    reply.status = std::move(s);
    done = true;
  });
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
  }
  std::vector<grpc::Slice> slices;
  if (reply.status.ok() && response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      reply.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return reply;
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                              const std::string& stderr_file) {
  // posix_spawn, not fork and exec: a forked copy of this process, whose
  // nodes' threads may hold the allocator's lock, cannot safely allocate or
  // do anything much before exec; a CLI that never started in CI most likely
  // hung there (only the file actions below run in the child).
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  if (!stderr_file.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    return absl::InternalError(
        absl::StrCat("cannot start ", argv[0], ": ", std::strerror(spawned)));
  }
  auto p = std::unique_ptr<Subprocess>(new Subprocess());
  p->pid_ = pid;
  p->stdout_fd_ = fds[0];
  return p;
}

Subprocess::~Subprocess() {
  if (!exited_ && pid_ > 0) Signal(SIGKILL);
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

absl::StatusOr<std::string> Subprocess::ReadLine(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return absl::DeadlineExceededError("no line from the child in time");
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) return absl::UnavailableError("the child closed its stdout (exited?)");
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

int Subprocess::Signal(int signal) {
  if (exited_) return wait_status_;
  kill(pid_, signal);
  return Wait();
}

int Subprocess::Wait() {
  if (exited_) return wait_status_;
  while (waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
  }
  exited_ = true;
  return wait_status_;
}

namespace {

// The value of `key` in a /proc status file ("State", "VmHWM"), trimmed; empty
// if the file or the key is not there.
std::string StatusField(const std::string& status_path, absl::string_view key) {
  const std::string status = ReadFile(status_path).value_or("");
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, key) && absl::ConsumePrefix(&line, ":")) {
      return std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return "";
}

// Each thread of `pid` as "name state wchan", from /proc.
std::string ThreadStates(pid_t pid) {
  const std::string task = absl::StrCat("/proc/", pid, "/task");
  std::vector<std::string> threads;
  if (DIR* dir = opendir(task.c_str()); dir != nullptr) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      const std::string base = absl::StrCat(task, "/", e->d_name);
      std::string name(absl::StripAsciiWhitespace(ReadFile(base + "/comm").value_or("?")));
      threads.push_back(absl::StrCat(name, " ", StatusField(base + "/status", "State"), " ",
                                     ReadFile(base + "/wchan").value_or("?")));
    }
    closedir(dir);
  }
  return threads.empty() ? "(gone)" : absl::StrJoin(threads, ", ");
}

}  // namespace

absl::StatusOr<ProcessOutcome> RunToCompletion(const std::vector<std::string>& argv,
                                               const std::string& stderr_file,
                                               absl::Duration timeout) {
  FEDSHARE_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Subprocess::Start(argv, stderr_file));
  ProcessOutcome outcome;
  while (true) {
    absl::StatusOr<std::string> line = p->ReadLine(timeout);
    if (line.ok()) {
      absl::StrAppend(&outcome.out, *line, "\n");
      continue;
    }
    if (absl::IsDeadlineExceeded(line.status())) {
      // What the child was doing, before the destructor kills it: a hang
      // is otherwise told only as silence.
      return absl::DeadlineExceededError(absl::StrCat(
          argv[0], " printed no line for ", absl::FormatDuration(timeout),
          "; its threads: ", ThreadStates(p->pid()), "; its stdout so far: \"", outcome.out,
          "\"; its stderr: \"", ReadFile(stderr_file).value_or(""), "\""));
    }
    break;  // stdout closed: the process is exiting
  }
  int status = p->Wait();
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  outcome.err = ReadFile(stderr_file).value_or("");
  return outcome;
}

int64_t ProcStatusKb(pid_t pid, const std::string& key) {
  const std::string value = StatusField(absl::StrCat("/proc/", pid, "/status"), key);
  std::vector<absl::string_view> parts = absl::StrSplit(value, ' ', absl::SkipWhitespace());
  int64_t kb = -1;
  return !parts.empty() && absl::SimpleAtoi(parts[0], &kb) ? kb : -1;
}

std::string BinaryPath(const std::string& name) {
  const char* dir = std::getenv("FEDSHARE_BIN_DIR");
  return absl::StrCat(dir != nullptr ? dir : "bin", "/", name);
}

ProcessOutcome RunProcess(const TempDir& tmp, const std::vector<std::string>& argv) {
  static std::atomic<int> runs{0};
  absl::StatusOr<ProcessOutcome> outcome =
      RunToCompletion(argv, tmp.Sub(absl::StrCat("run-", ++runs, ".err")));
  EXPECT_TRUE(outcome.ok()) << outcome.status();
  return outcome.ok() ? *std::move(outcome) : ProcessOutcome();
}

ProcessOutcome RunCli(const TempDir& tmp, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinaryPath("fedshare")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(tmp, argv);
}

ProcessOutcome RunCliAs(const TempDir& tmp, const std::string& identity_dir,
                        const std::string& node_address, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"--node", node_address, "--identity", identity_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCli(tmp, argv);
}

absl::StatusOr<NodeProcess> StartNodeProcess(const v1::NodeConfig& config,
                                             const std::string& config_path,
                                             const std::vector<std::string>& wrapper) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  FEDSHARE_RETURN_IF_ERROR(WriteFileAtomic(config_path, text));
  NodeProcess node;
  std::vector<std::string> argv = wrapper;
  argv.insert(argv.end(),
              {BinaryPath("fedshare-node"), "--config", config_path, "--log-level", "warn"});
  FEDSHARE_ASSIGN_OR_RETURN(node.process, Subprocess::Start(argv, config_path + ".log"));
  absl::StatusOr<std::string> ready = node.process->ReadLine(absl::Seconds(30));
  if (!ready.ok()) {
    // The node's stderr is in a file of the test's folder, gone with it:
    // the failure carries its end, which says why the node stopped.
    absl::StatusOr<std::string> log = ReadFile(config_path + ".log");
    constexpr size_t kLogTail = 4096;
    std::string tail = log.ok() ? *log : absl::StrCat("(unreadable: ", log.status().message(), ")");
    if (tail.size() > kLogTail) tail = tail.substr(tail.size() - kLogTail);
    return absl::Status(ready.status().code(),
                        absl::StrCat(ready.status().message(), "; the node's log ends:\n", tail));
  }
  const std::string& line = *ready;
  // "ready org=ORG peer=HOST:PORT local=HOST:PORT [metrics=HOST:PORT]"
  for (absl::string_view part : absl::StrSplit(line, ' ')) {
    if (absl::ConsumePrefix(&part, "peer=")) node.peer_address = std::string(part);
    if (absl::ConsumePrefix(&part, "local=")) node.local_address = std::string(part);
    if (absl::ConsumePrefix(&part, "metrics=")) node.metrics_address = std::string(part);
  }
  if (node.peer_address.empty() || node.local_address.empty()) {
    return absl::InternalError(absl::StrCat("unexpected ready line: ", line));
  }
  return node;
}

std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    (void)!::write(fd, request.data(), request.size());
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return response;
}

double Sum(const std::string& text, const std::string& name,
           const std::vector<std::string>& labels) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, name + "{") && !absl::StartsWith(line, name + " ")) continue;
    bool match = true;
    for (const std::string& l : labels) match = match && absl::StrContains(line, l);
    if (!match) continue;
    double v = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &v)) total += v;
  }
  return total;
}

}  // namespace fedshare::testing
