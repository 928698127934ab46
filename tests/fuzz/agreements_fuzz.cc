// Agreement loading: any bytes as the agreements file of the fuzz node's
// config, through ParseNodeConfig (which reads and validates the file the
// way fedshare-node --check-config does) and the AgreementSet the node builds
// from it; an accepted set then decides a few questions.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/common/files.h"
#include "node/server/config.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"
#include "tests/fuzz/fuzz_assert.h"
#include "tests/fuzz/fuzz_env.h"

namespace {

struct Paths {
  std::string agreements;
  std::string config_text;
};

const Paths& ThePaths() {
  static const Paths* paths = [] {
    auto* p = new Paths;
    p->agreements = fedshare::fuzz::TempDir("agreements") + "/agreements.textproto";
    p->config_text =
        absl::StrCat(fedshare::fuzz::kNodeConfig, "\nagreements_file: \"", p->agreements, "\"\n");
    return p;
  }();
  return *paths;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Paths& paths = ThePaths();
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  FEDSHARE_FUZZ_ASSERT(fedshare::WriteFileAtomic(paths.agreements, text).ok(),
                       "the agreements file must be writable");
  absl::StatusOr<fedshare::v1::NodeConfig> config =
      fedshare::server::ParseNodeConfig(paths.config_text, "fuzz.textproto", "");
  if (!config.ok()) {
    FEDSHARE_FUZZ_ASSERT(config.status().code() == absl::StatusCode::kInvalidArgument,
                         config.status().ToString());
    return 0;
  }
  absl::StatusOr<fedshare::v1::AgreementSet> file =
      fedshare::server::LoadAgreementsFile(paths.agreements);
  FEDSHARE_FUZZ_ASSERT(file.ok(),
                       "a validated agreements file must load: " + file.status().ToString());
  absl::StatusOr<fedshare::policy::PurposeTree> tree =
      fedshare::policy::PurposeTree::Create(config->purposes());
  FEDSHARE_FUZZ_ASSERT(tree.ok(), "validated purposes must build: " + tree.status().ToString());
  std::vector<fedshare::v1::DatasetSchema> schemas(config->datasets().begin(),
                                                   config->datasets().end());
  std::vector<fedshare::v1::Agreement> list(config->agreements().begin(),
                                            config->agreements().end());
  list.insert(list.end(), file->agreements().begin(), file->agreements().end());
  absl::StatusOr<fedshare::policy::AgreementSet> agreements =
      fedshare::policy::AgreementSet::Create(list, *tree, schemas);
  FEDSHARE_FUZZ_ASSERT(agreements.ok(), "validation accepted the file, so the node must use it: " +
                                            agreements.status().ToString());
  fedshare::v1::AggregateQuery query;
  query.set_dataset("program_outcomes");
  query.set_purpose("program-evaluation");
  query.add_aggregates()->set_kind(fedshare::v1::AVG);
  query.mutable_aggregates(0)->set_field("outcome_score");
  query.add_group_by("program");
  for (const char* peer : {"foundation", "partner-b", "x"}) {
    for (int64_t t : {int64_t{0}, int64_t{1767225600}, int64_t{4102444800}}) {
      (void)agreements->Decide(peer, query, absl::FromUnixSeconds(t));
      (void)agreements->ForPeer(peer, absl::FromUnixSeconds(t));
    }
  }
  return 0;
}
