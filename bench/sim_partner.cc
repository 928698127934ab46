#include "bench/sim_partner.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/synthetic.h"
#include "google/protobuf/text_format.h"
#include "node/common/files.h"
#include "node/common/status_macros.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"

namespace fedshare::sim {

std::string IdDir(const std::string& dir, const std::string& org, identity::Role role,
                  const std::string& name) {
  return absl::StrCat(dir, "/pki/", org, "-", identity::RoleName(role), name.empty() ? "" : "-",
                      name);
}

absl::Status Issue(const std::string& dir, const std::string& org, identity::Role role,
                   const std::string& name) {
  identity::IssueOptions options;
  options.org = org;
  options.role = role;
  options.name = name;
  options.out_dir = IdDir(dir, org, role, name);
  if (std::filesystem::exists(options.out_dir + "/cert.pem")) return absl::OkStatus();
  return identity::IssueCertificate(dir + "/pki/ca", options);
}

v1::NodeConfig NodeConfig(const std::string& org, const std::string& dir) {
  v1::NodeConfig config;
  config.set_org_id(org);
  config.set_trust_domain(kTrustDomain);
  config.set_data_dir(dir + "/data/" + org);
  config.set_peer_address("127.0.0.1:0");
  config.set_local_address("127.0.0.1:0");
  const std::string id = IdDir(dir, org, identity::Role::kNode, "");
  config.mutable_tls()->set_cert_file(id + "/cert.pem");
  config.mutable_tls()->set_key_file(id + "/key.pem");
  config.mutable_tls()->set_ca_file(id + "/ca.pem");
  for (const v1::Purpose& p : synthetic::Purposes()) *config.add_purposes() = p;
  return config;
}

absl::StatusOr<std::unique_ptr<SimPartner>> MakePartner(const std::string& org,
                                                        const std::string& dir, int index,
                                                        int records,
                                                        const identity::Authenticator* auth) {
  auto p = std::make_unique<SimPartner>();
  p->config = NodeConfig(org, dir);
  *p->config.add_datasets() = synthetic::ProgramOutcomesSchema();
  v1::Agreement* a = p->config.add_agreements();
  google::protobuf::TextFormat::ParseFromString(
      R"pb(
        id: "open"
        peers: "foundation"
        dataset: "program_outcomes"
        purposes: "program-evaluation"
        aggregates: [ COUNT, COUNT_SUBJECTS, AVG ]
        group_fields: [ "program" ]
        measure_fields: [ "outcome_score" ]
        disclosure { repeat_limit: 1000000 }
      )pb",
      a);
  const v1::NodeConfig& cfg = p->config;
  storage::StorageOptions storage_options;
  storage_options.block_cache_bytes = 1 << 20;
  storage_options.disk_reserve_bytes = 0;
  FEDSHARE_ASSIGN_OR_RETURN(p->storage, storage::Storage::Create(cfg.data_dir(), storage_options));
  FEDSHARE_ASSIGN_OR_RETURN(p->audit, audit::AuditLog::Open(p->storage.get(), Clock::Real(), org));
  std::vector<v1::DatasetSchema> schemas(cfg.datasets().begin(), cfg.datasets().end());
  FEDSHARE_ASSIGN_OR_RETURN(policy::PurposeTree purposes,
                            policy::PurposeTree::Create(cfg.purposes()));
  FEDSHARE_ASSIGN_OR_RETURN(
      policy::AgreementSet agreements,
      policy::AgreementSet::Create({cfg.agreements().begin(), cfg.agreements().end()}, purposes,
                                   schemas));
  engine::EngineOptions engine_options;
  engine_options.org_id = org;
  engine_options.purposes.assign(cfg.purposes().begin(), cfg.purposes().end());
  engine_options.datasets = schemas;
  FEDSHARE_ASSIGN_OR_RETURN(p->engine,
                            engine::Engine::Create(p->storage.get(), std::move(engine_options)));
  p->answerer = std::make_unique<engine::Answerer>(
      org, p->engine.get(), p->audit.get(), p->storage.get(),
      std::make_shared<const policy::AgreementSet>(std::move(agreements)), schemas, Clock::Real());
  service::ServiceEnv& env = p->env;
  env.config = &p->config;
  env.authenticator = auth;
  env.engine = p->engine.get();
  env.storage = p->storage.get();
  env.answerer = p->answerer.get();
  env.audit = p->audit.get();
  env.started_at = absl::Now();
  env.clock = Clock::Real();
  env.limits = service::EffectiveLimits(cfg.limits());
  p->gate = std::make_unique<service::CallGate>(env.limits.max_calls_per_caller());
  p->throttle = std::make_unique<service::StormThrottle>(
      service::StormThrottle::Refusals(), env.limits.refusals_per_window(),
      absl::Seconds(env.limits.refusal_window_seconds()),
      [](const std::string&, int64_t, absl::Time, absl::Time) {});
  p->dry_run_throttle = std::make_unique<service::StormThrottle>(
      service::StormThrottle::DryRuns(), env.limits.dry_runs_per_window(),
      absl::Seconds(env.limits.dry_run_window_seconds()),
      [](const std::string&, int64_t, absl::Time, absl::Time) {});
  env.call_gate = p->gate.get();
  env.refusal_throttle = p->throttle.get();
  env.dry_run_throttle = p->dry_run_throttle.get();
  p->peer_service = std::make_unique<service::PeerServiceImpl>(&env);

  synthetic::Options data;
  data.rows = records;
  data.seed = static_cast<uint64_t>(index + 1);
  absl::StatusOr<v1::IngestResponse> ingested =
      p->engine->Ingest("program_outcomes", v1::CSV, false, synthetic::RecordsCsv(data));
  if (!ingested.ok()) return ingested.status();
  absl::StatusOr<v1::ConsentImportResponse> consented =
      p->engine->ImportConsent(synthetic::ConsentCsv(data));
  if (!consented.ok()) return consented.status();
  return p;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> ServeDirect(std::vector<SimPartner*> partners,
                                                          DispatchingPeerService* service) {
  grpc::ServerBuilder builder;
  std::vector<int> ports(partners.size());
  for (size_t i = 0; i < partners.size(); ++i) {
    const v1::TlsConfig& tls = partners[i]->config.tls();
    FEDSHARE_ASSIGN_OR_RETURN(std::string cert, ReadFile(tls.cert_file()));
    FEDSHARE_ASSIGN_OR_RETURN(std::string key, ReadFile(tls.key_file()));
    FEDSHARE_ASSIGN_OR_RETURN(std::string ca, ReadFile(tls.ca_file()));
    grpc::SslServerCredentialsOptions options(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = ca;
    options.pem_key_cert_pairs.push_back({key, cert});
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(options), &ports[i]);
  }
  builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(1 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return absl::UnavailableError("cannot start the partners' server");
  for (size_t i = 0; i < partners.size(); ++i) {
    if (ports[i] == 0) return absl::UnavailableError("a partner's port could not be bound");
    partners[i]->port = ports[i];
    service->Add(ports[i], partners[i]);
  }
  return server;
}

}  // namespace fedshare::sim
