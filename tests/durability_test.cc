// Issue 9 (durability): through a real node, an upload that is cut off,
// cancelled or past its deadline writes nothing, a retried ingest with the
// same idempotency key writes once, and a full disk refuses writes while the
// node keeps answering, resumes by itself, and restarts.
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/synthetic.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "query/sql.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_identity_ = pki_.Issue("partner-a", Role::kNode);
    operator_ = pki_.Issue("partner-a", Role::kOperator, "olga");
    config_ = BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub("data"), node_identity_);
    *config_.add_datasets() = ProgramOutcomesSchema();
    *config_.add_agreements() = OpenAgreement("foundation-eval", "foundation");
    ASSERT_OK(server::ValidateNodeConfig(config_));
    if (!DeferStart()) {
      ASSERT_NO_FATAL_FAILURE(StartNode());
    }
  }

  virtual bool DeferStart() const { return false; }

  void StartNode() {
    auto node = server::Node::Create(config_, server::NodeOptions());
    ASSERT_OK(node.status());
    node_ = std::move(node).value();
  }

  // Stops the node once every call in flight has finished, and starts it
  // again on the same store: what is counted afterwards was committed.
  void RestartNode() {
    node_->Shutdown(absl::Seconds(120));
    node_.reset();
    ASSERT_NO_FATAL_FAILURE(StartNode());
  }

  std::unique_ptr<client::NodeClient> Operator() {
    auto client = Connect(node_->local_address(), operator_, kTrustDomain, "partner-a");
    client->set_timeout(absl::Seconds(120));
    return client;
  }

  std::unique_ptr<v1::AdminService::Stub> RawStub() {
    identity::ServerExpectation expect;
    expect.trust_domain = kTrustDomain;
    auto channel = identity::MakeChannel(node_->local_address(), Pki::Files(operator_), expect);
    EXPECT_OK(channel.status());
    return v1::AdminService::NewStub(*channel);
  }

  int64_t StoredRows() {
    auto datasets = Operator()->ListDatasets();
    EXPECT_OK(datasets.status());
    if (!datasets.ok() || datasets->datasets_size() == 0) return -1;
    return datasets->datasets(0).rows();
  }

  static std::string Records(int64_t rows) {
    synthetic::Options options;
    options.rows = rows;
    return synthetic::RecordsCsv(options);
  }

  TempDir tmp_{"durability"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::string node_identity_;
  std::string operator_;
  v1::NodeConfig config_;
  std::unique_ptr<server::Node> node_;
};

TEST_F(DurabilityTest, RetriedIngestWithTheSameKeyWritesOnce) {
  const std::string csv = Records(500);
  auto client = Operator();
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse first,
                       client->Ingest("program_outcomes", v1::CSV, false, csv, nullptr, "run-1"));
  EXPECT_EQ(first.rows_written(), 500);
  EXPECT_FALSE(first.replayed());
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse retry,
                       client->Ingest("program_outcomes", v1::CSV, false, csv, nullptr, "run-1"));
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.rows_written(), 500);
  EXPECT_EQ(retry.new_subjects(), first.new_subjects());
  EXPECT_EQ(StoredRows(), 500);

  // The key survives a restart; another key is a new ingest of a file already
  // loaded: refused, unless duplicates are allowed.
  ASSERT_NO_FATAL_FAILURE(RestartNode());
  client = Operator();
  ASSERT_OK_AND_ASSIGN(retry,
                       client->Ingest("program_outcomes", v1::CSV, false, csv, nullptr, "run-1"));
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(StoredRows(), 500);
  EXPECT_THAT(client->Ingest("program_outcomes", v1::CSV, false, csv, nullptr, "run-2").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--allow-duplicate")));
  EXPECT_EQ(StoredRows(), 500);
  v1::IngestRequest again;
  again.set_dataset("program_outcomes");
  again.set_format(v1::CSV);
  again.set_idempotency_key("run-2");
  again.set_allow_duplicate(true);
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse other, client->Ingest(again, csv));
  EXPECT_FALSE(other.replayed());
  EXPECT_EQ(StoredRows(), 1000);
}

