// Issue 10, items 8 and 11, through the real binaries: joining a federation
// with a certificate request (the key is made on the partner's side and never
// reaches the CA holder's), and an analyst discovering, through the
// foundation's own node, what a partner lets the foundation ask.
//
// The "CA side" and the "partner side" are two separate temp folders; only
// the request goes one way and cert.pem + ca.pem come back.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTrustDomain[] = "fedshare.test";

void CopyFile(const std::string& from, const std::string& to) {
  std::error_code ec;
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, ec);
  ASSERT_FALSE(ec) << from << " -> " << to << ": " << ec.message();
}

// Whether any file under `dir` holds `needle`.
bool AnyFileContains(const std::string& dir, const std::string& needle) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    absl::StatusOr<std::string> text = ReadFile(entry.path().string());
    if (text.ok() && text->find(needle) != std::string::npos) return true;
  }
  return false;
}

// A request's DER with `from` replaced by `to` (same length), as PEM again:
// what someone changing a request on its way to the CA would send.
std::string TamperWithRequest(const std::string& pem, const std::string& from,
                              const std::string& to) {
  std::string body;
  for (absl::string_view line : absl::StrSplit(pem, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "-----")) absl::StrAppend(&body, line);
  }
  std::string der;
  EXPECT_TRUE(absl::Base64Unescape(body, &der));
  EXPECT_NE(der.find(from), std::string::npos) << "nothing to tamper with";
  der = absl::StrReplaceAll(der, {{from, to}});
  std::string encoded = absl::Base64Escape(der);
  std::string out = "-----BEGIN CERTIFICATE REQUEST-----\n";
  for (size_t i = 0; i < encoded.size(); i += 64) {
    absl::StrAppend(&out, encoded.substr(i, 64), "\n");
  }
  absl::StrAppend(&out, "-----END CERTIFICATE REQUEST-----\n");
  return out;
}

