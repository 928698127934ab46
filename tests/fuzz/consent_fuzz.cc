// Consent rows: Engine::ImportConsent of any bytes as CSV or as DPV records
// (the first byte's low bit chooses), and the two row parsers it uses. An
// accepted import must leave consent answerable, and the store's export in
// either format must import back as nothing new.
#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/consent.h"
#include "tests/fuzz/fuzz_assert.h"
#include "tests/fuzz/fuzz_env.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)fedshare::policy::ParseConsentEventType(text);
  (void)fedshare::policy::ParseConsentScope(text);
  fedshare::fuzz::FuzzNode& node = fedshare::fuzz::TheNode();
  const fedshare::v1::ConsentFormat format = size > 0 && (data[0] & 1)
                                                 ? fedshare::v1::CONSENT_FORMAT_DPV
                                                 : fedshare::v1::CONSENT_FORMAT_CSV;
  auto imported = node.engine->ImportConsent(text, nullptr, format);
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
    for (auto f : {fedshare::v1::CONSENT_FORMAT_CSV, fedshare::v1::CONSENT_FORMAT_DPV}) {
      std::string exported;
      absl::Status s = node.engine->ExportConsent(f, [&](absl::string_view chunk, int64_t) {
        exported.append(chunk.data(), chunk.size());
        return absl::OkStatus();
      });
      FEDSHARE_FUZZ_ASSERT(s.ok(), "the consent export works: " + s.ToString());
      auto again = node.engine->ImportConsent(exported, nullptr, f);
      FEDSHARE_FUZZ_ASSERT(again.ok() && again->events_rejected() == 0 && again->events_new() == 0,
                           "the consent export imports back as nothing new: " +
                               (again.ok() ? again->DebugString() : again.status().ToString()));
    }
  }
  return 0;
}
