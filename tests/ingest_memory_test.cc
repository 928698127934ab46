// Issue 9 ("streamed ingest is processed in bounded chunks") through the real
// programs: a fedshare-node process with a 32 MiB ingest memory budget takes
// files several times that size from the fedshare CLI. A file whose staged
// write fits is committed whole; one whose staged write does not is refused
// with RESOURCE_EXHAUSTED and writes nothing. Either way the node's peak
// resident memory (VmHWM) stays under the budget plus a fixed margin, where
// it used to hold the whole upload and more (a 200 MB ingest peaked at
// 1.9 GB).
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

constexpr char kSchema[] = R"pb(
  name: "events"
  fields { name: "participant" type: CATEGORY role: SUBJECT }
  fields { name: "note" type: CATEGORY role: DIMENSION }
  fields { name: "score" type: INT64 role: MEASURE lower: 0 upper: 1000 }
)pb";

constexpr int64_t kBudgetBytes = int64_t{32} << 20;
// What the node holds besides the ingest's budget: code, gRPC's and
// RocksDB's fixed allocations, threads' stacks, the messages in flight (1 MiB
// slices within gRPC's flow-control window) and one column block. Measured
// on a 2-core Debian 12 VM: ~31 MiB idle, see the test output for the peak.
// The node before streaming held the whole file and more: over 300 MiB for
// these files.
constexpr int64_t kMarginBytes = int64_t{96} << 20;

class IngestMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::NodeConfig config = partner_.BaseConfig();
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(kSchema, config.add_datasets()));
    config.mutable_limits()->set_ingest_memory_budget_bytes(kBudgetBytes);
    ASSERT_OK(partner_.StartProcess(config));
  }

  // Writes rows made by `row(i)` to a file until it holds `bytes`, a row at a
  // time; returns the path and sets *rows.
  template <typename RowFn>
  std::string WriteRows(const std::string& name, int64_t bytes, RowFn row, int64_t* rows) {
    const std::string path = tmp_.Sub(name);
    std::ofstream out(path, std::ios::binary);
    out << "participant,note,score\n";
    int64_t written = 0;
    *rows = 0;
    std::string line;
    while (written < bytes) {
      line = row((*rows)++);
      out << line;
      written += static_cast<int64_t>(line.size());
    }
    EXPECT_TRUE(out.good());
    return path;
  }

  ProcessOutcome Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {BinaryPath("fedshare"), "--node", partner_.local_address(),
                                     "--identity", partner_.operator_identity()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto outcome =
        RunToCompletion(argv, tmp_.Sub(absl::StrCat("cli-", ++runs_, ".err")), absl::Seconds(300));
    EXPECT_OK(outcome.status());
    return outcome.ok() ? *outcome : ProcessOutcome();
  }

  int64_t StoredRows() {
    absl::StatusOr<v1::ListDatasetsResponse> list = partner_.admin().ListDatasets();
    EXPECT_OK(list.status());
    if (!list.ok() || list->datasets_size() != 1) return -1;
    return static_cast<int64_t>(list->datasets(0).rows());
  }

  void ExpectPeakUnderBound(const std::string& what) {
#if defined(FEDSHARE_TEST_ASAN)
    GTEST_SKIP() << "under AddressSanitizer the peak RSS is mostly shadow memory and the "
                    "freed-memory quarantine, not what the budget bounds; the normal build checks "
                    "it";
#endif
    const int64_t peak_kb = ProcStatusKb(partner_.process().pid(), "VmHWM");
    ASSERT_GT(peak_kb, 0);
    std::cout << "node peak RSS " << (peak_kb >> 10) << " MiB for " << what << ", bound "
              << ((kBudgetBytes + kMarginBytes) >> 20) << " MiB\n";
    EXPECT_LT(peak_kb * 1024, kBudgetBytes + kMarginBytes);
  }

  TempDir tmp_{"ingest_memory"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
  int runs_ = 0;
};

TEST_F(IngestMemoryTest, AFileFiveTimesTheBudgetIsCommittedWithinIt) {
  // 160 MiB of rows whose long notes are two category values: the staged
  // write is a small part of the file.
  const std::string pad(1000, 'n');
  int64_t rows = 0;
  const std::string path = WriteRows(
      "big.csv", kBudgetBytes * 5,
      [&](int64_t i) { return absl::StrCat("p", i % 1000, ",", pad, i % 2, ",", i % 1000, "\n"); },
      &rows);
  ProcessOutcome r = Cli({"ingest", "--dataset", "events", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("wrote ", rows, " rows to events (1000 new subjects)\n"));
  EXPECT_EQ(StoredRows(), rows);
  ExpectPeakUnderBound("a 160 MiB file");
}

TEST_F(IngestMemoryTest, AFileWhoseWriteExceedsTheBudgetIsRefusedAndWritesNothing) {
  // 96 MiB of short rows, each a new subject: staged, they would take far
  // more than the budget.
  int64_t rows = 0;
  const std::string path = WriteRows(
      "wide.csv", kBudgetBytes * 3,
      [](int64_t i) { return absl::StrCat("subject-", i, ",a,", i % 1000, "\n"); }, &rows);
  ProcessOutcome r = Cli({"ingest", "--dataset", "events", path});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_THAT(r.err, HasSubstr("limits.ingest_memory_budget_bytes = 33554432"));
  EXPECT_THAT(r.err, HasSubstr("nothing was written"));
  EXPECT_THAT(r.err, HasSubstr("Split the file"));
  EXPECT_EQ(StoredRows(), 0);
  ExpectPeakUnderBound("a refused 96 MiB file");

  // The refused ingest left nothing behind: a small file still loads.
  const std::string small = tmp_.Sub("small.csv");
  ASSERT_OK(WriteFileAtomic(small, "participant,note,score\np1,a,1\n"));
  ProcessOutcome ok = Cli({"ingest", "--dataset", "events", small});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(StoredRows(), 1);
}

}  // namespace
}  // namespace fedshare::testing