TEST_F(DurabilityTest, SameKeyWithAnotherFileWrites) {
  auto client = Operator();
  ASSERT_OK(client->Ingest("program_outcomes", v1::CSV, false, Records(100), nullptr, "k"));
  ASSERT_OK_AND_ASSIGN(v1::IngestResponse r, client->Ingest("program_outcomes", v1::CSV, false,
                                                            Records(200), nullptr, "k"));
  EXPECT_FALSE(r.replayed());
  EXPECT_EQ(StoredRows(), 300);
}

TEST_F(DurabilityTest, CancelledUploadWritesNothing) {
  const std::string csv = Records(20000);
  const size_t half = csv.find('\n', csv.size() / 2) + 1;  // a cut on a line end
  auto stub = RawStub();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  v1::IngestResponse response;
  auto writer = stub->Ingest(&context, &response);
  v1::IngestRequest request;
  request.set_dataset("program_outcomes");
  request.set_data(csv.substr(0, half));
  ASSERT_TRUE(writer->Write(request));
  context.TryCancel();
  EXPECT_FALSE(writer->Finish().ok());

  ASSERT_NO_FATAL_FAILURE(RestartNode());
  EXPECT_EQ(StoredRows(), 0);
}

TEST_F(DurabilityTest, UploadClosedBeforeItsLastMessageWritesNothing) {
  const std::string csv = Records(1000);
  auto stub = RawStub();
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  v1::IngestResponse response;
  auto writer = stub->Ingest(&context, &response);
  v1::IngestRequest request;
  request.set_dataset("program_outcomes");
  request.set_data(csv.substr(0, csv.find('\n', csv.size() / 2) + 1));
  ASSERT_TRUE(writer->Write(request));
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("nothing was written"));
  EXPECT_EQ(StoredRows(), 0);
}

TEST_F(DurabilityTest, IngestPastItsDeadlineWritesNothing) {
  // The node refuses to commit once the call's deadline has passed. A client
  // deadline that falls inside the commit itself cannot be honoured (the client
  // then retries with its idempotency key), so the deadline here is far shorter
  // than uploading, parsing and staging 400k rows takes on any machine: it has
  // passed before the node reaches the commit.
  const std::string csv = Records(400000);
  auto client = Operator();
  client->set_timeout(absl::Milliseconds(60));
  absl::StatusOr<v1::IngestResponse> r = client->Ingest("program_outcomes", v1::CSV, false, csv);
  EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));

  ASSERT_NO_FATAL_FAILURE(RestartNode());
  EXPECT_EQ(StoredRows(), 0);
}

// A node holding enough records that one question scans for a while.
class SlowQuestionTest : public DurabilityTest {
 protected:
  // Enough that a warm scan takes well over 100 ms on a fast machine: the
  // block scan answered 500,000 rows in 37 ms.
  static constexpr int64_t kRows = 2000000;

  bool DeferStart() const override { return true; }

  void SetUp() override {
    DurabilityTest::SetUp();
    config_.set_max_concurrent_questions(1);
    ASSERT_NO_FATAL_FAILURE(StartNode());
    foundation_ = pki_.Issue("foundation", Role::kNode);
    ASSERT_NO_FATAL_FAILURE(IngestRows(0, kRows));
    ASSERT_OK(Operator()->ImportConsent(synthetic::ConsentCsv(options_)).status());
  }

  // Synthetic records [from, to) of a data set of kRows (later ones revisit
  // its subjects), in files of a million rows, within the ingest memory budget.
  void IngestRows(int64_t from, int64_t to) {
    auto client = Operator();
    for (; from < to; from += 1000000) {
      std::string csv;
      synthetic::AppendRecordsHeader(&csv);
      synthetic::AppendRecords(options_, from, std::min(to, from + 1000000), &csv);
      ASSERT_OK(client->Ingest("program_outcomes", v1::CSV, false, csv).status());
    }
  }

