// partner-a as an in-process node (server::Node) holding program_outcomes,
// asked over mTLS by the node of "foundation" and loaded by partner-a's
// operator: the setup the integration tests of one real node share (the
// disclosure searches, erasure, backup, differential privacy, the CLI's data
// commands against a node process).
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
#include <vector>

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

  // partner-a's BaseNodeConfig: no dataset and no agreement.
  v1::NodeConfig BaseConfig() const;
  // BaseConfig with the program_outcomes dataset.
  v1::NodeConfig Config() const;

  // Validates `config`, starts the node in process with `options` (a clock,
  // a fault injector; they must outlive the node), and connects foundation
  // (to the peer listener) and the operator (to the local one).
  absl::Status Start(const v1::NodeConfig& config,
                     server::NodeOptions options = server::NodeOptions());
  // As Start, but the node is a fedshare-node child process on `config`
  // (written under `tmp` as node.textproto): for the CLI against the real
  // binary and the process's own figures. node() is then unavailable.
  absl::Status StartProcess(const v1::NodeConfig& config);
  // Closes both connections and stops the node (a child process is killed),
  // so its store can be read or the node started again. Idempotent.
  void Stop();

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
  // REQUIRES: StartProcess succeeded.
  Subprocess& process() { return *process_.process; }
  // REQUIRES: Start or StartProcess succeeded. Where the node's local
  // listener is bound.
  const std::string& local_address() const { return local_address_; }
  // Foundation's node, asking partner-a as a peer.
  client::NodeClient& peer() { return *peer_; }
  // partner-a's operator on the local listener.
  client::NodeClient& admin() { return *admin_; }
  // REQUIRES: Start or StartProcess succeeded. The fedshare CLI as
  // partner-a's operator on the node's local listener:
  // `fedshare --node LOCAL --identity OPERATOR ARGS...`.
  ProcessOutcome OperatorCli(const std::vector<std::string>& args) const;

  // Certificate folders (cert.pem, key.pem, ca.pem), for more connections,
  // CLI runs and nodes of partner-a started otherwise.
  const std::string& node_identity() const { return node_identity_; }
  const std::string& operator_identity() const { return operator_identity_; }
  const std::string& foundation_identity() const { return foundation_identity_; }

 private:
  // Connects foundation to `peer_address` and the operator to `local_address`.
  absl::Status Connect(const std::string& peer_address, const std::string& local_address);

  const TempDir& tmp_;
  std::string node_identity_;
  std::string operator_identity_;
  std::string foundation_identity_;
  std::string trust_domain_;
  std::unique_ptr<server::Node> node_;
  NodeProcess process_;
  std::string local_address_;
  std::unique_ptr<client::NodeClient> peer_;
  std::unique_ptr<client::NodeClient> admin_;
};

}  // namespace fedshare::testing

#endif  // FEDSHARE_TESTING_PARTNER_FIXTURE_H_
