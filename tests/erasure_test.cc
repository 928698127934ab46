// Issue 14 item 5 (erasure and retention) through a real node, real
// certificates, a real store and the real `fedshare` CLI: an erased subject is
// absent from later answers (counts drop by exactly its rows), from dataset
// and consent exports, from the audit log, and from every byte of the data
// directory once the node stops, while a subject that was not erased is still
// found there. Retention purges exactly what its dataset's retention_days
// says, by an injected clock.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/clock.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_reader.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::Contains;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTrustDomain[] = "fedshare.test";
// Distinctive, so a byte search finds nothing else. The erased id sorts
// first, so it is the smallest key of the subjects' table files: a boundary
// RocksDB writes into the MANIFEST.
constexpr char kErased[] = "erase-me-7f3a9c";
constexpr char kKept[] = "keep-me-4b8d21";

// One row of program_outcomes per subject in `subjects`, in order.
std::string Records(const std::vector<std::string>& subjects, int first = 0) {
  std::string csv = kProgramOutcomesCsvHeader;
  const char* programs[] = {"literacy", "numeracy", "mentoring", "employment"};
  for (size_t k = 0; k < subjects.size(); ++k) {
    const int i = first + static_cast<int>(k);
    absl::StrAppend(&csv, subjects[k], ",", programs[i % 4], ",north,", 2019 + i % 4, ",",
                    18 + i % 50, ",", i % 3 == 0 ? "true" : "false", ",", i % 100, ",10,",
                    1000 * (i % 97), "\n");
  }
  return csv;
}

// Whether a table file's keys or values, as RocksDB decodes them, hold
// `needle`. Table blocks are compressed, so their raw bytes may not show an id
// that is there. (RocksDB is read directly here, and only here, to check the
// store from outside: no fedshare code is involved.)
bool TableHolds(const std::string& path, const std::string& needle) {
  rocksdb::Options options;
  rocksdb::SstFileReader reader(options);
  rocksdb::Status opened = reader.Open(path);
  EXPECT_TRUE(opened.ok()) << path << ": " << opened.ToString();
  if (!opened.ok()) return false;
  std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().ToString().find(needle) != std::string::npos ||
        it->value().ToString().find(needle) != std::string::npos) {
      return true;
    }
  }
  EXPECT_TRUE(it->status().ok()) << path << ": " << it->status().ToString();
  return false;
}

// Every byte of every file under `dir` (table files, write-ahead logs,
// MANIFEST, OPTIONS, CURRENT, ...), and every table file decoded: the files
// that hold `needle`.
std::vector<std::string> FilesHolding(const std::string& dir, const std::string& needle) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string path = entry.path().string();
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos ||
        (absl::EndsWith(path, ".sst") && TableHolds(path, needle))) {
      found.push_back(path);
    }
  }
  return found;
}

class ErasureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = partner_.Config();
    v1::DatasetSchema followups = ProgramOutcomesSchema();
    followups.set_name("followups");
    followups.set_retention_days(2);
    *config_.add_datasets() = followups;
    *config_.add_agreements() = OpenAgreement("eval", "foundation");
    ASSERT_OK(server::ValidateNodeConfig(config_));
  }

  void Start() {
    server::NodeOptions options;
    options.clock = &clock_;
    ASSERT_OK(partner_.Start(config_, options));
  }

  client::NodeClient& admin() { return partner_.admin(); }

  ProcessOutcome Cli(const std::vector<std::string>& args) { return partner_.OperatorCli(args); }

  void Ingest(const std::string& dataset, const std::string& csv) {
    v1::IngestRequest header;
    header.set_dataset(dataset);
    header.set_format(v1::CSV);
    header.set_allow_duplicate(true);
    absl::StatusOr<v1::IngestResponse> r = admin().Ingest(header, csv);
    ASSERT_OK(r.status());
    ASSERT_EQ(r->rows_rejected(), 0) << r->DebugString();
  }

  // COUNT(*) and COUNT(DISTINCT subject) over program_outcomes, asked by
  // foundation; {-1, -1} if refused.
  std::pair<double, double> Counts() {
    v1::AggregateQuery q;
    q.set_dataset("program_outcomes");
    q.set_purpose("program-evaluation");
    q.add_aggregates()->set_kind(v1::COUNT);
    q.add_aggregates()->set_kind(v1::COUNT_SUBJECTS);
    absl::StatusOr<v1::AggregateResult> r = partner_.peer().Aggregate(q);
    EXPECT_OK(r.status());
    if (!r.ok() || r->cells_size() != 1) return {-1, -1};
    return {r->cells(0).values(0).value(), r->cells(0).values(1).value()};
  }

  std::string Export(const std::vector<std::string>& args, const std::string& name) {
    std::vector<std::string> full = args;
    full.push_back("--out");
    full.push_back(tmp_.Sub(name));
    ProcessOutcome r = Cli(full);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ReadFile(tmp_.Sub(name)).value_or("<no export>");
  }

  TempDir tmp_{"erasure"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  FakeClock clock_{absl::Now()};  // outlives the node
  PartnerFixture partner_{tmp_, pki_};
  v1::NodeConfig config_;
};

