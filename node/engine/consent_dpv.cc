#include "node/engine/consent_dpv.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "node/common/time_util.h"
#include "node/engine/engine_internal.h"
#include "node/engine/json.h"

namespace fedshare::engine {
namespace {

using policy::ConsentEventType;

constexpr absl::string_view kDpvPrefix = "dpv:";
constexpr absl::string_view kDpvIri = "https://w3id.org/dpv#";

struct StatusName {
  ConsentEventType type;
  absl::string_view dpv;  // without the prefix
};

constexpr StatusName kStatuses[] = {
    {ConsentEventType::kGiven, "ConsentGiven"},
    {ConsentEventType::kRenewed, "RenewedConsentGiven"},
    {ConsentEventType::kWithdrawn, "ConsentWithdrawn"},
    {ConsentEventType::kRefused, "ConsentRefused"},
    {ConsentEventType::kExpired, "ConsentExpired"},
    {ConsentEventType::kRevoked, "ConsentRevoked"},
    {ConsentEventType::kInvalidated, "ConsentInvalidated"},
};

// Keys a record may carry that say nothing fedshare keeps.
bool IsJsonLdKeyword(absl::string_view key) {
  return key == "@context" || key == "@id" || key == "@type";
}

}  // namespace

absl::string_view DpvConsentStatus(ConsentEventType type) {
  static const auto* names = [] {
    auto* n = new std::vector<std::string>();
    for (const StatusName& s : kStatuses) n->push_back(absl::StrCat(kDpvPrefix, s.dpv));
    return n;
  }();
  for (size_t i = 0; i < std::size(kStatuses); ++i) {
    if (kStatuses[i].type == type) return (*names)[i];
  }
  return "";
}

absl::StatusOr<ConsentEventType> ParseDpvConsentStatus(absl::string_view text) {
  absl::string_view name = text;
  if (!absl::ConsumePrefix(&name, kDpvPrefix)) absl::ConsumePrefix(&name, kDpvIri);
  for (const StatusName& s : kStatuses) {
    if (name == s.dpv && name.size() != text.size()) return s.type;
  }
  std::vector<std::string> known;
  for (const StatusName& s : kStatuses) known.push_back(absl::StrCat(kDpvPrefix, s.dpv));
  return absl::InvalidArgumentError(absl::StrCat("consent status ", Quote(text),
                                                 " is not one fedshare records: use ",
                                                 absl::StrJoin(known, ", ")));
}

void AppendDpvRecord(std::string* out, absl::string_view subject, const policy::ConsentEvent& e) {
  out->append(R"({"@type":"dpv:ConsentRecord","dpv:hasDataSubject":)");
  AppendJsonString(out, subject);
  out->append(R"(,"dpv:hasPurpose":)");
  AppendJsonString(out, e.purpose);
  out->append(R"(,"dpv:hasConsentStatus":)");
  AppendJsonString(out, DpvConsentStatus(e.type));
  out->append(R"(,"dct:date":)");
  AppendJsonString(out, fedshare::FormatTime(e.time));
  if (e.valid_until != absl::InfiniteFuture()) {
    out->append(R"(,"dct:valid":)");
    AppendJsonString(out, fedshare::FormatTime(e.valid_until));
  }
  if (!e.scope.empty()) {
    out->append(R"(,"dpv:hasRecipient":[)");
    for (size_t i = 0; i < e.scope.size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(out, e.scope[i]);
    }
    out->push_back(']');
  }
  out->append("}\n");
}

bool DpvConsentReader::Next(ConsentRowText* row) {
  while (pos_ < text_.size()) {
    size_t end = text_.find('\n', pos_);
    if (end == absl::string_view::npos) end = text_.size();
    absl::string_view line = text_.substr(pos_, end - pos_);
    pos_ = end + 1;
    ++line_;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    *row = ConsentRowText();
    row->line = line_;
    Parse(line, row);
    return true;
  }
  return false;
}

void DpvConsentReader::Parse(absl::string_view line, ConsentRowText* row) {
  std::vector<JsonMember> members;
  std::vector<JsonArrayMember> arrays;
  absl::Status parsed = ParseJsonObjectWithStringArrays(line, &members, &arrays);
  if (!parsed.ok()) {
    row->error = absl::StrCat("not a DPV consent record: ", parsed.message());
    return;
  }
  auto column_of = [](absl::string_view key) {
    for (int c = 0; c < kNumConsentColumns; ++c) {
      if (kConsentDpvKeys[c] == key) return c;
    }
    return -1;
  };
  auto unread = [&](const std::string& key) {
    // Bounded like the warnings listed: a file of ever new keys costs no more.
    if (warned_keys_.size() >= kMaxListedErrors || !warned_keys_.insert(key).second) return;
    AddError(warnings_, line_, key,
             "fedshare does not read this key: its values are not stored (and not exported)");
  };
  for (const JsonMember& m : members) {
    if (m.key == "@type") {
      if (m.value.kind != JsonScalar::Kind::kString || m.value.text != "dpv:ConsentRecord") {
        row->error = "@type must be \"dpv:ConsentRecord\" (or left out)";
        return;
      }
      continue;
    }
    if (IsJsonLdKeyword(m.key)) continue;
    const int c = column_of(m.key);
    if (c < 0) {
      unread(m.key);
      continue;
    }
    if (c == kScope) {
      row->error = "dpv:hasRecipient must be an array of org ids, e.g. [\"foundation\"]";
      row->error_column = kScope;
      return;
    }
    const bool number_ok = c == kSubject && m.value.kind == JsonScalar::Kind::kNumber &&
                           JsonNumberIsInteger(m.value.text);
    if (m.value.kind == JsonScalar::Kind::kNull && c == kValidUntil) continue;  // no end
    if (m.value.kind != JsonScalar::Kind::kString && !number_ok) {
      row->error = absl::StrCat(m.key, " must be a string");
      row->error_column = c;
      return;
    }
    row->cells[c] = m.value.text;
  }
  for (const JsonArrayMember& a : arrays) {
    if (column_of(a.key) != kScope) {
      if (IsJsonLdKeyword(a.key)) continue;
      unread(a.key);
      continue;
    }
    row->error_column = kScope;
    if (a.items.empty()) {
      row->error =
          "dpv:hasRecipient is empty: leave it out for any member of the federation, or name "
          "the orgs";
      return;
    }
    for (const std::string& org : a.items) {
      if (org.empty() || absl::StrContains(org, ';') || org == "*") {
        row->error =
            absl::StrCat("dpv:hasRecipient names ", Quote(org), ": each item must be one org id");
        return;
      }
    }
    row->error_column = -1;
    row->cells[kScope] = absl::StrJoin(a.items, ";");
  }
  for (int c : {kSubject, kPurpose, kEvent, kTime}) {
    if (row->cells[c].empty()) {
      row->error = absl::StrCat("missing ", kConsentDpvKeys[c], ": every record needs ",
                                kConsentDpvKeys[kSubject], ", ", kConsentDpvKeys[kPurpose], ", ",
                                kConsentDpvKeys[kEvent], " and ", kConsentDpvKeys[kTime]);
      row->error_column = c;
      return;
    }
  }
  // The status becomes the fedshare name the CSV import reads.
  absl::StatusOr<ConsentEventType> type = ParseDpvConsentStatus(row->cells[kEvent]);
  if (!type.ok()) {
    row->error = std::string(type.status().message());
    row->error_column = kEvent;
    return;
  }
  row->cells[kEvent] = std::string(policy::ConsentEventTypeName(*type));
}

}  // namespace fedshare::engine