  absl::StatusOr<v1::AggregateResult> Ask(absl::Duration deadline) {
    auto peer = Connect(node_->peer_address(), foundation_, kTrustDomain, "partner-a");
    // Connect first (TLS and all, slow under sanitizers), so the deadline is
    // spent on the question and not on the handshake.
    peer->set_timeout(absl::Seconds(120));
    absl::Status connected = peer->Describe().status();
    if (!connected.ok()) return connected;
    peer->set_timeout(deadline);
    absl::StatusOr<v1::AggregateQuery> query = ParseSql(
        "SELECT program, region, COUNT(*), AVG(outcome_score), STDDEV(sessions_attended), "
        "HISTOGRAM(sessions_attended, 0, 60, 12) FROM program_outcomes "
        "GROUP BY program, region PURPOSE 'program-evaluation'");
    if (!query.ok()) return query.status();
    const absl::Time asked = absl::Now();
    absl::StatusOr<v1::AggregateResult> answer = peer->Aggregate(*query);
    last_question_took_ = absl::Now() - asked;
    return answer;
  }

  std::string foundation_;
  absl::Duration last_question_took_;  // the last Ask's question alone
  const synthetic::Options options_ = [] {
    synthetic::Options o;
    o.rows = kRows;
    return o;
  }();
};

TEST_F(SlowQuestionTest, QuestionPastItsDeadlineStopsAndIsAuditedCancelled) {
  // Asked twice with time to spare: the second scan runs on warm caches, as
  // the cut-short one will, and is the one to undercut (it was 4x faster).
  ASSERT_OK(Ask(absl::Seconds(120)).status());
  ASSERT_OK(Ask(absl::Seconds(120)).status());
  absl::Duration warm = last_question_took_;
  int answered = 2;
  // A faster machine or scan answers too soon to cut short: double the
  // records until the warm question takes over 40 ms.
  for (int64_t rows = kRows; warm <= absl::Milliseconds(40) && rows < 8 * kRows; rows *= 2) {
    ASSERT_NO_FATAL_FAILURE(IngestRows(rows, 2 * rows));
    ASSERT_OK(Ask(absl::Seconds(120)).status());
    ASSERT_OK(Ask(absl::Seconds(120)).status());
    answered += 2;
    warm = last_question_took_;
  }
  ASSERT_GT(warm, absl::Milliseconds(40)) << "the scan is too fast to cut short: " << warm;

  // A quarter of the warm scan (over 10 ms): the deadline passes inside the
  // scan on a fast machine and a slow one (sanitizers) alike, and leaves the
  // node time to start the call so that it is audited.
  EXPECT_THAT(Ask(warm / 4).status(), StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  // The abandoned call ends on its own; wait for its audit entry.
  v1::ListAuditResponse audit;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  do {
    ASSERT_OK_AND_ASSIGN(audit, Operator()->ListAudit(0, 100));
  } while (audit.entries_size() < answered + 1 && absl::Now() < give_up);
  ASSERT_EQ(audit.entries_size(), answered + 1);
  for (int i = 0; i < answered; ++i) {
    EXPECT_EQ(audit.entries(i).decision(), v1::AuditEntry::ANSWERED) << i;
  }
  EXPECT_EQ(audit.entries(answered).decision(), v1::AuditEntry::CANCELLED)
      << audit.entries(answered).DebugString();
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
}

TEST_F(SlowQuestionTest, QuestionsBeyondTheConcurrencyBoundAreRefused) {
  constexpr int kAskers = 4;
  std::vector<absl::Status> outcomes(kAskers);
  std::vector<std::thread> askers;
  for (int i = 0; i < kAskers; ++i) {
    askers.emplace_back([&, i] { outcomes[i] = Ask(absl::Seconds(120)).status(); });
  }
  for (std::thread& t : askers) t.join();
  int answered = 0, refused = 0;
  for (const absl::Status& s : outcomes) {
    if (s.ok()) ++answered;
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      ++refused;
      EXPECT_THAT(s.message(), HasSubstr("max_concurrent_questions = 1"));
    }
  }
  EXPECT_GE(answered, 1);
  EXPECT_GE(refused, 1);
  EXPECT_EQ(answered + refused, kAskers);
}

