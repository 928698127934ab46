#include "node/server/config.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/common/test_temp_dir.h"

namespace fedshare::server {
namespace {

using ::fedshare::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kValid[] = R"cfg(
org_id: "partner-a"
trust_domain: "fedshare.test"
data_dir: "data"
peer_address: "127.0.0.1:0"
local_address: "127.0.0.1:0"
tls { cert_file: "node/cert.pem" key_file: "node/key.pem" ca_file: "node/ca.pem" }
purposes { id: "research" }
purposes { id: "program-evaluation" parent: "research" }
datasets {
  name: "program_outcomes"
  fields { name: "participant_id" type: CATEGORY role: SUBJECT }
  fields { name: "program" type: CATEGORY role: DIMENSION categories: ["a", "b"] }
  fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
}
agreements {
  id: "foundation-eval"
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "program-evaluation"
  aggregates: [COUNT, AVG]
  group_fields: "program"
  measure_fields: "outcome_score"
}
peers { org_id: "foundation" address: "127.0.0.1:7443" groups: "all" }
)cfg";

TEST(ConfigTest, ValidConfigParsesWithDefaultsAndResolvedPaths) {
  ASSERT_OK_AND_ASSIGN(v1::NodeConfig config, ParseNodeConfig(kValid, "node.textproto", "/etc/fs"));
  EXPECT_EQ(config.org_id(), "partner-a");
  EXPECT_EQ(config.data_dir(), "/etc/fs/data");
  EXPECT_EQ(config.tls().cert_file(), "/etc/fs/node/cert.pem");
  EXPECT_EQ(config.tls().reload_interval_seconds(), 60);
  EXPECT_EQ(config.peer_deadline_ms(), 10000);
}

TEST(ConfigTest, MalformedTextNamesTheLine) {
  std::string text = kValid;
  text.replace(text.find("data_dir: \"data\""), 16, "data_dir: {data\"");
  EXPECT_THAT(ParseNodeConfig(text, "node.textproto", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("node.textproto:4:")));
}

TEST(ConfigTest, UnknownFieldNamesTheLineAndField) {
  std::string text = "org_id: \"a\"\ncolour: \"blue\"\n";
  EXPECT_THAT(ParseNodeConfig(text, "node.textproto", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("node.textproto:2:"), HasSubstr("colour"))));
}

TEST(ConfigTest, BadValueNamesTheLine) {
  std::string text = kValid;
  text.replace(text.find("org_id: \"partner-a\""), 19, "org_id: \"Partner A\"");
  EXPECT_THAT(ParseNodeConfig(text, "node.textproto", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("node.textproto:2:"), HasSubstr("org_id"))));
}

TEST(ConfigTest, BadDatasetNamesItsLine) {
  std::string text = kValid;
  text.replace(text.find("type: DOUBLE role: MEASURE lower: 0 upper: 100"), 46,
               "type: DOUBLE role: MEASURE lower: 100 upper: 0");
  EXPECT_THAT(ParseNodeConfig(text, "node.textproto", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("node.textproto:10:")));
}

TEST(ConfigTest, AgreementOnUnknownDatasetIsRefused) {
  std::string text = kValid;
  text.replace(text.find("dataset: \"program_outcomes\""), 27, "dataset: \"nope\"");
  EXPECT_THAT(ParseNodeConfig(text, "node.textproto", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("node.textproto:16:"), HasSubstr("nope"))));
}

TEST(ConfigTest, MissingTlsIsRefused) {
  std::string text = kValid;
  text.replace(text.find("tls {"), 4, "xtls");
  EXPECT_FALSE(ParseNodeConfig(text, "n", "").ok());
  v1::NodeConfig config;
  config.set_org_id("a");
  config.set_trust_domain("t");
  config.set_data_dir("d");
  EXPECT_THAT(ValidateNodeConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mutual TLS")));
}

TEST(ConfigTest, TinyIngestMemoryBudgetIsRefused) {
  EXPECT_OK(ParseNodeConfig(absl::StrCat(kValid, "limits { ingest_memory_budget_bytes: 1048576 }"),
                            "n", "")
                .status());
  EXPECT_THAT(
      ParseNodeConfig(absl::StrCat(kValid, "limits { ingest_memory_budget_bytes: 4096 }"), "n", ""),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("limits.ingest_memory_budget_bytes must be 0")));
}

TEST(ConfigTest, AFederatedAnswerBudgetBelowOneAnswerIsRefused) {
  EXPECT_OK(ParseNodeConfig(
                absl::StrCat(kValid, "limits { federated_answer_budget_bytes: 4194304 }"), "n", "")
                .status());
  EXPECT_THAT(
      ParseNodeConfig(absl::StrCat(kValid, "limits { federated_answer_budget_bytes: 4194303 }"),
                      "n", ""),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("limits.federated_answer_budget_bytes must be 0")));
}

