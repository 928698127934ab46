#include "tests/fuzz/fuzz_env.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/server/config.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"
#include "tests/fuzz/fuzz_assert.h"

namespace fedshare::fuzz {

const char kNodeConfig[] = R"cfg(
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
  consent_basis: OPT_OUT
  fields { name: "participant_id" type: CATEGORY role: SUBJECT }
  fields { name: "name" type: CATEGORY role: PRIVATE }
  fields { name: "program" type: CATEGORY role: DIMENSION categories: ["a", "b", "c"] }
  fields { name: "region" type: CATEGORY role: DIMENSION }
  fields { name: "cohort_year" type: INT64 role: DIMENSION }
  fields { name: "active" type: BOOL role: DIMENSION }
  fields { name: "enrolled" type: DATE role: DIMENSION }
  fields { name: "outcome_score" type: DOUBLE role: MEASURE lower: 0 upper: 100 }
  fields { name: "visits" type: INT64 role: MEASURE lower: 0 upper: 50 }
}
agreements {
  id: "foundation-eval"
  peers: "foundation"
  dataset: "program_outcomes"
  purposes: "research"
  aggregates: [COUNT, COUNT_SUBJECTS, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM]
  filter_fields: ["program", "region", "cohort_year", "active", "enrolled"]
  group_fields: ["program", "region", "cohort_year", "active", "enrolled"]
  measure_fields: ["outcome_score", "visits"]
  disclosure { min_subjects: 3 }
}
agreements {
  id: "no-visits"
  effect: FORBID
  peers: "*"
  dataset: "program_outcomes"
  measure_fields: "visits"
  aggregates: HISTOGRAM
}
peers { org_id: "foundation" address: "127.0.0.1:7443" groups: "all" }
)cfg";

namespace {

std::vector<std::string>& DirsToRemove() {
  static auto* dirs = new std::vector<std::string>;
  return *dirs;
}

void RemoveDirs() {
  std::error_code ignored;
  for (const std::string& d : DirsToRemove()) std::filesystem::remove_all(d, ignored);
}

// Making the fuzz node must succeed, or no input means anything.
void AssertOk(absl::string_view what, const absl::Status& status) {
  FEDSHARE_FUZZ_ASSERT(status.ok(), absl::StrCat("fuzz node: ", what, ": ", status.ToString()));
}

std::string Rows() {
  std::string csv =
      "participant_id,name,program,region,cohort_year,active,enrolled,outcome_score,visits\n";
  const char* programs[] = {"a", "b", "c"};
  const char* regions[] = {"north", "south", "east", "west"};
  for (int i = 0; i < 48; ++i) {
    absl::StrAppend(&csv, "p", i % 40, ",Name ", i, ",", programs[i % 3], ",", regions[i % 4], ",",
                    2018 + i % 5, ",", i % 2 == 0 ? "true" : "false", ",2021-0", 1 + i % 9, "-1",
                    i % 10, ",", (i * 37) % 100, ".5,", i % 13, "\n");
  }
  // A few nulls.
  absl::StrAppend(&csv, "p7,,a,,2020,,,,\n", "p8,x,,north,,true,2020-02-29,12.25,3\n");
  return csv;
}

}  // namespace

std::string TempDir(const char* name) {
  struct stat st;
  std::string base = (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
                         ? "/dev/shm"
                         : std::filesystem::temp_directory_path().string();
  std::string tmpl = absl::StrCat(base, "/fedshare-fuzz-", name, ".XXXXXX");
  char* made = mkdtemp(tmpl.data());
  FEDSHARE_FUZZ_ASSERT(made != nullptr, absl::StrCat("fuzz node: mkdtemp ", tmpl));
  if (DirsToRemove().empty()) std::atexit(RemoveDirs);
  DirsToRemove().push_back(tmpl);
  return tmpl;
}

FuzzNode& TheNode() {
  static FuzzNode* node = [] {
    auto* n = new FuzzNode;
    n->dir = TempDir("node");
    absl::StatusOr<v1::NodeConfig> config = server::ParseNodeConfig(kNodeConfig, "fuzz", n->dir);
    AssertOk("config", config.status());
    n->config = *std::move(config);
    n->clock = std::make_unique<FakeClock>(absl::FromUnixSeconds(1767225600));  // 2026-01-01
    auto storage = storage::Storage::Create(n->config.data_dir(), {});
    AssertOk("storage", storage.status());
    n->storage = *std::move(storage);
    auto audit = audit::AuditLog::Open(n->storage.get(), n->clock.get(), n->config.org_id());
    AssertOk("audit", audit.status());
    n->audit = *std::move(audit);
    std::vector<v1::DatasetSchema> schemas(n->config.datasets().begin(),
                                           n->config.datasets().end());
    engine::EngineOptions options;
    options.org_id = n->config.org_id();
    options.purposes.assign(n->config.purposes().begin(), n->config.purposes().end());
    options.datasets = schemas;
    options.clock = n->clock.get();
    auto engine = engine::Engine::Create(n->storage.get(), options);
    AssertOk("engine", engine.status());
    n->engine = *std::move(engine);
    auto ingested = n->engine->Ingest("program_outcomes", v1::CSV, false, Rows());
    AssertOk("ingest", ingested.status());
    FEDSHARE_FUZZ_ASSERT(ingested->errors_size() == 0,
                         absl::StrCat("fuzz node: ingest: ", ingested->DebugString()));
    auto consent =
        n->engine->ImportConsent("subject,purpose,event,time\np1,research,WITHDRAWN,2025-01-01\n");
    AssertOk("consent", consent.status());
    auto tree = policy::PurposeTree::Create(n->config.purposes());
    AssertOk("purposes", tree.status());
    std::vector<v1::Agreement> list(n->config.agreements().begin(), n->config.agreements().end());
    auto agreements = policy::AgreementSet::Create(list, *tree, schemas);
    AssertOk("agreements", agreements.status());
    n->answerer = std::make_unique<engine::Answerer>(
        n->config.org_id(), n->engine.get(), n->audit.get(), n->storage.get(),
        std::make_shared<const policy::AgreementSet>(*std::move(agreements)), schemas,
        n->clock.get());
    return n;
  }();
  return *node;
}

}  // namespace fedshare::fuzz
