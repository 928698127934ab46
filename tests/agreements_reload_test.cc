// DESIGN §7: agreements in agreements_file reload without a restart.
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "node/common/files.h"
#include "node/common/status_matchers.h"
#include "node/server/node.h"
#include "query/sql.h"
#include "tests/test_env.h"

namespace fedshare::testing {
namespace {

using identity::Role;
using ::testing::HasSubstr;

constexpr char kTrustDomain[] = "fedshare.test";

std::string AgreementsText(bool allow_sum) {
  v1::Agreement a = OpenAgreement("foundation-eval", "foundation");
  a.clear_aggregates();
  a.add_aggregates(v1::COUNT);
  if (allow_sum) a.add_aggregates(v1::SUM);
  a.mutable_disclosure()->set_repeat_limit(1000);  // the test polls with one question
  v1::AgreementSet set;
  *set.add_agreements() = a;
  std::string text;
  google::protobuf::TextFormat::PrintToString(set, &text);
  return text;
}

TEST(AgreementsReloadTest, ChangedAgreementsFileTakesEffectWithoutRestart) {
  TempDir tmp("reload");
  Pki pki(tmp.Sub("pki"), kTrustDomain);
  std::string node_id = pki.Issue("partner-a", Role::kNode);
  std::string foundation = pki.Issue("foundation", Role::kNode);
  std::string file = tmp.Sub("agreements.textproto");
  ASSERT_OK(WriteFileAtomic(file, AgreementsText(/*allow_sum=*/false)));
  v1::NodeConfig config = BaseNodeConfig("partner-a", kTrustDomain, tmp.Sub("data"), node_id);
  *config.add_datasets() = ProgramOutcomesSchema();
  config.set_agreements_file(file);
  ASSERT_OK_AND_ASSIGN(auto node, server::Node::Create(config, server::NodeOptions()));
  auto client = Connect(node->peer_address(), foundation, kTrustDomain);
  ASSERT_NE(client, nullptr);

  ASSERT_OK_AND_ASSIGN(v1::AggregateQuery sum,
                       ParseSql("SELECT SUM(sessions_attended) FROM program_outcomes "
                                "PURPOSE 'program-evaluation'"));
  ASSERT_THAT(client->Aggregate(sum),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("aggregate")));

  // A broken file keeps the agreements in force; a good one replaces them.
  ASSERT_OK(WriteFileAtomic(file, "agreements { id: "));
  ASSERT_OK(WriteFileAtomic(file, AgreementsText(/*allow_sum=*/true)));
  absl::Status last;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    last = client->Aggregate(sum).status();
    if (last.code() != absl::StatusCode::kPermissionDenied) break;
    absl::SleepFor(absl::Milliseconds(200));  // poll interval while the node reloads
  }
  EXPECT_OK(last);

  ASSERT_OK(WriteFileAtomic(file, AgreementsText(/*allow_sum=*/false)));
  deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    last = client->Aggregate(sum).status();
    if (!last.ok()) break;
    absl::SleepFor(absl::Milliseconds(200));  // poll interval while the node reloads
  }
  EXPECT_THAT(last, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("aggregate")));
}

}  // namespace
}  // namespace fedshare::testing
