// Issue 14, items 1, 2 and 4, end to end: a foundation and two partners as
// real nodes (in process, mTLS on loopback, RocksDB in temp dirs), asked by
// an analyst through the foundation, with the real CLI verifying receipts.
// Someone with a partner's disk alters, truncates or rewrites its audit log
// (re-signing with the partner's own key, so it verifies locally); the
// partner stops answering, or the foundation catches it at the next answer.
#include <openssl/sha.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "node/audit/checkpoint.h"
#include "node/audit/leaf.h"
#include "node/audit/merkle.h"
#include "node/common/status_matchers.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "node/storage/keys.h"
#include "node/storage/storage.h"
#include "query/sql.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";
constexpr char kSql[] =
    "SELECT program, COUNT(*) FROM program_outcomes WHERE age >= 18 GROUP BY program "
    "PURPOSE 'program-evaluation'";

std::string Records(const std::string& org) {
  std::string csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  const char* programs[] = {"literacy", "numeracy"};
  for (int s = 0; s < 200; ++s) {
    absl::StrAppend(&csv, org, "-subject-", s, ",", programs[s % 2], ",north,", 2018 + s % 5, ",",
                    20 + (s * 7) % 40, ",true,", s % 100, ",", s % 30, ",0\n");
  }
  return csv;
}

std::string Consents(const std::string& org) {
  std::string csv = "subject,purpose,event,time,valid_until,scope\n";
  for (int s = 0; s < 200; ++s) {
    absl::StrAppend(&csv, org, "-subject-", s, ",program-evaluation,GIVEN,2025-06-01,,*\n");
  }
  return csv;
}

std::string LeafKey(uint64_t index) {
  std::string key(1, 'l');
  for (int i = 0; i < 8; ++i) key.push_back(static_cast<char>(index >> (56 - 8 * i)));
  return key;
}

std::string CheckpointKey(uint64_t size) {
  std::string key(1, 'c');
  for (int i = 0; i < 8; ++i) key.push_back(static_cast<char>(size >> (56 - 8 * i)));
  return key;
}

// --- An independent implementation of docs/storage-format.md, "Audit leaf".
// It deliberately does not call node/audit's encoder.
void DocField(std::string& out, int tag, const std::string& value) {
  if (value.empty()) return;
  out.push_back(static_cast<char>(tag));
  const uint32_t n = static_cast<uint32_t>(value.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out += value;
}

std::string DocU64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
  return out;
}

std::string DocProto(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

std::string DocLeaf(const v1::AuditEntry& e) {
  std::string out = "FSAL";
  out.push_back('\x01');
  if (e.index() != 0) DocField(out, 0x01, DocU64(e.index()));
  if (e.time_unix_ms() != 0) DocField(out, 0x02, DocU64(static_cast<uint64_t>(e.time_unix_ms())));
  DocField(out, 0x03, e.caller());
  DocField(out, 0x04, e.method());
  DocField(out, 0x05, e.question_hash());
  DocField(out, 0x06, e.dataset());
  DocField(out, 0x07, e.purpose());
  if (e.decision() != 0) DocField(out, 0x08, DocU64(static_cast<uint64_t>(e.decision())));
  DocField(out, 0x09, e.agreement_id());
  DocField(out, 0x0a, e.rule());
  DocField(out, 0x0b, e.reason());
  DocField(out, 0x0c, e.result_hash());
  DocField(out, 0x0d, e.previous_hash());
  if (e.epsilon_spent() != 0.0) {
    uint64_t bits;
    double eps = e.epsilon_spent();
    memcpy(&bits, &eps, 8);
    DocField(out, 0x0e, DocU64(bits));
  }
  if (e.has_question()) DocField(out, 0x0f, DocProto(e.question()));
  for (const v1::Predicate& p : e.applied_where()) {
    // Written even when empty (length 0).
    std::string bytes = DocProto(p);
    out.push_back('\x10');
    const uint32_t n = static_cast<uint32_t>(bytes.size());
    out.push_back(static_cast<char>(n >> 24));
    out.push_back(static_cast<char>(n >> 16));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n));
    out += bytes;
  }
  DocField(out, 0x11, e.applied_where_text());
  DocField(out, 0x12, e.on_behalf_of());
  if (e.has_manifest()) DocField(out, 0x13, DocProto(e.manifest()));
  return out;
}

