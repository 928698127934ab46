// Issue 14 item 5 (encryption at rest): with a storage key, no file of the
// store or of its backups holds a known subject id or category value (while
// the write-ahead log holds them and after the flush to table files), while
// the same search finds both in a plain store and its backup; a wrong key or
// no key fails to open with a clear error and changes nothing.
#include "node/storage/encryption.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
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
constexpr char kSubjectId[] = "zq-participant-7731";
constexpr char kCategory[] = "mentoring";
constexpr char kKeyHex[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
constexpr char kOtherKeyHex[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

// Every file under `dir` (recursively): path -> contents.
std::map<std::string, std::string> ReadTree(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    files[entry.path().string()] = s.str();
  }
  return files;
}

// The files of `dir` that contain `needle`.
std::string FilesHolding(const std::string& dir, const std::string& needle) {
  std::string found;
  for (const auto& [path, contents] : ReadTree(dir)) {
    if (absl::StrContains(contents, needle)) absl::StrAppend(&found, path, " ");
  }
  return found;
}

class EncryptionTest : public ::testing::Test {
 protected:
  v1::NodeConfig Config(const std::string& data, const std::string& key_file) {
    v1::NodeConfig config = partner_.Config();
    config.set_data_dir(tmp_.Sub(data));
    *config.add_agreements() = OpenAgreement("eval", "foundation");
    config.mutable_storage()->set_encryption_key_file(key_file);
    config.mutable_storage()->set_backup_dir(tmp_.Sub(data + "-backups"));
    return config;
  }

  // Starts a node on `config`, loads 300 records (one with kSubjectId, all
  // with kCategory among others) and consent, and leaves it running.
  std::unique_ptr<server::Node> StartAndLoad(const v1::NodeConfig& config) {
    absl::StatusOr<std::unique_ptr<server::Node>> node =
        server::Node::Create(config, server::NodeOptions());
    EXPECT_OK(node.status());
    if (!node.ok()) return nullptr;
    auto admin = Connect((*node)->local_address(), partner_.operator_identity(), kTrustDomain);
    std::string csv = kProgramOutcomesCsvHeader;
    std::string consent = "subject,purpose,event,time,valid_until,scope\n";
    const char* programs[] = {"literacy", "numeracy", kCategory, "employment"};
    for (int i = 0; i < 300; ++i) {
      std::string id = i == 0 ? kSubjectId : absl::StrCat("p", i);
      absl::StrAppend(&csv, id, ",", programs[i % 4], ",north,2020,30,true,", i % 100, ",5,100\n");
      absl::StrAppend(&consent, id, ",program-evaluation,GIVEN,2026-01-01,,*\n");
    }
    EXPECT_OK(admin->Ingest("program_outcomes", v1::CSV, false, csv).status());
    EXPECT_OK(admin->ImportConsent(consent).status());
    return std::move(node).value();
  }

  absl::StatusOr<v1::AggregateResult> Ask(const server::Node& node) {
    auto foundation =
        Connect(node.peer_address(), partner_.foundation_identity(), kTrustDomain, "partner-a");
    v1::AggregateQuery q;
    q.set_dataset("program_outcomes");
    q.set_purpose("program-evaluation");
    q.add_group_by("program");
    q.add_aggregates()->set_kind(v1::COUNT);
    return foundation->Aggregate(q);
  }

  TempDir tmp_{"encryption"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  PartnerFixture partner_{tmp_, pki_};  // the certificates; nodes are started here
};

TEST_F(EncryptionTest, PlainStoreHoldsTheTextTheSearchLooksFor) {
  // The search below would find the data if it were not encrypted.
  std::unique_ptr<server::Node> node = StartAndLoad(Config("plain", ""));
  ASSERT_NE(node, nullptr);
  EXPECT_NE(FilesHolding(tmp_.Sub("plain"), kSubjectId), "");
  auto admin = Connect(node->local_address(), partner_.operator_identity(), kTrustDomain);
  ASSERT_OK(admin->Backup().status());
  EXPECT_NE(FilesHolding(tmp_.Sub("plain-backups"), kSubjectId), "");
  EXPECT_NE(FilesHolding(tmp_.Sub("plain-backups"), kCategory), "");
  node.reset();  // flushed to table files at close
  EXPECT_NE(FilesHolding(tmp_.Sub("plain"), kSubjectId), "");
  EXPECT_NE(FilesHolding(tmp_.Sub("plain"), kCategory), "");
}

TEST_F(EncryptionTest, EncryptedStoreAndBackupHoldNeitherIdNorCategory) {
  std::string key_file = tmp_.Write("storage.key", kKeyHex);
  v1::NodeConfig config = Config("data", key_file);
  std::unique_ptr<server::Node> node = StartAndLoad(config);
  ASSERT_NE(node, nullptr);
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult before, Ask(*node));
  // In the write-ahead log.
  EXPECT_EQ(FilesHolding(tmp_.Sub("data"), kSubjectId), "");
  EXPECT_EQ(FilesHolding(tmp_.Sub("data"), kCategory), "");
  // A backup is encrypted too.
  auto admin = Connect(node->local_address(), partner_.operator_identity(), kTrustDomain);
  ASSERT_OK(admin->Backup().status());
  ASSERT_OK_AND_ASSIGN(std::vector<storage::BackupInfo> backups,
                       storage::Storage::ListBackups(tmp_.Sub("data-backups"),
                                                     *storage::ParseEncryptionKey(kKeyHex)));
  EXPECT_EQ(backups.size(), 1u);
  EXPECT_THAT(storage::Storage::ListBackups(tmp_.Sub("data-backups"), ""),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_EQ(FilesHolding(tmp_.Sub("data-backups"), kSubjectId), "");
  EXPECT_EQ(FilesHolding(tmp_.Sub("data-backups"), kCategory), "");
  node.reset();
  // In the table files after the flush at close.
  EXPECT_EQ(FilesHolding(tmp_.Sub("data"), kSubjectId), "");
  EXPECT_EQ(FilesHolding(tmp_.Sub("data"), kCategory), "");

  // The right key opens it and answers as before.
  ASSERT_OK_AND_ASSIGN(node, server::Node::Create(config, server::NodeOptions()));
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult after, Ask(*node));
  ASSERT_EQ(after.cells_size(), before.cells_size());
  for (int i = 0; i < before.cells_size(); ++i) {
    EXPECT_EQ(after.cells(i).SerializeAsString(), before.cells(i).SerializeAsString());
  }
  node.reset();

  // The backup restores with the key, into a store that needs it.
  v1::NodeConfig restored = Config("restored", key_file);
  restored.mutable_storage()->set_backup_dir(tmp_.Sub("data-backups"));
  ProcessOutcome r = RunProcess(tmp_, {BinaryPath("fedshare-node"), "--config",
                                       tmp_.Write("restored.textproto", restored.DebugString()),
                                       "--restore-from", tmp_.Sub("data-backups")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(FilesHolding(tmp_.Sub("restored"), kSubjectId), "");
  ASSERT_OK_AND_ASSIGN(node, server::Node::Create(restored, server::NodeOptions()));
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult from_backup, Ask(*node));
  EXPECT_EQ(from_backup.cells_size(), before.cells_size());
  node.reset();

  // Key rotation: the backup read with the old key, the store written with
  // the new one.
  std::string new_key_file = tmp_.Write("new.key", kOtherKeyHex);
  v1::NodeConfig rotated = Config("rotated", new_key_file);
  std::string rotated_config = tmp_.Write("rotated.textproto", rotated.DebugString());
  r = RunProcess(tmp_, {BinaryPath("fedshare-node"), "--config", rotated_config, "--restore-from",
                        tmp_.Sub("data-backups")});
  EXPECT_EQ(r.exit_code, 1);  // the backup is not readable with the new key
  EXPECT_THAT(r.err, HasSubstr("is it the key the backup was made with?"));
  r = RunProcess(tmp_, {BinaryPath("fedshare-node"), "--config", rotated_config, "--restore-from",
                        tmp_.Sub("data-backups"), "--backup-key-file", key_file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(server::Node::Create(Config("rotated", key_file), server::NodeOptions()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not the key")));
  ASSERT_OK_AND_ASSIGN(node, server::Node::Create(rotated, server::NodeOptions()));
  ASSERT_OK_AND_ASSIGN(v1::AggregateResult after_rotation, Ask(*node));
  ASSERT_EQ(after_rotation.cells_size(), before.cells_size());
  for (int i = 0; i < before.cells_size(); ++i) {
    EXPECT_EQ(after_rotation.cells(i).SerializeAsString(), before.cells(i).SerializeAsString());
  }
}

TEST_F(EncryptionTest, WrongOrMissingKeyFailsClearlyAndChangesNothing) {
  std::string key_file = tmp_.Write("storage.key", kKeyHex);
  v1::NodeConfig config = Config("data", key_file);
  ASSERT_NE(StartAndLoad(config), nullptr);  // started, loaded, closed
  const std::map<std::string, std::string> stored = ReadTree(tmp_.Sub("data"));

  v1::NodeConfig wrong = Config("data", tmp_.Write("other.key", kOtherKeyHex));
  EXPECT_THAT(
      server::Node::Create(wrong, server::NodeOptions()).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not the key of the store")));
  EXPECT_THAT(
      server::Node::Create(Config("data", ""), server::NodeOptions()).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is encrypted: give its key")));
  v1::NodeConfig malformed = Config("data", tmp_.Write("bad.key", "not a key"));
  EXPECT_THAT(server::Node::Create(malformed, server::NodeOptions()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("64 hex digits")));
  // Through the binary, the same words and a non-zero exit.
  ProcessOutcome r =
      RunProcess(tmp_, {BinaryPath("fedshare-node"), "--config",
                        tmp_.Write("wrong.textproto", wrong.DebugString()), "--check-config"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("is not the key of the store"));
  EXPECT_EQ(r.err.find(kOtherKeyHex), std::string::npos);  // the key never printed
  EXPECT_EQ(ReadTree(tmp_.Sub("data")), stored);

  // A key for a plain store is refused too.
  ASSERT_NE(StartAndLoad(Config("plain", "")), nullptr);
  EXPECT_THAT(server::Node::Create(Config("plain", key_file), server::NodeOptions()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is not encrypted")));
}

}  // namespace
}  // namespace fedshare::testing
