// Issue 14 item 6: consent in the W3C DPV shape, through real nodes and the
// real client. A DPV export imports into an empty node to the same consent
// state (and again adds nothing); REVOKED and INVALIDATED are recorded and
// decide as documented; a bad record names its line and DPV key and writes
// nothing; the consent report counts people per purpose and is served on the
// local listener only.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "node/common/time_util.h"
#include "node/server/config.h"
#include "node/server/node.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

// Every event type, scopes, an end of validity, a fractional time, and ids
// that need CSV quoting. At 2026-06-01 for exactly program-evaluation:
// s1 consenting, s2 withdrawn, s3 refused, s4 expired (event), s5 revoked,
// s6 invalidated, s7 expired (past valid_until), s8 consenting (renewed),
// "s,9" consenting (a tie: GIVEN and RENEWED at one time);
// s10 revoked then given again later than the report: revoked.
constexpr char kConsentCsv[] =
    "subject,purpose,event,time,valid_until,scope\n"
    "s1,program-evaluation,GIVEN,2026-01-01T00:00:00.250Z,,*\n"
    "s2,program-evaluation,GIVEN,2026-01-01,,foundation\n"
    "s2,program-evaluation,WITHDRAWN,2026-02-01,,*\n"
    "s3,program-evaluation,REFUSED,2026-01-05,,*\n"
    "s4,program-evaluation,GIVEN,2026-01-01,,*\n"
    "s4,program-evaluation,EXPIRED,2026-03-01,,*\n"
    "s5,program-evaluation,GIVEN,2026-01-01,,foundation;partner-b\n"
    "s5,program-evaluation,REVOKED,2026-04-01,,*\n"
    "s6,program-evaluation,GIVEN,2026-01-01,,*\n"
    "s6,program-evaluation,INVALIDATED,2026-04-02,,*\n"
    "s7,program-evaluation,GIVEN,2026-01-01,2026-05-01,*\n"
    "s8,program-evaluation,WITHDRAWN,2026-01-01,,*\n"
    "s8,program-evaluation,RENEWED,2026-02-01,2027-01-01,foundation\n"
    "\"s,9\",program-evaluation,GIVEN,2026-01-01,,*\n"
    "\"s,9\",program-evaluation,RENEWED,2026-01-01,,*\n"
    "s10,program-evaluation,REVOKED,2026-01-01,,*\n"
    "s10,program-evaluation,GIVEN,2026-07-01,,*\n"
    "s1,research,GIVEN,2026-01-01,,*\n"
    "s2,marketing,REFUSED,2026-01-01,,*\n";
constexpr int kEvents = 19;

class ConsentDpvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    operator_ = pki_.Issue("partner-a", Role::kOperator, "olga");
    foundation_ = pki_.Issue("foundation", Role::kNode);
    std::string identity = pki_.Issue("partner-a", Role::kNode);
    for (int i = 0; i < 2; ++i) {
      v1::NodeConfig config =
          BaseNodeConfig("partner-a", kTrustDomain, tmp_.Sub(absl::StrCat("data", i)), identity);
      *config.add_datasets() = ProgramOutcomesSchema();
      *config.add_agreements() = OpenAgreement("eval", "foundation");
      ASSERT_OK(server::ValidateNodeConfig(config));
      ASSERT_OK_AND_ASSIGN(nodes_[i], server::Node::Create(config, server::NodeOptions()));
    }
  }

  std::unique_ptr<client::NodeClient> Admin(int i) {
    return Connect(nodes_[i]->local_address(), operator_, kTrustDomain);
  }

  std::string ExportConsent(int i, v1::ConsentFormat format) {
    auto admin = Admin(i);
    std::string out;
    absl::Status s = admin->ExportConsent(format, [&](const v1::ConsentExportChunk& c) {
      out += c.data();
      return absl::OkStatus();
    });
    EXPECT_OK(s);
    return out;
  }

  TempDir tmp_{"consent_dpv"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::string operator_, foundation_;
  std::unique_ptr<server::Node> nodes_[2];
};