std::string DocLeafHash(const std::string& leaf) {
  std::string in = std::string(1, '\0') + leaf;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

class AuditMerkleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& [org, purpose] :
         {std::pair<std::string, std::string>{"partner-a", "program-evaluation"},
          {"partner-b", "marketing"}}) {
      std::string node_id = pki_.Issue(org, Role::kNode);
      operators_[org] = pki_.Issue(org, Role::kOperator, "op");
      v1::NodeConfig config = BaseNodeConfig(org, kTrustDomain, tmp_.Sub(org + "-data"), node_id);
      *config.add_datasets() = ProgramOutcomesSchema();
      v1::Agreement a = OpenAgreement("foundation-" + purpose, "foundation");
      a.clear_purposes();
      a.add_purposes(purpose);
      *config.add_agreements() = a;
      ASSERT_OK(server::ValidateNodeConfig(config));
      configs_[org] = config;
      StartNode(org);
      auto admin = Admin(org);
      ASSERT_OK(admin->Ingest("program_outcomes", v1::CSV, false, Records(org)).status());
      ASSERT_OK_AND_ASSIGN(auto consented, admin->ImportConsent(Consents(org)));
      ASSERT_EQ(consented.events_rejected(), 0);
    }
    std::string foundation_id = pki_.Issue("foundation", Role::kNode);
    operators_["foundation"] = pki_.Issue("foundation", Role::kOperator, "op");
    ana_ = pki_.Issue("foundation", Role::kAnalyst, "ana");
    configs_["foundation"] =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_id);
    StartFoundation();
  }

  void StartNode(const std::string& org) {
    nodes_[org].reset();
    auto node = server::Node::Create(configs_[org], server::NodeOptions());
    ASSERT_OK(node.status());
    nodes_[org] = std::move(node).value();
  }

  // (Re)starts the foundation with the partners' current addresses.
  void StartFoundation() {
    v1::NodeConfig& config = configs_["foundation"];
    config.clear_peers();
    for (const char* org : {"partner-a", "partner-b"}) {
      v1::PeerConfig* peer = config.add_peers();
      peer->set_org_id(org);
      peer->set_address(nodes_[org]->peer_address());
    }
    StartNode("foundation");
  }

  std::unique_ptr<client::NodeClient> Admin(const std::string& org) {
    auto admin = Connect(nodes_[org]->local_address(), operators_[org], kTrustDomain, org);
    EXPECT_NE(admin, nullptr);
    return admin;
  }

  v1::FederatedAggregateResponse AskAll() {
    auto analyst = Connect(nodes_["foundation"]->local_address(), ana_, kTrustDomain);
    EXPECT_NE(analyst, nullptr);
    v1::FederatedAggregateRequest request;
    request.set_sql(kSql);
    request.set_all_peers(true);
    absl::StatusOr<v1::FederatedAggregateResponse> response = analyst->FederatedAggregate(request);
    EXPECT_OK(response.status());
    return response.value_or(v1::FederatedAggregateResponse());
  }

  static const v1::PartnerCoverage& Coverage(const v1::FederatedAggregateResponse& r,
                                             const std::string& org) {
    for (const v1::PartnerCoverage& c : r.coverage()) {
      if (c.org_id() == org) return c;
    }
    return v1::PartnerCoverage::default_instance();
  }

  // What someone with the stopped node's disk and its signing key (in meta)
  // can do: replace the log by `leaves`, with a fresh checkpoint signed at
  // every size, so that the node's own check at start passes.
  void ReplaceLog(const std::string& org,
                  const std::function<void(std::vector<std::string>&)>& edit) {
    nodes_[org].reset();
    auto storage = storage::Storage::Create(configs_[org].data_dir(), storage::StorageOptions());
    ASSERT_OK(storage.status());
    std::vector<std::string> leaves;
    for (uint64_t i = 0;; ++i) {
      ASSERT_OK_AND_ASSIGN(auto leaf, (*storage)->Get(storage::ColumnFamily::kAudit, LeafKey(i)));
      if (!leaf.has_value()) break;
      leaves.push_back(*leaf);
      ASSERT_OK((*storage)->Delete(storage::ColumnFamily::kAudit, LeafKey(i)));
      ASSERT_OK((*storage)->Delete(storage::ColumnFamily::kAudit, CheckpointKey(i + 1)));
    }
    edit(leaves);
    ASSERT_OK_AND_ASSIGN(
        auto seed, (*storage)->Get(storage::ColumnFamily::kMeta, storage::MetaAuditSigningKey()));
    ASSERT_TRUE(seed.has_value());
    ASSERT_OK_AND_ASSIGN(auto signer, audit::CheckpointSigner::Create(*seed));
    audit::MerkleTree tree;
    for (size_t i = 0; i < leaves.size(); ++i) {
      tree.Append(audit::LeafHash(leaves[i]));
      v1::SignedCheckpoint c =
          signer->Sign(org, tree.size(), tree.Root(tree.size()), absl::FromUnixSeconds(1));
      ASSERT_OK((*storage)->Put(storage::ColumnFamily::kAudit, LeafKey(i), leaves[i]));
      ASSERT_OK((*storage)->Put(storage::ColumnFamily::kAudit, CheckpointKey(i + 1),
                                c.SerializeAsString()));
    }
  }

  std::string WriteJson(const std::string& name, const google::protobuf::Message& m) {
    std::string json;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(m, &json).ok());
    return tmp_.Write(name, json);
  }

  ProcessOutcome Cli(const std::string& org, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"--node", nodes_[org]->local_address(), "--identity",
                                     operators_[org]};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCli(tmp_, argv);
  }

  TempDir tmp_{"audit_merkle"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::map<std::string, v1::NodeConfig> configs_;
  std::map<std::string, std::string> operators_;
  std::string ana_;
  std::map<std::string, std::unique_ptr<server::Node>> nodes_;
};