// The foundation's CA and identities come from `certs ca` / `certs issue` on
// the CA side; partner-1's node and operator identities from `certs request`
// on the partner side, signed by `certs sign` on the CA side.
class CliJoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Cli({"certs", "ca", "--trust-domain", kTrustDomain, "--out", ca_dir_}).exit_code, 0);
    for (const auto& [role, name, dir] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"node", "", foundation_node_}, {"analyst", "ana", analyst_}}) {
      std::vector<std::string> args = {"certs",      "issue",  "--ca", ca_dir_, "--org",
                                       "foundation", "--role", role,   "--out", dir};
      if (!name.empty()) args.insert(args.end(), {"--name", name});
      ProcessOutcome issued = Cli(args);
      ASSERT_EQ(issued.exit_code, 0) << issued.err;
    }
    ASSERT_NO_FATAL_FAILURE(Join("node", "", partner_node_));
    ASSERT_NO_FATAL_FAILURE(Join("operator", "olga", partner_operator_));

    v1::NodeConfig partner =
        BaseNodeConfig("partner-1", kTrustDomain, tmp_.Sub("partner-data"), partner_node_);
    *partner.add_datasets() = ProgramOutcomesSchema();
    *partner.add_agreements() = OpenAgreement("foundation-evaluation", "foundation");
    partner.mutable_agreements(0)->set_description("Evaluation of funded programs");
    partner.mutable_agreements(0)->mutable_rate_limit()->set_queries(100);
    partner.mutable_agreements(0)->mutable_rate_limit()->set_window_seconds(3600);
    auto started = StartNodeProcess(partner, tmp_.Sub("partner.textproto"));
    ASSERT_OK(started.status());
    partner_ = std::move(started).value();

    // 25 people in each of two programs, all consenting to program evaluation.
    std::string records =
        "participant_id,program,region,cohort_year,age,completed,outcome_score,"
        "sessions_attended,income\n";
    std::string consent = "subject,purpose,event,time,valid_until,scope\n";
    for (int s = 0; s < 50; ++s) {
      absl::StrAppend(&records, "p", s, ",", s % 2 == 0 ? "literacy" : "numeracy",
                      ",north,2022,30,true,50,10,0\n");
      absl::StrAppend(&consent, "p", s, ",program-evaluation,GIVEN,2025-06-01,,*\n");
    }
    auto admin = Connect(partner_.local_address, partner_operator_, kTrustDomain, "partner-1");
    ASSERT_NE(admin, nullptr);
    ASSERT_OK_AND_ASSIGN(auto ingested, admin->Ingest("program_outcomes", v1::CSV, false, records));
    ASSERT_EQ(ingested.rows_written(), 50) << ingested.DebugString();
    ASSERT_OK_AND_ASSIGN(auto consented, admin->ImportConsent(consent));
    ASSERT_EQ(consented.events_rejected(), 0) << consented.DebugString();

    v1::NodeConfig foundation =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_node_);
    foundation.set_peer_deadline_ms(5000);
    v1::PeerConfig* peer = foundation.add_peers();
    peer->set_org_id("partner-1");
    peer->set_address(partner_.peer_address);
    auto foundation_started = StartNodeProcess(foundation, tmp_.Sub("foundation.textproto"));
    ASSERT_OK(foundation_started.status());
    foundation_ = std::move(foundation_started).value();
  }

  // The whole round trip for one partner-1 identity: request on the partner
  // side, the request alone carried to the CA side, signed there, and
  // cert.pem + ca.pem carried back.
  void Join(const std::string& role, const std::string& name, const std::string& dir) {
    std::vector<std::string> request = {"certs", "request",   "--trust-domain", kTrustDomain,
                                        "--org", "partner-1", "--role",         role,
                                        "--out", dir};
    if (!name.empty()) request.insert(request.end(), {"--name", name});
    ProcessOutcome made = Cli(request);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    std::string csr_name = absl::StrCat("partner-1-", role, name.empty() ? "" : "-", name, ".csr");
    EXPECT_THAT(made.out, HasSubstr(absl::StrCat("request:      ", dir, "/", csr_name)));
    EXPECT_THAT(made.out, HasSubstr("never send it"));

    std::string inbox = ca_side_.Sub("inbox");
    std::filesystem::create_directories(inbox);
    ASSERT_NO_FATAL_FAILURE(CopyFile(dir + "/" + csr_name, inbox + "/" + csr_name));
    std::string outbox = ca_side_.Sub("outbox-" + role);
    ProcessOutcome signed_out =
        Cli({"certs", "sign", "--ca", ca_dir_, "--csr", inbox + "/" + csr_name, "--out", outbox});
    ASSERT_EQ(signed_out.exit_code, 0) << signed_out.err;
    EXPECT_THAT(signed_out.out, HasSubstr(absl::StrCat("spiffe://fedshare.test/org/partner-1/",
                                                       role, name.empty() ? "" : "/", name)));
    EXPECT_FALSE(std::filesystem::exists(outbox + "/key.pem"));
    ASSERT_NO_FATAL_FAILURE(CopyFile(outbox + "/cert.pem", dir + "/cert.pem"));
    ASSERT_NO_FATAL_FAILURE(CopyFile(outbox + "/ca.pem", dir + "/ca.pem"));
  }

  ProcessOutcome Cli(const std::vector<std::string>& args) { return RunCli(tmp_, args); }

  ProcessOutcome AsAnalyst(std::vector<std::string> args) {
    args.insert(args.begin(), {"--node", foundation_.local_address, "--identity", analyst_});
    return Cli(args);
  }

  TempDir tmp_{"join"};
  TempDir ca_side_{"join-ca-side"};
  TempDir partner_side_{"join-partner-side"};
  std::string ca_dir_ = ca_side_.Sub("ca");
  std::string foundation_node_ = ca_side_.Sub("foundation-node");
  std::string analyst_ = ca_side_.Sub("foundation-analyst");
  std::string partner_node_ = partner_side_.Sub("node");
  std::string partner_operator_ = partner_side_.Sub("operator");
  NodeProcess partner_;
  NodeProcess foundation_;
};