// True if a fresh connection (its own TCP connection and handshake) gets the
// node's status.
bool ServesFreshConnection(const std::string& address, const std::string& identity_dir) {
  identity::ServerExpectation expect;
  expect.trust_domain = kTrustDomain;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = identity::MakeChannel(address, Pki::Files(identity_dir), expect, args);
  if (!channel.ok()) return false;
  client::NodeClient client(*channel);
  client.set_timeout(absl::Seconds(10));
  return client.Status().ok();
}

// Fresh connections keep being served for three reload intervals (the test
// config reloads every second; the old code failed within one).
void ExpectServedForThreeReloads(const std::string& address, const std::string& identity_dir) {
  const absl::Time until = absl::Now() + absl::Seconds(3);
  int attempts = 0;
  while (absl::Now() < until) {
    ASSERT_TRUE(ServesFreshConnection(address, identity_dir)) << "after " << attempts;
    ++attempts;
  }
}

TEST_F(DurabilityTest, BadTlsFilesOnDiskLeaveTheOldOnesInForce) {
  ASSERT_TRUE(ServesFreshConnection(node_->local_address(), operator_));
  const std::string cert_file = node_identity_ + "/cert.pem";
  const std::string key_file = node_identity_ + "/key.pem";
  ASSERT_OK_AND_ASSIGN(std::string cert, ReadFile(cert_file));
  ASSERT_OK_AND_ASSIGN(std::string key, ReadFile(key_file));

  // A truncated certificate.
  ASSERT_OK(WriteFileAtomic(cert_file, cert.substr(0, cert.size() / 2), 0644));
  ExpectServedForThreeReloads(node_->local_address(), operator_);
  ASSERT_OK(WriteFileAtomic(cert_file, cert, 0644));

  // A renewal written key first (the documented order): the new key with
  // the old certificate does not match, so the old pair stays until the new
  // certificate arrives.
  const std::string fresh = pki_.IssueWith("partner-a-renewed", [] {
    identity::IssueOptions o;
    o.org = "partner-a";
    o.role = Role::kNode;
    return o;
  }());
  ASSERT_OK_AND_ASSIGN(std::string new_key, ReadFile(fresh + "/key.pem"));
  ASSERT_OK_AND_ASSIGN(std::string new_cert, ReadFile(fresh + "/cert.pem"));
  ASSERT_OK(WriteFileAtomic(key_file, new_key, 0600));
  ExpectServedForThreeReloads(node_->local_address(), operator_);
  ASSERT_OK(WriteFileAtomic(cert_file, new_cert, 0644));
  ExpectServedForThreeReloads(node_->local_address(), operator_);
}

// A node whose data directory is a small tmpfs that the test fills.
class DiskFullTest : public DurabilityTest {
 protected:
  static constexpr uint64_t kReserve = uint64_t{8} << 20;

  bool DeferStart() const override { return true; }

