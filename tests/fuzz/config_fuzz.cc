// Node config loading: ParseNodeConfig (text format or JSON, then validation)
// on any text, and for a valid config the agreements, purposes and datasets
// built the way Node::Create builds them, then one decision.
//
// An input naming an agreements_file or a peers_file is skipped: it would
// make the target read an arbitrary path (the agreements target covers that
// file; config_test the peers_file).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "node/server/config.h"
#include "policy/agreement.h"
#include "policy/purpose_tree.h"
#include "policy/schema.h"
#include "tests/fuzz/fuzz_assert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string lower = absl::AsciiStrToLower(text);
  if (absl::StrContains(lower, "agreements_file") || absl::StrContains(lower, "agreementsfile") ||
      absl::StrContains(lower, "peers_file") || absl::StrContains(lower, "peersfile")) {
    return -1;
  }
  absl::StatusOr<fedshare::v1::NodeConfig> config =
      fedshare::server::ParseNodeConfig(text, "fuzz.textproto", "");
  if (!config.ok()) {
    FEDSHARE_FUZZ_ASSERT(config.status().code() == absl::StatusCode::kInvalidArgument,
                         config.status().ToString());
    return 0;
  }
  // A config that validates must also start: purposes, agreements and
  // datasets build without error.
  absl::StatusOr<fedshare::policy::PurposeTree> tree =
      fedshare::policy::PurposeTree::Create(config->purposes());
  FEDSHARE_FUZZ_ASSERT(tree.ok(), "validated purposes must build: " + tree.status().ToString());
  std::vector<fedshare::v1::DatasetSchema> schemas(config->datasets().begin(),
                                                   config->datasets().end());
  for (const fedshare::v1::DatasetSchema& schema : schemas) {
    FEDSHARE_FUZZ_ASSERT(fedshare::policy::ValidateSchema(schema).ok(),
                         "a validated dataset schema must pass ValidateSchema");
  }
  std::vector<fedshare::v1::Agreement> list(config->agreements().begin(),
                                            config->agreements().end());
  absl::StatusOr<fedshare::policy::AgreementSet> agreements =
      fedshare::policy::AgreementSet::Create(list, *tree, schemas);
  FEDSHARE_FUZZ_ASSERT(agreements.ok(),
                       "validated agreements must build: " + agreements.status().ToString());
  if (!schemas.empty() && !config->purposes().empty()) {
    fedshare::v1::AggregateQuery query;
    query.set_dataset(schemas[0].name());
    query.set_purpose(config->purposes(0).id());
    query.add_aggregates()->set_kind(fedshare::v1::COUNT);
    for (const fedshare::v1::PeerConfig& peer : config->peers()) {
      (void)agreements->Decide(peer.org_id(), query, absl::FromUnixSeconds(1767225600));
    }
  }
  return 0;
}