TEST(ConfigTest, CallHomePeersAndUpstreamsAreChecked) {
  EXPECT_OK(ParseNodeConfig(absl::StrCat(kValid, R"(
peers { org_id: "partner-b" call_home: true }
upstreams { org_id: "foundation" address: "foundation.example:7443" }
disable_peer_listener: true
call_home_max_backoff_ms: 5000)"),
                            "n", "")
                .status());
  EXPECT_THAT(ParseNodeConfig(absl::StrCat(kValid, R"(
peers { org_id: "partner-b" call_home: true address: "127.0.0.1:7443" })"),
                              "n", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("remove the address")));
  EXPECT_THAT(
      ParseNodeConfig(absl::StrCat(kValid, R"(upstreams { org_id: "partner-a" address: "h:1" })"),
                      "n", ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("its own org")));
  EXPECT_THAT(ParseNodeConfig(absl::StrCat(kValid, R"(upstreams { org_id: "f" address: "h:1" }
upstreams { org_id: "f" address: "h:2" })"),
                              "n", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listed twice")));
  EXPECT_THAT(ParseNodeConfig(
                  absl::StrCat(kValid, R"(upstreams { org_id: "f" address: "nowhere" })"), "n", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("HOST:PORT")));
  EXPECT_THAT(ParseNodeConfig(absl::StrCat(kValid, "call_home_max_backoff_ms: -1"), "n", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("call_home_max_backoff_ms")));
}

TEST(ConfigTest, JsonIsAccepted) {
  std::string json = R"({"orgId": "a", "trustDomain": "t.example", "dataDir": "d",
    "tls": {"certFile": "c", "keyFile": "k", "caFile": "ca"}})";
  ASSERT_OK_AND_ASSIGN(v1::NodeConfig config, ParseNodeConfig(json, "node.json", ""));
  EXPECT_EQ(config.org_id(), "a");
  EXPECT_THAT(ParseNodeConfig(R"({"orgId": "a", "colour": 1})", "node.json", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("node.json")));
}

TEST(ConfigTest, MissingFileIsNotFound) {
  EXPECT_THAT(LoadNodeConfig("/nonexistent/node.textproto"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/node.textproto")));
}

// A peers_file named `name` in `dir`.
std::string PeersFile(const testing::ScopedTempDir& dir, const std::string& name,
                      const std::string& text) {
  std::string path = dir.Sub(name);
  EXPECT_OK(WriteFileAtomic(path, text));
  return path;
}

TEST(ConfigTest, PeersFileJoinsTheRosterWithItsGroups) {
  std::string text = kValid;
  testing::ScopedTempDir dir("config_test");
  const std::string file = PeersFile(dir, "peers.textproto", R"(
peers { org_id: "partner-b" address: "10.0.0.2:7443" }
peers { org_id: "partner-c" call_home: true groups: "north" }
groups { name: "pilot" members: ["partner-b", "foundation"] }
)");
  absl::StrAppend(&text, "peers_file: \"", file, "\"\n");
  ASSERT_OK_AND_ASSIGN(v1::NodeConfig config, ParseNodeConfig(text, "node.textproto", ""));
  ASSERT_OK_AND_ASSIGN(std::vector<v1::PeerConfig> roster, LoadPeers(config));
  ASSERT_EQ(roster.size(), 3u);
  EXPECT_EQ(roster[0].org_id(), "foundation");
  EXPECT_THAT(roster[0].groups(), ::testing::ElementsAre("all", "pilot"));
  EXPECT_THAT(roster[1].groups(), ::testing::ElementsAre("pilot"));
  EXPECT_TRUE(roster[2].call_home());
}

TEST(ConfigTest, BadPeersFileIsRefusedWithItsLine) {
  std::string text = kValid;
  testing::ScopedTempDir dir("config_test");
  const std::string file = PeersFile(dir, "twice.textproto", R"(
peers { org_id: "partner-b" address: "10.0.0.2:7443" }
peers { org_id: "foundation" address: "10.0.0.3:7443" }
)");
  absl::StrAppend(&text, "peers_file: \"", file, "\"\n");
  EXPECT_THAT(
      ParseNodeConfig(text, "node.textproto", ""),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr(absl::StrCat(file, ":3: peers: peer 'foundation' is listed twice"))));
  ASSERT_OK(WriteFileAtomic(file, "groups { name: \"pilot\" members: \"nobody\" }\n"));
  EXPECT_THAT(
      ParseNodeConfig(text, "node.textproto", ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'nobody', which is not a peer")));
}

TEST(ConfigTest, PeersFileIsBoundedInEntries) {
  std::string many;
  for (int i = 0; i < kMaxPeers; ++i) {
    absl::StrAppend(&many, "peers { org_id: \"p", i, "\" call_home: true }\n");
  }
  std::string text = kValid;  // one inline peer: one over the bound in all
  testing::ScopedTempDir dir("config_test");
  const std::string file = PeersFile(dir, "many.textproto", many);
  absl::StrAppend(&text, "peers_file: \"", file, "\"\n");
  EXPECT_THAT(ParseNodeConfig(text, "node.textproto", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(absl::StrCat("at most ", kMaxPeers, " in all"))));
}

}  // namespace
}  // namespace fedshare::server
