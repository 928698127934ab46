// Issue 5, end to end: a foundation and three partners as real fedshare-node
// processes on loopback. The foundation's analyst asks through the
// foundation's node; the combined answer must equal a brute-force computation
// over the answering partners' generated records and consents, and coverage
// must report a partner that refuses (its agreement lacks the purpose) and a
// partner that is stopped.
#include <signal.h>

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/common/status_matchers.h"
#include "query/sql.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;

constexpr char kTrustDomain[] = "fedshare.test";
const char* const kPrograms[] = {"literacy", "numeracy", "mentoring", "employment"};

struct Record {
  std::string subject;
  std::string program;
  int cohort_year;
  double outcome;
};

struct PartnerData {
  std::vector<Record> records;
  std::map<std::string, std::string> consent;  // subject -> purpose consented (GIVEN)
  std::string records_csv;
  std::string consent_csv;
};

PartnerData Generate(const std::string& org, uint32_t seed) {
  PartnerData d;
  std::mt19937 rng(seed);
  d.records_csv =
      "participant_id,program,region,cohort_year,age,completed,outcome_score,sessions_attended,"
      "income\n";
  d.consent_csv = "subject,purpose,event,time,valid_until,scope\n";
  // Enough people that `cohort_year >= 2020` drops records of at least k
  // people in every program cell, even among the ~30% who consent to
  // research (predicate removal, issue 8).
  for (int s = 0; s < 1000; ++s) {
    std::string subject = absl::StrCat(org, "-", s);
    int records = 1 + static_cast<int>(rng() % 2);
    for (int r = 0; r < records; ++r) {
      Record rec{subject, kPrograms[(s + r) % 4], 2019 + static_cast<int>(rng() % 5),
                 static_cast<double>(rng() % 10001) / 100.0};
      d.records.push_back(rec);
      absl::StrAppend(&d.records_csv, subject, ",", rec.program, ",north,", rec.cohort_year, ",",
                      20 + rng() % 40, ",true,", rec.outcome, ",", rng() % 50, ",0\n");
    }
    // Most consent to program evaluation, some to research (the parent),
    // some refuse.
    int kind = static_cast<int>(rng() % 10);
    const char* purpose = kind < 6 ? "program-evaluation" : kind < 9 ? "research" : nullptr;
    if (purpose != nullptr) {
      d.consent[subject] = purpose;
      absl::StrAppend(&d.consent_csv, subject, ",", purpose, ",GIVEN,2025-06-01,,*\n");
    } else {
      absl::StrAppend(&d.consent_csv, subject, ",program-evaluation,REFUSED,2025-06-01,,*\n");
    }
  }
  return d;
}

// Whether `subject` counts for a question with `purpose` (research covers
// program-evaluation; a consent to program-evaluation does not cover research).
bool Counts(const PartnerData& d, const std::string& subject, const std::string& purpose) {
  auto it = d.consent.find(subject);
  if (it == d.consent.end()) return false;
  return it->second == purpose || it->second == "research";
}

struct Expected {
  double count = 0, sum = 0, sum_squares = 0;
  std::set<std::string> subjects;
};

// Brute force over the answering partners: COUNT(*), AVG, STDDEV by program
// for cohort_year >= 2020.
std::map<std::string, Expected> BruteForce(const std::vector<const PartnerData*>& partners,
                                           const std::string& purpose) {
  std::map<std::string, Expected> cells;
  for (const PartnerData* d : partners) {
    for (const Record& r : d->records) {
      if (r.cohort_year < 2020 || !Counts(*d, r.subject, purpose)) continue;
      Expected& e = cells[r.program];
      e.count += 1;
      e.sum += r.outcome;
      e.sum_squares += r.outcome * r.outcome;
      e.subjects.insert(r.subject);
    }
  }
  return cells;
}