TEST_F(ErasureTest, AnErasedSubjectIsInNoAnswerExportAuditEntryOrFile) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // 5,000 rows over 40 people, so the erased subject's rows sit in both
  // blocks (rows 10 and 4100) and at the very end (row 4999).
  std::vector<std::string> subjects;
  for (int i = 0; i < 5000; ++i) {
    const char* who = i == 10 || i == 4100 || i == 4999 ? kErased
                      : i == 20 || i == 30              ? kKept
                                                        : nullptr;
    subjects.push_back(who != nullptr ? who : absl::StrCat("p", i % 40));
  }
  ASSERT_NO_FATAL_FAILURE(Ingest("program_outcomes", Records(subjects)));
  ASSERT_NO_FATAL_FAILURE(Ingest("followups", Records({kErased, "p1", kErased, kKept})));
  std::string consent = "subject,purpose,event,time,valid_until,scope\n";
  for (int i = 0; i < 40; ++i) {
    absl::StrAppend(&consent, "p", i, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  }
  absl::StrAppend(&consent, kErased, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n", kErased,
                  ",marketing,REFUSED,2026-01-02T00:00:00Z,,*\n", kKept,
                  ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  ASSERT_OK(admin().ImportConsent(consent).status());

  // Brute force: every row counts (all consent), and 42 people.
  EXPECT_EQ(Counts(), std::make_pair(5000.0, 42.0));
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit_before, admin().ListAudit(0, 1000));

  ProcessOutcome erased = Cli({"erase", "--subject", kErased, "--yes"});
  ASSERT_EQ(erased.exit_code, 0) << erased.err;
  EXPECT_THAT(erased.out, HasSubstr("erased 5 records and 2 consent events"));
  EXPECT_THAT(erased.out, HasSubstr("program_outcomes: 3 records"));
  EXPECT_THAT(erased.out, HasSubstr("followups: 2 records"));
  EXPECT_THAT(erased.err, Not(HasSubstr("warning")));

  // Later answers: exactly its 3 rows and 1 person fewer.
  EXPECT_EQ(Counts(), std::make_pair(4997.0, 41.0));

  // Exports: the dataset's and consent's.
  const std::string outcomes = Export({"export", "--dataset", "program_outcomes"}, "po.csv");
  const std::string followups = Export({"export", "--dataset", "followups"}, "fu.csv");
  const std::string consents = Export({"consent", "export"}, "consent.csv");
  for (const std::string* text : {&outcomes, &followups, &consents}) {
    EXPECT_FALSE(absl::StrContains(*text, kErased));
    EXPECT_TRUE(absl::StrContains(*text, kKept));
  }
  EXPECT_EQ(std::count(outcomes.begin(), outcomes.end(), '\n'), 1 + 4997);

  // The audit entry says what happened without the id.
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, admin().ListAudit(0, 1000));
  ASSERT_EQ(audit.total(), audit_before.total() + 2);  // the erasure and the answer after it
  bool found = false;
  for (int i = 0; i < audit.entries_size(); ++i) {
    const v1::AuditEntry& e = audit.entries(i);
    EXPECT_FALSE(absl::StrContains(e.DebugString(), kErased));
    EXPECT_FALSE(absl::StrContains(audit.leaves(i), kErased));
    if (e.method() != "AdminService.EraseSubject") continue;
    found = true;
    EXPECT_THAT(e.reason(), HasSubstr("5 records (program_outcomes: 3, followups: 2)"));
    EXPECT_THAT(e.reason(), HasSubstr("2 consent events"));
    EXPECT_THAT(e.caller(), HasSubstr("/operator/olga"));
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();

  // Erasing it again: NOT_FOUND, nothing written or audited.
  ProcessOutcome again = Cli({"erase", "--subject", kErased, "--yes"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("no subject with this id is stored"));
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit_after, admin().ListAudit(0, 1));
  EXPECT_EQ(audit_after.total(), audit.total());
  // Without --yes and no terminal, nothing is asked or erased.
  ProcessOutcome unconfirmed = Cli({"erase", "--subject", kKept});
  EXPECT_EQ(unconfirmed.exit_code, 2);
  EXPECT_THAT(unconfirmed.err, HasSubstr("--yes"));

  // The bytes: no file of the stopped node's store holds the erased id; the
  // kept one is found, so the search can find an id.
  partner_.Stop();
  EXPECT_THAT(FilesHolding(config_.data_dir(), kErased), ::testing::IsEmpty());
  // The kept id is found, in a table file too: the search can find an id
  // where the erased one was.
  EXPECT_THAT(FilesHolding(config_.data_dir(), kKept), Contains(EndsWith(".sst")));

  // The erasure survives a restart, and later ingests keep counters exact.
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(Counts(), std::make_pair(4997.0, 41.0));
  ASSERT_NO_FATAL_FAILURE(Ingest("program_outcomes", Records({"p1", kErased}, 7000)));
  ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse listed, admin().ListDatasets());
  EXPECT_EQ(listed.datasets(0).rows(), 4999);
  EXPECT_EQ(listed.datasets(0).subjects(), 42);  // the id comes back as a new subject
  EXPECT_EQ(listed.datasets(1).rows(), 2);
  EXPECT_EQ(listed.datasets(1).subjects(), 2);
}

