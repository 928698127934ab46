// partner-a as an in-process node (server::Node) holding program_outcomes,
// asked over mTLS by the node of "foundation" and loaded by partner-a's
// operator: the setup the disclosure tests that search answers share.
//
//   PartnerFixture partner(tmp_, pki_);
//   v1::NodeConfig config = partner.Config();
//   *config.add_agreements() = OpenAgreement("open", "foundation");
//   ASSERT_OK(partner.Start(config));
//   ASSERT_OK(partner.Load(csv, rows, subjects));
//   absl::StatusOr<v1::AggregateResult> answer = partner.peer().Aggregate(query);
#ifndef FEDSHARE_TESTING_PARTNER_FIXTURE_H_
#define FEDSHARE_TESTING_PARTNER_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "client/node_client.h"
#include "fedshare/v1/config.pb.h"
#include "node/server/node.h"
#include "tests/test_env.h"

namespace fedshare::testing {

class PartnerFixture {
 public:
  // Issues partner-a's node and operator (olga) certificates and foundation's
  // node certificate from `pki`; the node's data goes under `tmp`. Both must
  // outlive the fixture.
  PartnerFixture(const TempDir& tmp, Pki& pki);

  // partner-a's BaseNodeConfig with the program_outcomes dataset and no
  // agreement.
  v1::NodeConfig Config() const;

  // Validates `config`, starts the node in process, and connects foundation
  // (to the peer listener) and the operator (to the local one).
  absl::Status Start(const v1::NodeConfig& config);

  // REQUIRES: Start succeeded. Ingests `csv` (with its header line) into
  // program_outcomes as the operator; all `rows` rows must be written.
  absl::Status Ingest(const std::string& csv, int64_t rows);
  // REQUIRES: Start succeeded. Imports consent events (consent CSV) as the
  // operator; none may be rejected.
  absl::Status ImportConsent(const std::string& consent_csv);
  // Ingest, then consent GIVEN to program-evaluation on 2026-01-01 for each
  // of `subjects`.
  absl::Status Load(const std::string& csv, int64_t rows, const std::set<std::string>& subjects);

  // REQUIRES: Start succeeded.
  server::Node& node() { return *node_; }
  // Foundation's node, asking partner-a as a peer.
  client::NodeClient& peer() { return *peer_; }
  // partner-a's operator on the local listener.
  client::NodeClient& admin() { return *admin_; }

 private:
  const TempDir& tmp_;
  std::string node_identity_;
  std::string operator_identity_;
  std::string foundation_identity_;
  std::string trust_domain_;
  std::unique_ptr<server::Node> node_;
  std::unique_ptr<client::NodeClient> peer_;
  std::unique_ptr<client::NodeClient> admin_;
};

}  // namespace fedshare::testing

#endif  // FEDSHARE_TESTING_PARTNER_FIXTURE_H_