class FederationE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // partner-1 agrees to research (which covers program-evaluation);
    // partner-2 and partner-3 to program-evaluation only.
    const std::vector<std::pair<std::string, std::string>> partners = {
        {"partner-1", "research"},
        {"partner-2", "program-evaluation"},
        {"partner-3", "program-evaluation"}};
    uint32_t seed = 7;
    for (const auto& [org, purpose] : partners) {
      std::string node_id = pki_.Issue(org, Role::kNode);
      std::string op = pki_.Issue(org, Role::kOperator, "op");
      v1::NodeConfig config = BaseNodeConfig(org, kTrustDomain, tmp_.Sub(org + "-data"), node_id);
      *config.add_datasets() = ProgramOutcomesSchema();
      v1::Agreement a = OpenAgreement("foundation-" + purpose, "foundation");
      a.clear_purposes();
      a.add_purposes(purpose);
      *config.add_agreements() = a;
      auto started = StartNodeProcess(config, tmp_.Sub(org + ".textproto"));
      ASSERT_OK(started.status());
      data_[org] = Generate(org, seed++);
      auto admin = Connect(started->local_address, op, kTrustDomain, org);
      ASSERT_NE(admin, nullptr);
      ASSERT_OK_AND_ASSIGN(
          auto ingested, admin->Ingest("program_outcomes", v1::CSV, false, data_[org].records_csv));
      ASSERT_EQ(ingested.rows_written(), static_cast<int64_t>(data_[org].records.size()))
          << ingested.DebugString();
      ASSERT_OK_AND_ASSIGN(auto consented, admin->ImportConsent(data_[org].consent_csv));
      ASSERT_EQ(consented.events_rejected(), 0) << consented.DebugString();
      nodes_[org] = std::move(started).value();
    }

    std::string foundation_id = pki_.Issue("foundation", Role::kNode);
    analyst_ = pki_.Issue("foundation", Role::kAnalyst, "ana");
    v1::NodeConfig config =
        BaseNodeConfig("foundation", kTrustDomain, tmp_.Sub("foundation-data"), foundation_id);
    config.set_peer_deadline_ms(5000);
    for (const auto& [org, node] : nodes_) {
      v1::PeerConfig* peer = config.add_peers();
      peer->set_org_id(org);
      peer->set_address(node.peer_address);
      peer->add_groups("grantees");
    }
    auto foundation = StartNodeProcess(config, tmp_.Sub("foundation.textproto"));
    ASSERT_OK(foundation.status());
    foundation_ = std::move(foundation).value();
  }

  absl::StatusOr<v1::FederatedAggregateResponse> AskAll(const std::string& purpose) {
    v1::FederatedAggregateRequest request;
    request.set_all_peers(true);
    return Ask(purpose, request);
  }

  absl::StatusOr<v1::FederatedAggregateResponse> Ask(const std::string& purpose,
                                                     v1::FederatedAggregateRequest request) {
    auto query = ParseSql(
        absl::StrCat("SELECT program, COUNT(*), COUNT(DISTINCT subject), AVG(outcome_score), "
                     "STDDEV(outcome_score) FROM program_outcomes WHERE cohort_year >= 2020 "
                     "GROUP BY program PURPOSE '",
                     purpose, "'"));
    if (!query.ok()) return query.status();
    *request.mutable_query() = *query;
    auto client = Connect(foundation_.local_address, analyst_, kTrustDomain, "foundation");
    if (client == nullptr) return absl::InternalError("no client");
    return client->FederatedAggregate(request);
  }

  static void ExpectCombinedEquals(const v1::AggregateResult& combined,
                                   const std::map<std::string, Expected>& expected, int partners) {
    ASSERT_EQ(combined.cells_size(), static_cast<int>(expected.size())) << combined.DebugString();
    for (const v1::Cell& cell : combined.cells()) {
      const std::string program = cell.key(0).string_value();
      SCOPED_TRACE(program);
      ASSERT_TRUE(expected.count(program));
      const Expected& e = expected.at(program);
      ASSERT_GE(static_cast<int>(e.subjects.size()), 10 * partners) << "too small to be released";
      EXPECT_FALSE(cell.withheld());
      EXPECT_FALSE(cell.partial());
      EXPECT_EQ(cell.partners(), partners);
      EXPECT_EQ(cell.values(0).value(), e.count);
      EXPECT_EQ(cell.values(1).value(), static_cast<double>(e.subjects.size()));
      EXPECT_NEAR(cell.values(2).value(), e.sum / e.count, 1e-9);
      double variance = (e.sum_squares - e.sum * e.sum / e.count) / (e.count - 1);
      EXPECT_NEAR(cell.values(3).value(), std::sqrt(variance), 1e-9);
    }
  }

  static const v1::PartnerCoverage& Coverage(const v1::FederatedAggregateResponse& r,
                                             const std::string& org) {
    for (const v1::PartnerCoverage& c : r.coverage()) {
      if (c.org_id() == org) return c;
    }
    ADD_FAILURE() << "no coverage for " << org;
    return r.coverage(0);
  }

  TempDir tmp_{"federation"};
  Pki pki_{tmp_.Sub("pki"), kTrustDomain};
  std::map<std::string, NodeProcess> nodes_;
  std::map<std::string, PartnerData> data_;
  NodeProcess foundation_;
  std::string analyst_;
};