TEST_F(CliJoinTest, RequestedIdentityAnswersOverMtlsAndItsKeyNeverReachedTheCa) {
  for (const std::string& dir : {partner_node_, partner_operator_}) {
    struct stat st;
    ASSERT_EQ(stat((dir + "/key.pem").c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_mode & 0777, 0600) << dir;
    ASSERT_OK_AND_ASSIGN(std::string key, ReadFile(dir + "/key.pem"));
    EXPECT_FALSE(AnyFileContains(ca_side_.path(), key)) << dir << "/key.pem reached the CA side";
  }

  // The foundation's analyst asks through the foundation's node; partner-1's
  // node answers with its requested identity over mutual TLS.
  ProcessOutcome answer =
      AsAnalyst({"query", "--peers", "partner-1", "--output", "csv", "--sql",
                 "SELECT program, COUNT(*) FROM program_outcomes GROUP BY program "
                 "PURPOSE 'program-evaluation'"});
  EXPECT_EQ(answer.exit_code, 0) << answer.err;
  EXPECT_THAT(answer.out, HasSubstr("# partner-1: answered"));
  EXPECT_THAT(answer.out, HasSubstr("literacy,25,"));
  EXPECT_THAT(answer.out, HasSubstr("numeracy,25,"));

  // The requested operator identity administers partner-1's node.
  ProcessOutcome status =
      Cli({"--node", partner_.local_address, "--identity", partner_operator_, "status"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("spiffe://fedshare.test/org/partner-1/operator/olga"));
}

TEST_F(CliJoinTest, AnalystDescribesAPartnerThroughTheFoundationsLocalListener) {
  ProcessOutcome described = AsAnalyst({"describe", "--peer", "partner-1"});
  EXPECT_EQ(described.exit_code, 0) << described.err;
  EXPECT_THAT(described.out, HasSubstr("org partner-1 (fedshare "));
  EXPECT_THAT(described.out, HasSubstr("dataset program_outcomes\n"));
  EXPECT_THAT(described.out, HasSubstr("  agreement foundation-evaluation\n"));
  EXPECT_THAT(described.out, HasSubstr("    purposes:  program-evaluation\n"));
  // The agreement's description and the limits the partner applies, its
  // defaults filled in (dominance and repeats are not set in the agreement).
  EXPECT_THAT(described.out, HasSubstr("    about:     Evaluation of funded programs\n"));
  EXPECT_THAT(described.out, HasSubstr("    dominance: of a cell's sum, the largest 1 at most 50%; "
                                       "the largest 2 at most 67%\n"));
  EXPECT_THAT(described.out, HasSubstr("    repeats:   the same question at most 5 times per 24h\n"));
  EXPECT_THAT(described.out, HasSubstr("    rate:      at most 100 questions per 1h\n"));
  EXPECT_THAT(described.out, Not(HasSubstr("participant_id")));  // the subject field stays hidden

  ProcessOutcome unknown = AsAnalyst({"describe", "--peer", "partner-9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("NOT_FOUND: no peer 'partner-9' is configured"));
  EXPECT_THAT(unknown.err, HasSubstr("configured peers: partner-1"));

  ProcessOutcome bad = AsAnalyst({"describe", "--peer", "Partner One"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT: 'Partner One' is not an org id"));

  int status = partner_.process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ProcessOutcome stopped = AsAnalyst({"describe", "--peer", "partner-1"});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_THAT(stopped.err, HasSubstr(absl::StrCat("UNAVAILABLE: peer partner-1 at ",
                                                  partner_.peer_address, " is unreachable")));
}

TEST(CertsSignTest, RefusesAForeignTrustDomainAndATamperedRequest) {
  TempDir tmp("join-refusals");
  auto cli = [&tmp](const std::vector<std::string>& args) { return RunCli(tmp, args); };
  const std::string ca = tmp.Sub("ca");
  ASSERT_EQ(cli({"certs", "ca", "--trust-domain", kTrustDomain, "--out", ca}).exit_code, 0);

  ProcessOutcome foreign = cli({"certs", "request", "--trust-domain", "other.test", "--org",
                                "partner-1", "--role", "node", "--out", tmp.Sub("foreign")});
  ASSERT_EQ(foreign.exit_code, 0) << foreign.err;
  ProcessOutcome refused = cli({"certs", "sign", "--ca", ca, "--csr",
                                tmp.Sub("foreign/partner-1-node.csr"), "--out", tmp.Sub("out1")});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("PERMISSION_DENIED: the request is for trust domain "
                                     "'other.test', but this CA signs for 'fedshare.test' only"));
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("out1")));

  ProcessOutcome made = cli({"certs", "request", "--trust-domain", kTrustDomain, "--org",
                             "partner-1", "--role", "node", "--out", tmp.Sub("honest")});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_OK_AND_ASSIGN(std::string csr, ReadFile(tmp.Sub("honest/partner-1-node.csr")));
  ASSERT_OK(WriteFileAtomic(tmp.Sub("tampered.csr"),
                            TamperWithRequest(csr, "/org/partner-1/", "/org/partner-2/")));
  ProcessOutcome tampered = cli(
      {"certs", "sign", "--ca", ca, "--csr", tmp.Sub("tampered.csr"), "--out", tmp.Sub("out2")});
  EXPECT_EQ(tampered.exit_code, 2);
  EXPECT_THAT(tampered.err, HasSubstr("signature does not verify"));
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("out2")));

  // The untouched request passes, and --dry-run shows it without signing.
  ProcessOutcome dry =
      cli({"certs", "sign", "--ca", ca, "--csr", tmp.Sub("honest/partner-1-node.csr"), "--out",
           tmp.Sub("out3"), "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_THAT(dry.out,
              HasSubstr("node of org partner-1 (spiffe://fedshare.test/org/partner-1/node)"));
  EXPECT_THAT(dry.out, HasSubstr("not signed (--dry-run)"));
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("out3")));

  // A request never replaces a key in use.
  ProcessOutcome again = cli({"certs", "request", "--trust-domain", kTrustDomain, "--org",
                              "partner-1", "--role", "node", "--out", tmp.Sub("honest")});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("ALREADY_EXISTS"));
}

}  // namespace
}  // namespace fedshare::testing