TEST_F(ConsentDpvTest, DpvExportReimportsToTheSameConsentState) {
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse first, Admin(0)->ImportConsent(kConsentCsv));
  ASSERT_EQ(first.events_rejected(), 0) << first.DebugString();
  ASSERT_EQ(first.events_new(), kEvents);

  const std::string dpv = ExportConsent(0, v1::CONSENT_FORMAT_DPV);
  std::vector<std::string> lines = absl::StrSplit(dpv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kEvents)) << dpv;
  for (const std::string& line : lines) {
    EXPECT_TRUE(absl::StartsWith(line, R"({"@type":"dpv:ConsentRecord","dpv:hasDataSubject":)"))
        << line;
  }
  for (const char* status :
       {"dpv:ConsentGiven", "dpv:RenewedConsentGiven", "dpv:ConsentWithdrawn", "dpv:ConsentRefused",
        "dpv:ConsentExpired", "dpv:ConsentRevoked", "dpv:ConsentInvalidated"}) {
    EXPECT_THAT(dpv, HasSubstr(absl::StrCat("\"dpv:hasConsentStatus\":\"", status, "\"")));
  }
  EXPECT_THAT(dpv, HasSubstr(R"("dpv:hasRecipient":["foundation","partner-b"])"));
  EXPECT_THAT(dpv, HasSubstr(R"("dct:date":"2026-01-01T00:00:00.25Z")"));
  EXPECT_THAT(dpv, HasSubstr(R"("dct:valid":"2026-05-01T00:00:00Z")"));
  EXPECT_THAT(dpv, HasSubstr(R"("dpv:hasDataSubject":"s,9")"));

  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse second,
                       Admin(1)->ImportConsent(dpv, nullptr, v1::CONSENT_FORMAT_DPV));
  ASSERT_EQ(second.events_rejected(), 0) << second.DebugString();
  EXPECT_EQ(second.events_read(), kEvents);
  EXPECT_EQ(second.events_new(), kEvents);
  // partner-b is no peer of this node: said out loud, in DPV terms, on the
  // record's own line (s5's GIVEN is the 9th event in key order).
  ASSERT_EQ(second.warnings_size(), 1) << second.DebugString();
  EXPECT_EQ(second.warnings(0).line(), 9);
  EXPECT_EQ(second.warnings(0).column(), "dpv:hasRecipient");
  EXPECT_THAT(second.warnings(0).reason(), HasSubstr("'partner-b'"));

  // The same events, byte for byte, in both formats.
  const std::string csv0 = ExportConsent(0, v1::CONSENT_FORMAT_CSV);
  EXPECT_EQ(ExportConsent(1, v1::CONSENT_FORMAT_CSV), csv0);
  EXPECT_EQ(ExportConsent(1, v1::CONSENT_FORMAT_DPV), dpv);
  EXPECT_TRUE(absl::StartsWith(csv0, "subject,purpose,event,time,valid_until,scope\n")) << csv0;
  // And the CSV export imports back as nothing new.
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse again, Admin(0)->ImportConsent(csv0));
  EXPECT_EQ(again.events_rejected(), 0) << again.DebugString();
  EXPECT_EQ(again.events_new(), 0);
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse dpv_again,
                       Admin(1)->ImportConsent(dpv, nullptr, v1::CONSENT_FORMAT_DPV));
  EXPECT_EQ(dpv_again.events_new(), 0);

  // The same decisions: the same report on both nodes.
  const absl::Time at = *ParseTimeOrDate("2026-06-01");
  ASSERT_OK_AND_ASSIGN(v1::ConsentReportResponse r0, Admin(0)->ConsentReport(at));
  ASSERT_OK_AND_ASSIGN(v1::ConsentReportResponse r1, Admin(1)->ConsentReport(at));
  EXPECT_EQ(r0.SerializeAsString(), r1.SerializeAsString());
}

