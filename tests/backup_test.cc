// Issue 14 item 5 (backup and restore): `fedshare backup` while the node
// serves, and `fedshare-node --restore-from` into an empty folder. A restored
// node answers the same question identically and its audit verifies; backups
// taken while an ingest runs restore to a state with all of that ingest or
// none of it.
#include <sys/stat.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "node/storage/storage.h"
#include "testing/partner_fixture.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

std::string Records(int first, int count) {
  std::string csv = kProgramOutcomesCsvHeader;
  const char* programs[] = {"literacy", "numeracy", "mentoring", "employment"};
  const char* regions[] = {"north", "south", "east", "west"};
  for (int i = first; i < first + count; ++i) {
    absl::StrAppend(&csv, "p", i, ",", programs[i % 4], ",", regions[(i / 4) % 4], ",",
                    2019 + i % 4, ",", 18 + i % 50, ",", i % 3 == 0 ? "true" : "false", ",",
                    i % 100, ",", 10, ",", 1000 * (i % 97), "\n");
  }
  return csv;
}

std::string Consents(int count) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int i = 0; i < count; ++i) {
    absl::StrAppend(&csv, "p", i, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  }
  return csv;
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = partner_.Config();
    *config_.add_agreements() = OpenAgreement("eval", "foundation");
    config_.mutable_storage()->set_backup_dir(tmp_.Sub("backups"));
    ASSERT_OK(server::ValidateNodeConfig(config_));
  }

  std::unique_ptr<client::NodeClient> Admin(const std::string& local) {
    return Connect(local, partner_.operator_identity(), kTrustDomain);
  }

  absl::StatusOr<v1::AggregateResult> Ask(const std::string& peer) {
    auto foundation = Connect(peer, partner_.foundation_identity(), kTrustDomain, "partner-a");
    v1::AggregateQuery q;
    q.set_dataset("program_outcomes");
    q.set_purpose("program-evaluation");
    q.add_group_by("program");
    q.add_aggregates()->set_kind(v1::COUNT);
    v1::Aggregate* sum = q.add_aggregates();
    sum->set_kind(v1::SUM);
    sum->set_field("outcome_score");
    return foundation->Aggregate(q);
  }

  // Restores backup `id` into a fresh folder with the real binary and starts
  // an in-process node on it.
  std::unique_ptr<server::Node> Restore(uint32_t id, const std::string& name) {
    v1::NodeConfig restored = config_;
    restored.set_data_dir(tmp_.Sub(name));
    std::string config_file = tmp_.Write(name + ".textproto", restored.DebugString());
    ProcessOutcome r =
        RunProcess(tmp_, {BinaryPath("fedshare-node"), "--config", config_file, "--restore-from",
                          tmp_.Sub("backups"), "--backup-id", absl::StrCat(id)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("restored backup ", id)));
    absl::StatusOr<std::unique_ptr<server::Node>> node =
        server::Node::Create(restored, server::NodeOptions());
    EXPECT_OK(node.status());
    return node.ok() ? std::move(node).value() : nullptr;
  }

  static int ModeOf(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
  }

  TempDir tmp_{"backup"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};
  v1::NodeConfig config_;
};