TEST_F(FederationE2eTest, CombinedAnswerEqualsBruteForceOverAllPartners) {
  ASSERT_OK_AND_ASSIGN(auto response, AskAll("program-evaluation"));
  ASSERT_EQ(response.coverage_size(), 3);
  for (const v1::PartnerCoverage& c : response.coverage()) {
    EXPECT_EQ(c.state(), v1::PartnerCoverage::ANSWERED) << c.DebugString();
  }
  ExpectCombinedEquals(response.combined(),
                       BruteForce({&data_["partner-1"], &data_["partner-2"], &data_["partner-3"]},
                                  "program-evaluation"),
                       3);
  EXPECT_EQ(response.partners_size(), 3);
  EXPECT_EQ(response.combined().receipt().org_id(), "foundation");

  // Named partners only.
  v1::FederatedAggregateRequest named;
  named.add_peers("partner-1");
  named.add_peers("partner-2");
  ASSERT_OK_AND_ASSIGN(auto two, Ask("program-evaluation", named));
  EXPECT_EQ(two.coverage_size(), 2);
  ExpectCombinedEquals(two.combined(),
                       BruteForce({&data_["partner-1"], &data_["partner-2"]}, "program-evaluation"),
                       2);

  // A configured group.
  v1::FederatedAggregateRequest group;
  group.set_group("grantees");
  ASSERT_OK_AND_ASSIGN(auto grantees, Ask("program-evaluation", group));
  EXPECT_EQ(grantees.coverage_size(), 3);

  // An unknown partner or group is the asker's mistake, not a partner's.
  v1::FederatedAggregateRequest unknown;
  unknown.add_peers("partner-9");
  EXPECT_THAT(Ask("program-evaluation", unknown),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("partner-9")));
  unknown.clear_peers();
  unknown.set_group("nobody");
  EXPECT_THAT(Ask("program-evaluation", unknown),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("nobody")));
}

TEST_F(FederationE2eTest, RefusingAndStoppedPartnersAreReportedAndExcluded) {
  // partner-3 stops; partner-2's agreement does not cover research.
  int status = nodes_["partner-3"].process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  ASSERT_OK_AND_ASSIGN(auto response, AskAll("research"));
  ASSERT_EQ(response.coverage_size(), 3);
  EXPECT_EQ(Coverage(response, "partner-1").state(), v1::PartnerCoverage::ANSWERED);
  const v1::PartnerCoverage& refused = Coverage(response, "partner-2");
  EXPECT_EQ(refused.state(), v1::PartnerCoverage::REFUSED);
  EXPECT_THAT(refused.reason(), ::testing::HasSubstr("purpose"));
  const v1::PartnerCoverage& stopped = Coverage(response, "partner-3");
  EXPECT_THAT(stopped.state(),
              ::testing::AnyOf(v1::PartnerCoverage::UNREACHABLE, v1::PartnerCoverage::TIMED_OUT));
  ExpectCombinedEquals(response.combined(), BruteForce({&data_["partner-1"]}, "research"), 1);
  ASSERT_EQ(response.partners_size(), 1);
  EXPECT_EQ(response.partners(0).org_id(), "partner-1");
}

TEST_F(FederationE2eTest, CliCsvCarriesCoverageAndMinCoverageFailsAPartialTotal) {
  int status = nodes_["partner-3"].process->Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto query = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {
        "query", "--all-peers", "--sql",
        "SELECT program, COUNT(*) FROM program_outcomes WHERE cohort_year >= 2020 "
        "GROUP BY program PURPOSE 'program-evaluation'"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCliAs(tmp_, analyst_, foundation_.local_address, args);
  };

  ProcessOutcome all = query({"--output", "csv"});
  EXPECT_EQ(all.exit_code, 3) << all.err;
  EXPECT_THAT(all.out, ::testing::StartsWith("# coverage: 2 of 3 partners answered\r\n"));
  EXPECT_THAT(all.out,
              ::testing::HasSubstr("# partner-1: answered; as applied: cohort_year >= 2020\r\n"));
  EXPECT_THAT(all.out, ::testing::ContainsRegex("# partner-3: (unreachable|timed out)"));
  EXPECT_THAT(all.out, ::testing::HasSubstr("program,count,withheld,partial,partners\r\n"));
  EXPECT_THAT(all.err, ::testing::HasSubstr("incomplete: 2 of 3 partners answered"));
  EXPECT_THAT(all.err, ::testing::HasSubstr("partner-3"));

  ProcessOutcome two = query({"--output", "csv", "--min-coverage", "2"});
  EXPECT_EQ(two.exit_code, 0) << two.err;
  EXPECT_EQ(two.out, all.out);

  ProcessOutcome table = query({"--output", "table", "--min-coverage", "2"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, ::testing::HasSubstr("as applied: cohort_year >= 2020\n"));
}

}  // namespace
}  // namespace fedshare::testing