TEST_F(ErasureTest, AnIdOverMaxStringBytesIsRefusedUnwrittenAndUnauditedUntilTheLimitIsRaised) {
  // Ingest and erasure share limits.max_string_bytes (256 by default): a
  // 300-byte id is refused by ingest at the default.
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string long_id = absl::StrCat("long-", std::string(295, 'x'));
  v1::IngestRequest header;
  header.set_dataset("program_outcomes");
  header.set_format(v1::CSV);
  absl::StatusOr<v1::IngestResponse> refused_ingest =
      admin().Ingest(header, Records({long_id, kKept}));
  ASSERT_OK(refused_ingest.status());
  EXPECT_EQ(refused_ingest->rows_written(), 0);
  ASSERT_EQ(refused_ingest->errors_size(), 1);
  EXPECT_THAT(refused_ingest->errors(0).reason(),
              HasSubstr("the subject id is 300 bytes, over limits.max_string_bytes = 256"));

  // A node that took such ids under a larger limit, then had it lowered:
  // the erasure is bounded by the limit in force, before any work or audit.
  partner_.Stop();
  config_.mutable_limits()->set_max_string_bytes(512);
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Ingest("program_outcomes", Records({long_id, kKept})));
  const std::string consent = absl::StrCat("subject,purpose,event,time,valid_until,scope\n", long_id,
                                           ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse imported, admin().ImportConsent(consent));
  EXPECT_EQ(imported.events_new(), 1);
  partner_.Stop();
  config_.mutable_limits()->set_max_string_bytes(256);
  ASSERT_NO_FATAL_FAILURE(Start());
  // Consent import is held to the limit in force as ingest is.
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse refused_consent,
                       admin().ImportConsent(absl::StrCat(consent, "other,program-evaluation,GIVEN,"
                                                                   "2026-01-01T00:00:00Z,,*\n")));
  EXPECT_EQ(refused_consent.events_new(), 0);
  ASSERT_EQ(refused_consent.errors_size(), 1);
  EXPECT_THAT(refused_consent.errors(0).reason(),
              HasSubstr("the subject id is 300 bytes, over limits.max_string_bytes = 256"));
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit_before, admin().ListAudit(0, 1));

  ProcessOutcome refused = Cli({"erase", "--subject", long_id, "--yes"});
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(refused.err,
              HasSubstr("the subject id (300 bytes) is over the limit max_string_bytes = 256"));
  EXPECT_THAT(refused.err, HasSubstr("raise limits { max_string_bytes } in the node config"));
  EXPECT_THAT(refused.err, Not(HasSubstr(long_id)));
  // Nothing audited, nothing written.
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit_after, admin().ListAudit(0, 1));
  EXPECT_EQ(audit_after.total(), audit_before.total());
  ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse listed, admin().ListDatasets());
  EXPECT_EQ(listed.datasets(0).rows(), 2);
  EXPECT_EQ(listed.datasets(0).subjects(), 2);
  EXPECT_THAT(Export({"export", "--dataset", "program_outcomes"}, "po.csv"), HasSubstr(long_id));
  EXPECT_THAT(Export({"consent", "export"}, "consent.csv"), HasSubstr(long_id));

  // With the limit raised as the message says, the same id is erased.
  partner_.Stop();
  config_.mutable_limits()->set_max_string_bytes(512);
  ASSERT_NO_FATAL_FAILURE(Start());
  ProcessOutcome erased = Cli({"erase", "--subject", long_id, "--yes"});
  ASSERT_EQ(erased.exit_code, 0) << erased.err;
  ASSERT_OK_AND_ASSIGN(listed, admin().ListDatasets());
  EXPECT_EQ(listed.datasets(0).rows(), 1);
  EXPECT_EQ(listed.datasets(0).subjects(), 1);
  EXPECT_THAT(Export({"consent", "export"}, "consent-after.csv"), Not(HasSubstr(long_id)));
}