TEST_F(AuditMerkleTest, EveryAnswerAndRefusalCarriesAReceiptTheCliVerifies) {
  v1::FederatedAggregateResponse first = AskAll();
  const v1::PartnerCoverage& a = Coverage(first, "partner-a");
  const v1::PartnerCoverage& b = Coverage(first, "partner-b");
  ASSERT_EQ(a.state(), v1::PartnerCoverage::ANSWERED) << a.DebugString();
  ASSERT_EQ(b.state(), v1::PartnerCoverage::REFUSED) << b.DebugString();
  // The refusal carries its receipt too.
  ASSERT_TRUE(b.has_receipt());
  EXPECT_OK(audit::VerifyReceipt(b.receipt(), ""));
  ASSERT_OK(audit::VerifyReceipt(a.receipt(), ""));
  ASSERT_OK(audit::VerifyReceipt(first.combined().receipt(), ""));
  v1::FederatedAggregateResponse second = AskAll();
  // The second answer proves consistency with the checkpoint the foundation holds.
  EXPECT_EQ(Coverage(second, "partner-a").receipt().consistency_from(),
            a.receipt().checkpoint().tree_size());
  // So does a refusal's: a call-home partner could not be asked for a proof
  // afterwards, so a refusal proves consistency like an answer.
  const v1::PartnerCoverage& b2 = Coverage(second, "partner-b");
  EXPECT_EQ(b2.state(), v1::PartnerCoverage::REFUSED) << b2.DebugString();
  EXPECT_EQ(b2.receipt().consistency_from(), b.receipt().checkpoint().tree_size());
  EXPECT_GT(b2.receipt().checkpoint().tree_size(), b.receipt().checkpoint().tree_size());

  const std::string answer = WriteJson("answer.json", second);
  ProcessOutcome verified = Cli("foundation", {"audit", "verify", "--receipt", answer});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("OK      receipt of partner-a"));
  EXPECT_THAT(verified.out, HasSubstr("OK      receipt of partner-b"));
  EXPECT_THAT(verified.out, HasSubstr("OK      receipt of foundation"));
  EXPECT_THAT(verified.out, ::testing::Not(HasSubstr("FAILED")));

  // A later checkpoint against an earlier one, the proof asked of partner-a's node.
  const std::string earlier = WriteJson("earlier.json", a.receipt().checkpoint());
  const std::string later = WriteJson("later.json", Coverage(second, "partner-a").receipt());
  verified = Cli("partner-a", {"audit", "verify", "--earlier", earlier, "--later", later});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;

  // The whole log, exported and checked.
  const std::string exported = tmp_.Sub("partner-a-log.json");
  ProcessOutcome done = Cli("partner-a", {"audit", "export", "--out", exported});
  ASSERT_EQ(done.exit_code, 0) << done.out << done.err;
  verified = Cli("partner-a", {"audit", "verify", "--log", exported});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("OK      log of partner-a"));
}