TEST_F(ConsentDpvTest, ReportCountsPeoplePerPurposeAndState) {
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse imported, Admin(0)->ImportConsent(kConsentCsv));
  ASSERT_EQ(imported.events_rejected(), 0) << imported.DebugString();
  ASSERT_OK_AND_ASSIGN(v1::ConsentReportResponse r,
                       Admin(0)->ConsentReport(*ParseTimeOrDate("2026-06-01")));
  ASSERT_EQ(r.purposes_size(), 3);  // every configured purpose, config order
  EXPECT_EQ(r.purposes(0).purpose(), "research");
  EXPECT_EQ(r.purposes(0).consenting(), 1);
  const v1::PurposeConsentCount& eval = r.purposes(1);
  EXPECT_EQ(eval.purpose(), "program-evaluation");
  EXPECT_EQ(eval.consenting(), 3);   // s1, s8, "s,9"
  EXPECT_EQ(eval.withdrawn(), 1);    // s2
  EXPECT_EQ(eval.refused(), 1);      // s3
  EXPECT_EQ(eval.expired(), 2);      // s4 (event), s7 (valid_until)
  EXPECT_EQ(eval.revoked(), 2);      // s5; s10 (its GIVEN is after the report's time)
  EXPECT_EQ(eval.invalidated(), 1);  // s6
  EXPECT_EQ(r.purposes(2).purpose(), "marketing");
  EXPECT_EQ(r.purposes(2).refused(), 1);
  EXPECT_EQ(r.subjects_with_consent_events(), 10);

  // Later, s10's consent holds and s8's renewal has ended.
  ASSERT_OK_AND_ASSIGN(v1::ConsentReportResponse later,
                       Admin(0)->ConsentReport(*ParseTimeOrDate("2027-02-01")));
  EXPECT_EQ(later.purposes(1).consenting(), 3);  // s1, "s,9", s10
  EXPECT_EQ(later.purposes(1).revoked(), 1);
  EXPECT_EQ(later.purposes(1).expired(), 3);

  // Through the CLI: a table of counts, never an id.
  ProcessOutcome cli = RunCliAs(tmp_, operator_, nodes_[0]->local_address(),
                                {"consent", "report", "--at", "2026-06-01"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("program-evaluation"));
  EXPECT_THAT(cli.out, HasSubstr("invalidated"));
  EXPECT_THAT(cli.out, HasSubstr("10 people have consent events"));
  EXPECT_THAT(cli.out, ::testing::Not(HasSubstr("s1")));
}