TEST_F(ErasureTest, RetentionPurgesOnlyRecordsPastTheDatasetsRetention) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Ingest("followups", Records({"a1", "a2", "a3"})));
  ASSERT_NO_FATAL_FAILURE(Ingest("program_outcomes", Records({"a1"})));  // no retention
  clock_.Advance(absl::Hours(24));
  ASSERT_NO_FATAL_FAILURE(Ingest("followups", Records({"b1", "b2"}, 10)));

  ProcessOutcome early = Cli({"retention", "run"});
  ASSERT_EQ(early.exit_code, 0) << early.err;
  EXPECT_THAT(early.out, HasSubstr("followups: purged 0 records"));

  // Three days after the first load, it is older than retention_days = 2.
  clock_.Advance(absl::Hours(48));
  ProcessOutcome run = Cli({"retention", "run"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("followups: purged 3 records"));
  EXPECT_THAT(run.out, HasSubstr("kept 2"));
  const std::string left = Export({"export", "--dataset", "followups"}, "fu.csv");
  EXPECT_EQ(left,
            absl::StrCat(
                kProgramOutcomesCsvHeader,
                Records({"b1", "b2"}, 10).substr(std::string(kProgramOutcomesCsvHeader).size())));
  ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse listed, admin().ListDatasets());
  EXPECT_EQ(listed.datasets(0).rows(), 1);  // program_outcomes keeps everything
  EXPECT_EQ(listed.datasets(1).rows(), 2);
  EXPECT_EQ(listed.datasets(1).subjects(), 2);

  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, admin().ListAudit(0, 1000));
  int purges = 0;
  for (const v1::AuditEntry& e : audit.entries()) {
    if (e.rule() != "retention") continue;
    ++purges;
    EXPECT_EQ(e.dataset(), "followups");
    EXPECT_THAT(e.reason(), HasSubstr("purged 3 records"));
    EXPECT_THAT(e.reason(), HasSubstr("retention_days 2"));
  }
  EXPECT_EQ(purges, 1);  // a run that purges nothing writes no entry

  // A node started after its records expired purges them before it serves,
  // audited as the node itself.
  partner_.Stop();
  clock_.Advance(absl::Hours(24 * 3));
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_OK_AND_ASSIGN(listed, admin().ListDatasets());
  EXPECT_EQ(listed.datasets(1).rows(), 0);
  EXPECT_EQ(listed.datasets(0).rows(), 1);
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse later, admin().ListAudit(audit.total(), 1000));
  ASSERT_EQ(later.entries_size(), 1);
  EXPECT_EQ(later.entries(0).rule(), "retention");
  EXPECT_THAT(later.entries(0).reason(), HasSubstr("purged 2 records"));
  EXPECT_THAT(later.entries(0).caller(), EndsWith("/org/partner-a/node"));
}

}  // namespace
}  // namespace fedshare::testing