TEST_F(AuditMerkleTest, AForgedCheckpointSignatureIsRejected) {
  v1::FederatedAggregateResponse answered = AskAll();
  v1::Receipt receipt = Coverage(answered, "partner-a").receipt();
  ASSERT_TRUE(receipt.has_checkpoint());
  receipt.mutable_checkpoint()->set_time_unix_ms(receipt.checkpoint().time_unix_ms() + 1);
  ProcessOutcome verified =
      Cli("foundation", {"audit", "verify", "--receipt", WriteJson("forged.json", receipt)});
  EXPECT_EQ(verified.exit_code, 1) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("bad signature"));
}

TEST_F(AuditMerkleTest, AReceiptsLeafHashFollowsFromTheDocumentedEncodingAlone) {
  v1::FederatedAggregateResponse answered = AskAll();
  const v1::Receipt& receipt = Coverage(answered, "partner-a").receipt();
  ASSERT_OK_AND_ASSIGN(v1::ListAuditResponse log,
                       Admin("partner-a")->ListAudit(receipt.audit_index(), 1));
  ASSERT_EQ(log.entries_size(), 1);
  const v1::AuditEntry& entry = log.entries(0);
  ASSERT_TRUE(entry.has_question());
  ASSERT_GT(entry.applied_where_size(), 0);
  // The answer's manifest is in its leaf: what was checked, not only what was released.
  const v1::AggregateResult& answer = answered.partners(0);
  ASSERT_TRUE(answer.has_manifest());
  EXPECT_EQ(entry.manifest().SerializeAsString(), answer.manifest().SerializeAsString());
  EXPECT_EQ(answer.manifest().agreement_id(), "foundation-program-evaluation");
  EXPECT_EQ(answer.manifest().min_subjects(), 10);
  EXPECT_EQ(answer.manifest().dominance_size(), 2);
  EXPECT_EQ(answer.manifest().agreement_hash().size(), 32u);
  ASSERT_GT(answer.manifest().snapped_size(), 0);
  EXPECT_EQ(answer.manifest().snapped(0).field(), "age");
  const std::string leaf = DocLeaf(entry);
  EXPECT_EQ(leaf, receipt.leaf());
  EXPECT_EQ(DocLeafHash(leaf), receipt.entry_hash());
}

