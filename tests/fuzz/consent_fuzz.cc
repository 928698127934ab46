// Consent rows: Engine::ImportConsent of any bytes as CSV, and the two row
// parsers it uses. An accepted import must leave consent answerable.
#include <cstddef>
#include <cstdint>

#include "policy/consent.h"
#include "tests/fuzz/fuzz_assert.h"
#include "tests/fuzz/fuzz_env.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)fedshare::policy::ParseConsentEventType(text);
  (void)fedshare::policy::ParseConsentScope(text);
  fedshare::fuzz::FuzzNode& node = fedshare::fuzz::TheNode();
  auto imported = node.engine->ImportConsent(text);
  if (!imported.ok()) {
    absl::StatusCode code = imported.status().code();
    FEDSHARE_FUZZ_ASSERT(code != absl::StatusCode::kInternal &&
                             code != absl::StatusCode::kDataLoss &&
                             code != absl::StatusCode::kUnknown,
                         "bad consent rows are the caller's error, never the store's: " +
                             imported.status().ToString());
    return 0;
  }
  if (imported->events_new() > 0) {
    fedshare::policy::ConsentQuestion question;
    question.purpose = "program-evaluation";
    question.asker_org = "foundation";
    question.now = node.clock->Now();
    auto bitmap = node.engine->ConsentFor("program_outcomes", question);
    FEDSHARE_FUZZ_ASSERT(
        bitmap.ok(), "an accepted import leaves consent answerable: " + bitmap.status().ToString());
  }
  return 0;
}
