// A node killed with SIGKILL while ingesting restarts with every acknowledged
// batch and no partial one. The writer is a real process: this test binary
// re-executed (fresh, not forked) with FEDSHARE_CRASH_DIR set, running the
// CrashWriter test, which ingests batches until killed and reports each
// acknowledged one on a pipe.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"
#include "node/engine/engine.h"

namespace fedshare::engine {
namespace {

constexpr int kBatchRows = 3000;

v1::DatasetSchema Schema() {
  v1::DatasetSchema schema;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "events"
        fields { name: "sid" type: INT64 role: SUBJECT }
        fields { name: "kind" type: CATEGORY role: DIMENSION }
        fields { name: "value" type: DOUBLE role: MEASURE lower: 0 upper: 1000000000 }
      )pb",
      &schema));
  return schema;
}

std::string Batch(int64_t batch) {
  std::string out = "sid,kind,value\n";
  for (int64_t i = batch * kBatchRows; i < (batch + 1) * kBatchRows; ++i) {
    absl::StrAppend(&out, i % 5000, ",k", i % 97, ",", i, "\n");
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Engine>> OpenEngine(storage::Storage* storage) {
  EngineOptions options;
  options.org_id = "crash";
  options.datasets = {Schema()};
  return Engine::Create(storage, options);
}

// Runs only inside the child process started by the test below.
TEST(CrashWriter, IngestUntilKilled) {
  const char* dir = getenv("FEDSHARE_CRASH_DIR");
  const char* fd_text = getenv("FEDSHARE_CRASH_FD");
  if (dir == nullptr || fd_text == nullptr) GTEST_SKIP() << "runs as the crash test's child";
  const int fd = atoi(fd_text);
  ASSERT_OK_AND_ASSIGN(auto storage, storage::Storage::Create(dir, storage::StorageOptions()));
  ASSERT_OK_AND_ASSIGN(auto engine, OpenEngine(storage.get()));
  ASSERT_OK_AND_ASSIGN(auto reader, engine->OpenReader("events"));
  int64_t batch = static_cast<int64_t>(reader->rows()) / kBatchRows;
  reader.reset();
  for (;; ++batch) {
    ASSERT_OK_AND_ASSIGN(v1::IngestResponse r,
                         engine->Ingest("events", v1::CSV, false, Batch(batch)));
    ASSERT_EQ(r.rows_written(), kBatchRows);
    const int64_t acknowledged = (batch + 1) * kBatchRows;
    ASSERT_EQ(write(fd, &acknowledged, sizeof(acknowledged)), 8);
  }
}

TEST(CrashTest, SigkillDuringIngestKeepsAcknowledgedBatchesAndNoPartialOne) {
  // The writers' store, kept across every kill and reopen.
  const ::fedshare::testing::ScopedTempDir dir("crash_test");
  int64_t acknowledged = 0;
  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    // The child's environment is made here: between fork and exec it may
    // only call what is async-signal-safe (no allocation, so no setenv).
    std::vector<std::string> env = {absl::StrCat("FEDSHARE_CRASH_DIR=", dir.path()),
                                    "FEDSHARE_CRASH_FD=3"};
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      dup2(fds[1], 3);  // keep the write end open across exec, as fd 3
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      execle("/proc/self/exe", "crash_writer", "--gtest_filter=CrashWriter.IngestUntilKilled",
             static_cast<char*>(nullptr), envp.data());
      _exit(127);
    }
    close(fds[1]);
    // Kill after a varying number of acknowledgements, while the next batch
    // is most likely being written.
    for (int acks = 0; acks < 1 + round % 3;) {
      int64_t value;
      ssize_t n = read(fds[0], &value, sizeof(value));
      ASSERT_EQ(n, 8) << "the writer exited early";
      acknowledged = value;
      ++acks;
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    // Acknowledgements sent just before the kill still count.
    int64_t value;
    while (read(fds[0], &value, sizeof(value)) == 8) acknowledged = value;
    close(fds[0]);

    ASSERT_OK_AND_ASSIGN(auto storage,
                         storage::Storage::Create(dir.path(), storage::StorageOptions()));
    ASSERT_OK_AND_ASSIGN(auto engine, OpenEngine(storage.get()));
    ASSERT_OK_AND_ASSIGN(auto reader, engine->OpenReader("events"));
    const int64_t rows = static_cast<int64_t>(reader->rows());
    EXPECT_GE(rows, acknowledged) << "round " << round;
    EXPECT_EQ(rows % kBatchRows, 0) << "round " << round;
    int64_t scanned = 0;
    ASSERT_OK(reader->ForEachBlock([&](const ColumnBlock& b) {
      for (uint32_t r = 0; r < b.rows; ++r) {
        if (b.columns[2].doubles[r] != static_cast<double>(scanned + r)) {
          return absl::DataLossError(absl::StrCat("row ", scanned + r,
                                                  " is wrong: ", b.columns[2].doubles[r],
                                                  " block rows ", b.rows, " sid ", b.subjects[r]));
        }
      }
      scanned += b.rows;
      return absl::OkStatus();
    }));
    EXPECT_EQ(scanned, rows);
    acknowledged = rows;
  }
}

}  // namespace
}  // namespace fedshare::engine