TEST_F(AuditMerkleTest, AFlippedLeafByteBreaksItsProofAndStopsThePartnerAfterRestart) {
  v1::FederatedAggregateResponse answered = AskAll();
  const v1::Receipt receipt = Coverage(answered, "partner-a").receipt();
  nodes_["partner-a"].reset();
  std::string flipped;
  {
    auto storage =
        storage::Storage::Create(configs_["partner-a"].data_dir(), storage::StorageOptions());
    ASSERT_OK(storage.status());
    const std::string key = LeafKey(receipt.audit_index());
    ASSERT_OK_AND_ASSIGN(auto leaf, (*storage)->Get(storage::ColumnFamily::kAudit, key));
    ASSERT_TRUE(leaf.has_value());
    flipped = *leaf;
    flipped[flipped.size() / 2] ^= 0x20;
    ASSERT_OK((*storage)->Put(storage::ColumnFamily::kAudit, key, flipped));
  }
  EXPECT_THAT(audit::VerifyInclusion(
                  receipt.audit_index(), receipt.checkpoint().tree_size(), audit::LeafHash(flipped),
                  {receipt.inclusion_proof().begin(), receipt.inclusion_proof().end()},
                  receipt.checkpoint().root_hash()),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  StartNode("partner-a");
  StartFoundation();
  v1::FederatedAggregateResponse after = AskAll();
  EXPECT_EQ(Coverage(after, "partner-a").state(), v1::PartnerCoverage::UNREACHABLE)
      << Coverage(after, "partner-a").DebugString();
  EXPECT_THAT(Coverage(after, "partner-a").reason(), HasSubstr("audit log unavailable"));
  ProcessOutcome status = Cli("partner-a", {"status"});
  EXPECT_EQ(status.exit_code, 1) << status.out << status.err;
  EXPECT_THAT(status.out, HasSubstr(absl::StrCat("AUDIT LOG FAILED, answering nothing: audit leaf ",
                                                 receipt.audit_index())));
}

TEST_F(AuditMerkleTest, ATruncatedPartnerLogIsReportedByTheFoundationAtTheNextAnswer) {
  AskAll();
  AskAll();
  // Drop partner-a's two entries and re-sign: its own check passes.
  ReplaceLog("partner-a", [](std::vector<std::string>& leaves) { leaves.clear(); });
  StartNode("partner-a");
  StartFoundation();
  v1::FederatedAggregateResponse after = AskAll();
  const v1::PartnerCoverage& a = Coverage(after, "partner-a");
  EXPECT_EQ(a.state(), v1::PartnerCoverage::AUDIT_FAILED) << a.DebugString();
  EXPECT_THAT(a.audit_error(), HasSubstr("truncated"));
  // Its figures are left out; partner-b still refuses as before.
  EXPECT_EQ(after.partners_size(), 0);
  auto analyst = Connect(nodes_["foundation"]->local_address(), ana_, kTrustDomain);
  ASSERT_OK_AND_ASSIGN(v1::ListPeersResponse peers, analyst->ListPeers(false));
  bool reported = false;
  for (const v1::PeerStatus& p : peers.peers()) {
    if (p.org_id() == "partner-a") reported = !p.audit_error().empty();
  }
  EXPECT_TRUE(reported) << peers.DebugString();
}

TEST_F(AuditMerkleTest, ARewrittenPartnerLogIsReportedByTheFoundationAtTheNextAnswer) {
  AskAll();
  AskAll();
  // Rewrite partner-a's first entry (refused instead of answered) and re-sign
  // the whole tree with its own key.
  ReplaceLog("partner-a", [](std::vector<std::string>& leaves) {
    absl::StatusOr<v1::AuditEntry> entry = audit::DecodeLeaf(leaves[0]);
    ASSERT_OK(entry.status());
    entry->set_decision(v1::AuditEntry::REFUSED);
    leaves[0] = audit::EncodeLeaf(*entry);
  });
  StartNode("partner-a");
  ASSERT_OK_AND_ASSIGN(v1::StatusResponse status, Admin("partner-a")->Status());
  EXPECT_EQ(status.audit_error(), "");  // locally it looks fine
  StartFoundation();
  v1::FederatedAggregateResponse after = AskAll();
  const v1::PartnerCoverage& a = Coverage(after, "partner-a");
  EXPECT_EQ(a.state(), v1::PartnerCoverage::AUDIT_FAILED) << a.DebugString();
  EXPECT_THAT(a.audit_error(), HasSubstr("not consistent with its checkpoint held"));
  // It stays reported at every later answer.
  EXPECT_EQ(Coverage(AskAll(), "partner-a").state(), v1::PartnerCoverage::AUDIT_FAILED);
  // partner-b was untouched and is not reported.
  EXPECT_EQ(Coverage(after, "partner-b").audit_error(), "");
}

}  // namespace
}  // namespace fedshare::testing
