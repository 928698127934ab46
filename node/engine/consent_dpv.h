// Consent events as W3C DPV (Data Privacy Vocabulary) consent records, in the
// shape of ISO/IEC TS 27560: one JSON object per line,
//
//   {"@type":"dpv:ConsentRecord","dpv:hasDataSubject":"s1001",
//    "dpv:hasPurpose":"program-evaluation","dpv:hasConsentStatus":"dpv:ConsentGiven",
//    "dct:date":"2026-01-01T00:00:00Z","dct:valid":"2027-01-01T00:00:00Z",
//    "dpv:hasRecipient":["foundation"]}
//
// dpv: is https://w3id.org/dpv#, dct: is http://purl.org/dc/terms/. dct:date
// is when the event happened; dct:valid, optional, when a given consent ends;
// dpv:hasRecipient, optional, the orgs it extends to (absent: any member of
// the federation). The statuses map one to one onto policy::ConsentEventType
// (docs/partners.md has the table). Both directions live here; the engine
// reads and writes the store (Engine::ImportConsent, Engine::ExportConsent).
#ifndef FEDSHARE_NODE_ENGINE_CONSENT_DPV_H_
#define FEDSHARE_NODE_ENGINE_CONSENT_DPV_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedshare/v1/admin.pb.h"
#include "google/protobuf/repeated_field.h"
#include "policy/consent.h"

namespace fedshare::engine {

// The columns of a consent import, whatever the file's format.
enum ConsentColumn { kSubject, kPurpose, kEvent, kTime, kValidUntil, kScope, kNumConsentColumns };

// Column names as a CSV header has them, and as DPV keys (for row errors).
inline constexpr std::array<absl::string_view, kNumConsentColumns> kConsentCsvColumns = {
    "subject", "purpose", "event", "time", "valid_until", "scope"};
inline constexpr std::array<absl::string_view, kNumConsentColumns> kConsentDpvKeys = {
    "dpv:hasDataSubject", "dpv:hasPurpose", "dpv:hasConsentStatus",
    "dct:date",           "dct:valid",      "dpv:hasRecipient"};

// One row of a consent file as text in the CSV import's terms: `event` holds
// the fedshare name (GIVEN, ...), `scope` org ids joined by ';' ("" = any).
struct ConsentRowText {
  int64_t line = 0;       // 1-based line where the row starts
  std::string error;      // set: the row is malformed, cells unset
  int error_column = -1;  // the ConsentColumn `error` is about, if one
  std::array<std::string, kNumConsentColumns> cells;
};

// "dpv:ConsentGiven" etc.
absl::string_view DpvConsentStatus(policy::ConsentEventType type);
// Takes "dpv:ConsentGiven" or "https://w3id.org/dpv#ConsentGiven".
absl::StatusOr<policy::ConsentEventType> ParseDpvConsentStatus(absl::string_view text);

// Appends one record and a newline.
void AppendDpvRecord(std::string* out, absl::string_view subject, const policy::ConsentEvent& e);

// Reads records one line at a time, skipping blank lines.
//
//   DpvConsentReader reader(text, &response.warnings);
//   ConsentRowText row;
//   while (reader.Next(&row)) ...
//
// A key fedshare does not read (other than @context, @id and @type) is listed
// once in `warnings`, on the first line that has it: its value is not kept.
class DpvConsentReader {
 public:
  DpvConsentReader(absl::string_view text,
                   google::protobuf::RepeatedPtrField<v1::RowError>* warnings)
      : text_(text), warnings_(warnings) {}

  bool Next(ConsentRowText* row);

 private:
  void Parse(absl::string_view line, ConsentRowText* row);

  absl::string_view text_;
  size_t pos_ = 0;
  int64_t line_ = 0;
  google::protobuf::RepeatedPtrField<v1::RowError>* warnings_;
  absl::flat_hash_set<std::string> warned_keys_;  // at most kMaxListedErrors
};

}  // namespace fedshare::engine

#endif  // FEDSHARE_NODE_ENGINE_CONSENT_DPV_H_
