#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "client/format.h"
#include "client/format_internal.h"
#include "fmt/format.h"
#include "google/protobuf/util/json_util.h"

namespace fedshare::client::format_internal {
namespace {

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\"", "\"\""}}), "\"");
}

}  // namespace

bool IsWhole(double v) { return std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15; }

std::string Shortest(double v) { return fmt::format("{}", v); }

std::string ValueText(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kIntValue:
      return absl::StrCat(v.int_value());
    case v1::Value::kDoubleValue:
      return Shortest(v.double_value());
    case v1::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    case v1::Value::kStringValue:
      return v.string_value();
    case v1::Value::KIND_NOT_SET:
      break;
  }
  return "";
}

std::string BinCount(double v) {
  return IsWhole(v) ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}", v);
}

std::vector<std::string> BinLabels(const v1::AggregateQuery* question, size_t a, int bins) {
  std::vector<std::string> labels;
  const v1::Aggregate* h = nullptr;
  if (question != nullptr && a < static_cast<size_t>(question->aggregates_size()) &&
      question->aggregates(a).kind() == v1::HISTOGRAM && question->aggregates(a).bins() == bins) {
    h = &question->aggregates(a);
  }
  for (int b = 0; b < bins; ++b) {
    if (h == nullptr) {
      labels.push_back(absl::StrCat("bin ", b + 1));
      continue;
    }
    const double width = (h->hi() - h->lo()) / bins;
    const double lower = h->lo() + width * b;
    const double upper = b + 1 == bins ? h->hi() : h->lo() + width * (b + 1);
    labels.push_back(absl::StrCat("[", Shortest(lower), ",", Shortest(upper), ")"));
  }
  return labels;
}

std::vector<int> BinsPerColumn(const v1::AggregateResult& result, size_t n_values) {
  std::vector<int> bins(n_values, 0);
  for (const v1::Cell& cell : result.cells()) {
    for (size_t a = 0; a < n_values && a < static_cast<size_t>(cell.values_size()); ++a) {
      bins[a] = std::max(bins[a], cell.values(a).bins_size());
    }
  }
  return bins;
}

Shape ShapeOf(const v1::AggregateResult& result) {
  Shape shape;
  size_t values = 0;
  for (const v1::Cell& cell : result.cells()) {
    shape.keys = std::max<size_t>(shape.keys, cell.key_size());
    values = std::max<size_t>(values, cell.values_size());
  }
  const size_t named = result.columns_size();
  if (named > shape.keys) values = std::max(values, named - shape.keys);
  shape.columns.assign(result.columns().begin(), result.columns().end());
  for (size_t c = shape.columns.size(); c < shape.keys + values; ++c) {
    shape.columns.push_back(absl::StrCat("column", c + 1));
  }
  return shape;
}

std::string WithheldFooter(const v1::AggregateResult& result) {
  std::string out;
  for (const v1::Withholding& w : result.withholdings()) {
    absl::StrAppend(&out, "withheld by ", w.rule(), ": ", w.cells(),
                    w.cells() == 1 ? " cell" : " cells",
                    w.reason().empty() ? "" : absl::StrCat(" (", w.reason(), ")"), "\n");
  }
  if (result.unlisted_withheld_cells() > 0) {
    absl::StrAppend(&out, "withheld and not listed: ", result.unlisted_withheld_cells(),
                    result.unlisted_withheld_cells() == 1 ? " cell" : " cells",
                    " (their groups are not public)\n");
  }
  if (!result.applied_where_text().empty()) {
    absl::StrAppend(&out, "as applied: ", result.applied_where_text(), "\n");
  }
  if (result.count_precision() == v1::AggregateResult::PERTURBED) {
    absl::StrAppend(&out, kPerturbedNote, "\n");
  }
  return out;
}

std::string StateName(v1::PartnerCoverage::State state) {
  switch (state) {
    case v1::PartnerCoverage::ANSWERED:
      return "answered";
    case v1::PartnerCoverage::REFUSED:
      return "refused";
    case v1::PartnerCoverage::TIMED_OUT:
      return "timed out";
    case v1::PartnerCoverage::UNREACHABLE:
      return "unreachable";
    case v1::PartnerCoverage::FAILED:
      return "failed";
    case v1::PartnerCoverage::AUDIT_FAILED:
      return "audit failed";
    default:
      break;
  }
  return "unknown";
}

int Answered(const v1::FederatedAggregateResponse& response) {
  int answered = 0;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    answered += c.state() == v1::PartnerCoverage::ANSWERED;
  }
  return answered;
}

std::string CoverageLine(const v1::FederatedAggregateResponse& response) {
  return absl::StrCat("coverage: ", Answered(response), " of ", response.coverage_size(),
                      " partners answered\n");
}

std::string AppliedLines(const v1::FederatedAggregateResponse& response) {
  // The answering partners by the filter they applied, in order of first sight.
  struct Applied {
    const std::string* text;
    std::vector<absl::string_view> orgs;
  };
  std::vector<Applied> applied;
  std::map<absl::string_view, size_t> index;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    if (c.state() != v1::PartnerCoverage::ANSWERED) continue;
    auto [at, fresh] = index.try_emplace(c.applied_where_text(), applied.size());
    if (fresh) applied.push_back({&c.applied_where_text(), {}});
    applied[at->second].orgs.push_back(c.org_id());
  }
  if (applied.empty() || (applied.size() == 1 && applied[0].text->empty())) return "";
  if (applied.size() == 1) return absl::StrCat("as applied: ", *applied[0].text, "\n");
  std::string out;
  for (const Applied& a : applied) {
    const std::string by = a.orgs.size() <= static_cast<size_t>(kPartnersListed)
                               ? absl::StrJoin(a.orgs, ", ")
                               : absl::StrCat(a.orgs.size(), " partners");
    absl::StrAppend(&out, "as applied by ", by, ": ", a.text->empty() ? "(no filter)" : *a.text,
                    "\n");
  }
  return out;
}

std::string OneLine(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\r", " "}, {"\n", " "}});
}

void CsvLine(const std::vector<std::string>& fields, std::string* out) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(CsvField(fields[i]));
  }
  out->append("\r\n");
}

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    // Only reachable for malformed messages (e.g. invalid UTF-8 in a string);
    // still valid JSON, so a consumer sees the problem instead of garbage.
    std::string escaped;
    for (char c : status.message()) {
      if (c == '"' || c == '\\') {
        escaped.push_back('\\');
        escaped.push_back(c);
      } else if (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x80) {
        escaped.push_back(c);
      }
    }
    return absl::StrCat("{\"error\":\"", escaped, "\"}\n");
  }
  return out + "\n";
}

}  // namespace fedshare::client::format_internal