TEST_F(BackupTest, RestoredBackupAnswersIdenticallyAndItsAuditVerifies) {
  ASSERT_OK(partner_.Start(config_));
  client::NodeClient& admin = partner_.admin();
  ASSERT_OK(admin.Ingest("program_outcomes", v1::CSV, false, Records(0, 400)).status());
  ASSERT_OK(admin.ImportConsent(Consents(400)).status());
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult before, Ask(partner_.node().peer_address()));
  ASSERT_GT(before.cells_size(), 0);

  ProcessOutcome cli = partner_.OperatorCli({"backup"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("backup 1 made at"));
  EXPECT_THAT(cli.out, HasSubstr("--restore-from"));
  EXPECT_EQ(ModeOf(tmp_.Sub("backups")), 0700) << "the store's records, for this user only";
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit_at_backup, admin.ListAudit(0, 1));

  // The node goes on serving and changing after the backup.
  ASSERT_OK(admin.Ingest("program_outcomes", v1::CSV, false, Records(400, 100)).status());
  ASSERT_OK(admin.ImportConsent(Consents(500)).status());
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult after, Ask(partner_.node().peer_address()));
  EXPECT_NE(after.cells(0).SerializeAsString(), before.cells(0).SerializeAsString());

  std::unique_ptr<server::Node> restored = Restore(1, "restored");
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(ModeOf(tmp_.Sub("restored")), 0750) << "as a new store's data_dir";
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult again, Ask(restored->peer_address()));
  ASSERT_EQ(again.cells_size(), before.cells_size());
  for (int i = 0; i < before.cells_size(); ++i) {
    EXPECT_EQ(again.cells(i).SerializeAsString(), before.cells(i).SerializeAsString()) << i;
  }
  auto restored_admin = Admin(restored->local_address());
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, restored_admin->ListAudit(0, 1000));
  EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  // What the log held at the backup, plus the restored node's own answer.
  EXPECT_EQ(audit.total(), audit_at_backup.total() + 1);

  // A restore never mixes with a store.
  v1::NodeConfig into_live = config_;
  std::string live_config = tmp_.Write("live.textproto", into_live.DebugString());
  ProcessOutcome refused = RunProcess(tmp_, {BinaryPath("fedshare-node"), "--config", live_config,
                                             "--restore-from", tmp_.Sub("backups")});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("is not empty: restore into an absent or empty folder"));
}

TEST_F(BackupTest, BackupsDuringAnIngestHoldAllOfItOrNone) {
  ASSERT_OK(partner_.Start(config_));
  client::NodeClient& admin = partner_.admin();
  ASSERT_OK(admin.Ingest("program_outcomes", v1::CSV, false, Records(0, 1000)).status());
  constexpr int kIngests = 6;
  constexpr int kRows = 5000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    auto w = Admin(partner_.node().local_address());
    for (int i = 0; i < kIngests; ++i) {
      EXPECT_OK(
          w->Ingest("program_outcomes", v1::CSV, false, Records(1000 + i * kRows, kRows)).status());
    }
    done = true;
  });
  std::vector<uint32_t> ids;
  while (!done || ids.empty()) {
    absl::StatusOr<v1::BackupResponse> b = admin.Backup();
    ASSERT_OK(b.status());
    ids.push_back(b->backup_id());
  }
  writer.join();
  ASSERT_FALSE(ids.empty());
  // Each backup holds a whole number of the ingests.
  std::set<uint32_t> sample = {ids.front(), ids[ids.size() / 2], ids.back()};
  for (uint32_t id : sample) {
    SCOPED_TRACE(absl::StrCat("backup ", id));
    std::unique_ptr<server::Node> restored = Restore(id, absl::StrCat("restored-", id));
    ASSERT_NE(restored, nullptr);
    auto r = Admin(restored->local_address());
    ASSERT_OK_AND_ASSIGN(v1::ListDatasetsResponse datasets, r->ListDatasets());
    ASSERT_EQ(datasets.datasets_size(), 1);
    const int64_t rows = datasets.datasets(0).rows();
    EXPECT_EQ((rows - 1000) % kRows, 0) << rows;
    EXPECT_GE(rows, 1000);
    EXPECT_LE(rows, 1000 + kIngests * kRows);
    ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse audit, r->ListAudit(0, 1));
    EXPECT_TRUE(audit.chain_valid()) << audit.chain_error();
  }
}

TEST_F(BackupTest, WithoutABackupFolderTheNodeSaysWhatToSet) {
  config_.mutable_storage()->clear_backup_dir();
  ASSERT_OK(partner_.Start(config_));
  EXPECT_THAT(partner_.admin().Backup(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("backup_dir")));
  config_.set_data_dir(tmp_.Sub("empty"));
  ProcessOutcome r = RunProcess(
      tmp_, {BinaryPath("fedshare-node"), "--config",
             tmp_.Write("c.textproto", config_.DebugString()), "--restore-from", tmp_.Sub("none")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no backup folder"));
}

}  // namespace
}  // namespace fedshare::testing