TEST_F(ConsentDpvTest, ReportAndExportAreNotServedToPeers) {
  ASSERT_OK(Admin(0)->ImportConsent(kConsentCsv).status());
  // The foundation's node, on the peer listener: AdminService is not there.
  auto peer = Connect(nodes_[0]->peer_address(), foundation_, kTrustDomain, "partner-a");
  ASSERT_NE(peer, nullptr);
  EXPECT_THAT(peer->ConsentReport(), StatusIs(absl::StatusCode::kUnimplemented, ::testing::_));
  EXPECT_THAT(peer->ExportConsent(v1::CONSENT_FORMAT_DPV,
                                  [](const v1::ConsentExportChunk&) { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kUnimplemented, ::testing::_));
  // On the local listener, only the org's own people: another org's
  // operator is refused.
  std::string stranger = pki_.Issue("partner-b", Role::kOperator, "sam");
  auto other = Connect(nodes_[0]->local_address(), stranger, kTrustDomain);
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->ConsentReport(), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
}

TEST_F(ConsentDpvTest, BadDpvRecordNamesItsLineAndKeyAndWritesNothing) {
  const std::string dpv =
      R"({"@type":"dpv:ConsentRecord","dpv:hasDataSubject":"s1","dpv:hasPurpose":"program-evaluation","dpv:hasConsentStatus":"dpv:ConsentGiven","dct:date":"2026-01-01T00:00:00Z","dpv:hasIndicationMethod":"web-form"})"
      "\n\n"
      R"({"dpv:hasDataSubject":"s2","dpv:hasPurpose":"program-evaluation","dpv:hasConsentStatus":"dpv:ConsentPaused","dct:date":"2026-01-01"})"
      "\n"
      R"({"dpv:hasDataSubject":"s3","dpv:hasPurpose":"program-evaluation","dpv:hasConsentStatus":"dpv:ConsentGiven"})"
      "\n"
      R"({"dpv:hasDataSubject":"s4","dpv:hasPurpose":"program-evaluation","dpv:hasConsentStatus":"dpv:ConsentGiven","dct:date":"2026-01-01","dpv:hasRecipient":[]})"
      "\n"
      R"({"dpv:hasDataSubject":"s5","dpv:hasPurpose":"nope","dpv:hasConsentStatus":"https://w3id.org/dpv#ConsentGiven","dct:date":"2026-01-01","dct:valid":"2025-01-01"})"
      "\n";
  ASSERT_OK_AND_ASSIGN(v1::ConsentImportResponse r,
                       Admin(0)->ImportConsent(dpv, nullptr, v1::CONSENT_FORMAT_DPV));
  EXPECT_EQ(r.events_new(), 0);
  EXPECT_EQ(r.events_read(), 5);
  EXPECT_EQ(r.events_rejected(), 4);
  auto has_error = [&](int64_t line, const std::string& column, const std::string& text) {
    for (const v1::RowError& e : r.errors()) {
      if (e.line() == line && e.column() == column && absl::StrContains(e.reason(), text)) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has_error(3, "dpv:hasConsentStatus", "'dpv:ConsentPaused' is not one fedshare"))
      << r.DebugString();
  EXPECT_TRUE(has_error(4, "dct:date", "missing dct:date")) << r.DebugString();
  EXPECT_TRUE(has_error(5, "dpv:hasRecipient", "is empty")) << r.DebugString();
  EXPECT_TRUE(has_error(6, "dpv:hasPurpose", "unknown purpose 'nope'")) << r.DebugString();
  EXPECT_TRUE(has_error(6, "dct:valid", "dct:valid '2025-01-01' is not after dct:date"))
      << r.DebugString();
  // The key fedshare does not keep is said out loud.
  ASSERT_EQ(r.warnings_size(), 1) << r.DebugString();
  EXPECT_EQ(r.warnings(0).line(), 1);
  EXPECT_EQ(r.warnings(0).column(), "dpv:hasIndicationMethod");
  // Nothing was written.
  EXPECT_EQ(ExportConsent(0, v1::CONSENT_FORMAT_CSV),
            "subject,purpose,event,time,valid_until,scope\n");

  // The CLI exits 2 and names the line.
  std::string file = tmp_.Write("bad.jsonl", dpv);
  ProcessOutcome cli =
      RunCliAs(tmp_, operator_, nodes_[0]->local_address(), {"consent", "import", file});
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_THAT(cli.err, HasSubstr("line 3, column dpv:hasConsentStatus"));
}

TEST_F(ConsentDpvTest, CliExportsAndImportsDpvFiles) {
  std::string csv = tmp_.Write("consent.csv", kConsentCsv);
  ProcessOutcome cli =
      RunCliAs(tmp_, operator_, nodes_[0]->local_address(), {"consent", "import", csv});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::string out = tmp_.Sub("consent.jsonl");
  cli = RunCliAs(tmp_, operator_, nodes_[0]->local_address(), {"consent", "export", "--out", out});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.err, HasSubstr(absl::StrCat("exported ", kEvents, " consent events")));
  cli = RunCliAs(tmp_, operator_, nodes_[1]->local_address(), {"consent", "import", out});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out,
              HasSubstr(absl::StrCat("read ", kEvents, " consent events, ", kEvents, " new")));
  EXPECT_EQ(ExportConsent(1, v1::CONSENT_FORMAT_CSV), ExportConsent(0, v1::CONSENT_FORMAT_CSV));
  cli = RunCliAs(tmp_, operator_, nodes_[0]->local_address(),
                 {"consent", "export", "--format", "xml"});
  EXPECT_EQ(cli.exit_code, 2);
  EXPECT_THAT(cli.err, HasSubstr("use csv or dpv"));
}

}  // namespace
}  // namespace fedshare::testing