  void SetUp() override {
    DurabilityTest::SetUp();
    disk_ = tmp_.Sub("disk");
    ASSERT_EQ(::mkdir(disk_.c_str(), 0700), 0);
    if (::mount("tmpfs", disk_.c_str(), "tmpfs", 0, "size=40m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs for the full-disk test (" << std::strerror(errno)
                   << "); run as root or with CAP_SYS_ADMIN";
    }
    mounted_ = true;
    config_.set_data_dir(disk_ + "/data");
    config_.mutable_storage()->set_disk_reserve_bytes(kReserve);
    foundation_ = pki_.Issue("foundation", Role::kNode);
    ASSERT_NO_FATAL_FAILURE(StartNode());
  }

  void TearDown() override {
    node_.reset();
    if (mounted_) ::umount2(disk_.c_str(), MNT_DETACH);
  }

  uint64_t FreeBytes() const {
    struct statvfs st;
    EXPECT_EQ(::statvfs(disk_.c_str(), &st), 0);
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }

  // Fills the disk until `leave` bytes remain (0: until the file system
  // refuses another byte).
  void Fill(const std::string& name, uint64_t leave) {
    std::ofstream out(disk_ + "/" + name, std::ios::binary | std::ios::app);
    const std::string chunk(64 << 10, 'x');
    while (FreeBytes() > leave + chunk.size()) {
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      out.flush();
      if (!out) break;
    }
    if (leave == 0) {
      while (out.write("x", 1).flush()) {
      }
    }
  }

  void Unfill(const std::string& name) { ::unlink((disk_ + "/" + name).c_str()); }

  absl::StatusOr<v1::AggregateResult> Ask() {
    auto peer = Connect(node_->peer_address(), foundation_, kTrustDomain, "partner-a");
    peer->set_timeout(absl::Seconds(60));
    absl::StatusOr<v1::AggregateQuery> query = ParseSql(
        "SELECT program, COUNT(*) FROM program_outcomes GROUP BY program "
        "PURPOSE 'program-evaluation'");
    if (!query.ok()) return query.status();
    return peer->Aggregate(*query);
  }

  absl::Status IngestRows(int64_t from, int64_t rows) {
    synthetic::Options options;
    options.rows = from + rows;
    std::string csv;
    synthetic::AppendRecordsHeader(&csv);
    synthetic::AppendRecords(options, from, from + rows, &csv);
    return Operator()->Ingest("program_outcomes", v1::CSV, false, csv).status();
  }

  std::string disk_;
  std::string foundation_;
  bool mounted_ = false;
};

TEST_F(DiskFullTest, RefusesWritesKeepsAnsweringResumesAndRestarts) {
  ASSERT_OK(IngestRows(0, 2000));
  ASSERT_OK(Operator()->ImportConsent(synthetic::ConsentCsv(synthetic::Options())).status());

  // Below the reserve: ingest is refused, questions are answered (their
  // audit entries may use the reserve), reads work.
  Fill("filler", kReserve / 2);
  EXPECT_THAT(IngestRows(2000, 2000),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk full")));
  EXPECT_OK(Ask().status());
  EXPECT_EQ(StoredRows(), 2000);

  // Space returns: writes resume without a restart.
  Unfill("filler");
  ASSERT_OK(IngestRows(2000, 2000));
  EXPECT_EQ(StoredRows(), 4000);

  // Completely full: a question fails closed (no audit entry, no answer),
  // reads still work.
  Fill("filler", 0);
  EXPECT_THAT(Ask().status(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk full")));
  EXPECT_THAT(IngestRows(4000, 10),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk full")));
  EXPECT_EQ(StoredRows(), 4000);

  // The node restarts on the full disk, serves reads and refuses writes.
  ASSERT_NO_FATAL_FAILURE(RestartNode());
  EXPECT_EQ(StoredRows(), 4000);
  EXPECT_THAT(IngestRows(4000, 10),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk full")));

  // With space again (and a restart if it had started read-only), all is
  // well: writes work and the audit log verifies.
  Unfill("filler");
  ASSERT_NO_FATAL_FAILURE(RestartNode());
  ASSERT_OK(IngestRows(4000, 10));
  EXPECT_EQ(StoredRows(), 4010);
  EXPECT_OK(Ask().status());
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, Operator()->ListAudit(0, 1000));
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  EXPECT_EQ(audit.total(), 2);
}

}  // namespace
}  // namespace fedshare::testing
