#include "testing/partner_fixture.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "node/common/status_macros.h"
#include "node/server/config.h"

namespace fedshare::testing {
namespace {

constexpr char kPartner[] = "partner-a";

}  // namespace

PartnerFixture::PartnerFixture(const TempDir& tmp, Pki& pki)
    : tmp_(tmp),
      node_identity_(pki.Issue(kPartner, identity::Role::kNode)),
      operator_identity_(pki.Issue(kPartner, identity::Role::kOperator, "olga")),
      foundation_identity_(pki.Issue("foundation", identity::Role::kNode)),
      trust_domain_(pki.trust_domain()) {}

v1::NodeConfig PartnerFixture::BaseConfig() const {
  return BaseNodeConfig(kPartner, trust_domain_, tmp_.Sub("data"), node_identity_);
}

v1::NodeConfig PartnerFixture::Config() const {
  v1::NodeConfig config = BaseConfig();
  *config.add_datasets() = ProgramOutcomesSchema();
  return config;
}

absl::Status PartnerFixture::Start(const v1::NodeConfig& config, server::NodeOptions options) {
  FEDSHARE_RETURN_IF_ERROR(server::ValidateNodeConfig(config));
  FEDSHARE_ASSIGN_OR_RETURN(node_, server::Node::Create(config, options));
  return Connect(node_->peer_address(), node_->local_address());
}

absl::Status PartnerFixture::StartProcess(const v1::NodeConfig& config) {
  FEDSHARE_ASSIGN_OR_RETURN(process_, StartNodeProcess(config, tmp_.Sub("node.textproto")));
  return Connect(process_.peer_address, process_.local_address);
}

absl::Status PartnerFixture::Connect(const std::string& peer_address,
                                     const std::string& local_address) {
  local_address_ = local_address;
  peer_ = fedshare::testing::Connect(peer_address, foundation_identity_, trust_domain_, kPartner);
  admin_ = fedshare::testing::Connect(local_address, operator_identity_, trust_domain_);
  if (peer_ == nullptr || admin_ == nullptr) {
    return absl::UnavailableError("could not connect to the partner node");
  }
  return absl::OkStatus();
}

void PartnerFixture::Stop() {
  admin_.reset();
  peer_.reset();
  node_.reset();
  process_ = NodeProcess();
}

ProcessOutcome PartnerFixture::OperatorCli(const std::vector<std::string>& args) const {
  return RunCliAs(tmp_, operator_identity_, local_address_, args);
}

absl::Status PartnerFixture::Ingest(const std::string& csv, int64_t rows) {
  FEDSHARE_ASSIGN_OR_RETURN(v1::IngestResponse ingested,
                            admin_->Ingest("program_outcomes", v1::CSV, false, csv));
  if (ingested.rows_written() != rows) {
    return absl::InternalError(absl::StrCat("wrote ", ingested.rows_written(), " of ", rows,
                                            " rows: ", ingested.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status PartnerFixture::ImportConsent(const std::string& consent_csv) {
  FEDSHARE_ASSIGN_OR_RETURN(v1::ConsentImportResponse consented,
                            admin_->ImportConsent(consent_csv));
  if (consented.events_rejected() != 0) {
    return absl::InternalError(absl::StrCat("consent events rejected: ", consented.DebugString()));
  }
  return absl::OkStatus();
}

absl::Status PartnerFixture::Load(const std::string& csv, int64_t rows,
                                  const std::set<std::string>& subjects) {
  FEDSHARE_RETURN_IF_ERROR(Ingest(csv, rows));
  std::string consents = "subject,purpose,event,time,valid_until,scope\n";
  for (const std::string& s : subjects) {
    absl::StrAppend(&consents, s, ",program-evaluation,GIVEN,2026-01-01T00:00:00Z,,*\n");
  }
  return ImportConsent(consents);
}

}  // namespace fedshare::testing
