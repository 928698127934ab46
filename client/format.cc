#include "client/format.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "google/protobuf/util/json_util.h"
#include "node/common/time_util.h"
#include "query/sql.h"

namespace fedshare::client {
namespace {

// Said under every answer whose counts were perturbed (cell keys).
constexpr absl::string_view kPerturbedNote =
    "counts perturbed: each count is off by a small amount fixed by the records it counts "
    "(cell-key perturbation, the agreement's p-table); sums and means are exact";

// ---- Text tables ------------------------------------------------------------

enum class Align { kLeft, kRight };

struct Row {
  std::vector<std::string> cells;
  // When set, printed after the first `span_after` cells instead of the rest,
  // without widening any column (a withheld cell's note).
  std::string span;
  size_t span_after = 0;
  bool spans = false;
};

std::string RenderTable(const std::vector<std::string>& header, const std::vector<Align>& align,
                        const std::vector<Row>& rows) {
  const size_t n = header.size();
  std::vector<size_t> width(n, 0);
  for (size_t c = 0; c < n; ++c) width[c] = header[c].size();
  for (const Row& row : rows) {
    const size_t limit = row.spans ? row.span_after : n;
    for (size_t c = 0; c < limit && c < row.cells.size(); ++c) {
      width[c] = std::max(width[c], row.cells[c].size());
    }
  }
  auto render = [&](const std::vector<std::string>& cells, size_t limit, const std::string& tail) {
    std::string line;
    for (size_t c = 0; c < limit; ++c) {
      const std::string& text = c < cells.size() ? cells[c] : "";
      if (c > 0) line += "  ";
      const std::string pad(width[c] - std::min(width[c], text.size()), ' ');
      line += align[c] == Align::kRight ? pad + text : text + pad;
    }
    if (!tail.empty()) absl::StrAppend(&line, limit > 0 ? "  " : "", tail);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  std::string out = render(header, n, "");
  for (const Row& row : rows) {
    out += row.spans ? render(row.cells, row.span_after, row.span) : render(row.cells, n, "");
  }
  return out;
}

// ---- Numbers and values -----------------------------------------------------

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

// How one value column prints in a table.
struct ColumnStyle {
  bool histogram = false;
  bool whole = true;  // print as integers
  int decimals = 2;
};

std::string Number(double v, const ColumnStyle& style) {
  if (!std::isfinite(v)) return Shortest(v);
  if (style.whole) return fmt::format("{:.0f}", v);
  return fmt::format("{:.{}f}", v, style.decimals);
}

std::string BinCount(double v) {
  return IsWhole(v) ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}", v);
}

// Labels for `bins` histogram bins of value column `a`: "[lo,hi)" from the
// question's HISTOGRAM when known, else "bin N" (1-based).
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

std::string BinsText(const v1::AggregateValue& v, const std::vector<std::string>& labels) {
  std::set<int> withheld(v.withheld_bins().begin(), v.withheld_bins().end());
  std::vector<std::string> parts;
  for (int b = 0; b < v.bins_size(); ++b) {
    const std::string count = withheld.count(b) ? "-" : BinCount(v.bins(b));
    parts.push_back(b < static_cast<int>(labels.size()) ? absl::StrCat(labels[b], " ", count)
                                                        : count);
  }
  return absl::StrJoin(parts, ", ");
}

// Under differential privacy: what the answer spent and what is left.
std::string BudgetText(const v1::AggregateResult& result) {
  if (!result.has_privacy_budget()) return "";
  const v1::PrivacyBudget& b = result.privacy_budget();
  std::string out;
  const std::string per = absl::StrCat(" of ", Shortest(b.epsilon_budget()), " per ",
                                       absl::FormatDuration(absl::Seconds(b.window_seconds())));
  if (b.dry_run()) {
    absl::StrAppend(&out, "dry run: this question would cost epsilon ", Shortest(b.epsilon_cost()),
                    "; epsilon left ", Shortest(b.epsilon_left()), per,
                    " (a repeat on unchanged data costs nothing)\n");
  } else {
    absl::StrAppend(&out, "differential privacy: epsilon spent ", Shortest(b.epsilon_spent()),
                    b.repeat() ? " (a repeat: the same answer as before)" : "", "; epsilon left ",
                    Shortest(b.epsilon_left()), per, "\n");
  }
  if (b.has_renews_at()) {
    absl::StrAppend(
        &out, "budget renews from ",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(b.renews_at().seconds()),
                         absl::UTCTimeZone()),
        "\n");
  }
  if (b.delta() > 0) {
    absl::StrAppend(&out, "groups with few people may be left out (partition selection, delta ",
                    Shortest(b.delta()), ")\n");
  }
  return out;
}

// ---- Result shape -----------------------------------------------------------

struct Shape {
  size_t keys = 0;
  std::vector<std::string> columns;  // keys then values, padded to fit the cells
};

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

bool LooksCombined(const v1::AggregateResult& result) {
  for (const v1::Cell& cell : result.cells()) {
    if (cell.partners() > 0 || cell.partial()) return true;
  }
  return false;
}

// The withholdings by rule, the number of unlisted withheld cells and the
// predicates as applied: the footer of a table and of a chart.
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

// ---- Table ------------------------------------------------------------------

// `partners_asked` is 0 when unknown (a plain result).
std::string ResultTable(const v1::AggregateResult& result, bool show_partners, int partners_asked,
                        const v1::AggregateQuery* question) {
  const Shape shape = ShapeOf(result);
  const size_t n_values = shape.columns.size() - shape.keys;

  std::vector<ColumnStyle> styles(n_values);
  std::vector<double> largest(n_values, 0);
  std::vector<bool> forced_whole(n_values);
  for (size_t a = 0; a < n_values; ++a) {
    forced_whole[a] = absl::StartsWithIgnoreCase(shape.columns[shape.keys + a], "count");
  }
  for (const v1::Cell& cell : result.cells()) {
    if (cell.withheld()) continue;
    for (size_t a = 0; a < n_values && a < static_cast<size_t>(cell.values_size()); ++a) {
      const v1::AggregateValue& v = cell.values(a);
      if (v.bins_size() > 0) styles[a].histogram = true;
      if (!IsWhole(v.value())) styles[a].whole = false;
      if (std::isfinite(v.value())) largest[a] = std::max(largest[a], std::fabs(v.value()));
    }
  }
  for (size_t a = 0; a < n_values; ++a) {
    if (forced_whole[a]) styles[a].whole = true;
    // Two decimals, or four significant digits for columns of small figures.
    if (largest[a] > 0 && largest[a] < 1) {
      styles[a].decimals = std::min(10, 3 - static_cast<int>(std::floor(std::log10(largest[a]))));
    }
  }

  std::vector<std::string> header = shape.columns;
  // A key grouped by grid bucket shows its lower bound; say so.
  for (const v1::GroupBucket& bucket : result.group_buckets()) {
    for (size_t k = 0; k < shape.keys; ++k) {
      if (header[k] == bucket.field()) {
        header[k] = absl::StrCat(bucket.field(), " (bucket ", Shortest(bucket.width()), ")");
      }
    }
  }
  std::vector<Align> align(shape.keys, Align::kLeft);
  for (size_t a = 0; a < n_values; ++a) {
    align.push_back(styles[a].histogram ? Align::kLeft : Align::kRight);
  }
  if (show_partners) {
    header.push_back("partners");
    align.push_back(Align::kRight);
  }
  header.push_back("");  // the partial marker
  align.push_back(Align::kLeft);

  std::vector<Row> rows;
  std::set<int> partial_partners;
  bool withheld_bins = false;
  bool noisy = false;
  for (const v1::Cell& cell : result.cells()) {
    Row row;
    for (const v1::Value& k : cell.key()) row.cells.push_back(ValueText(k));
    row.cells.resize(shape.keys);
    if (cell.withheld()) {
      row.spans = true;
      row.span_after = shape.keys;
      row.span = cell.withheld_rule().empty()
                     ? "withheld"
                     : absl::StrCat("withheld (", cell.withheld_rule(), ")");
      rows.push_back(std::move(row));
      continue;
    }
    for (size_t a = 0; a < n_values; ++a) {
      if (a >= static_cast<size_t>(cell.values_size())) {
        row.cells.push_back("");
      } else if (styles[a].histogram) {
        row.cells.push_back(
            BinsText(cell.values(a), BinLabels(question, a, cell.values(a).bins_size())));
        withheld_bins |= cell.values(a).withheld_bins_size() > 0;
      } else if (cell.values(a).has_noise()) {
        const v1::AggregateValue& v = cell.values(a);
        row.cells.push_back(absl::StrCat(Number(v.value(), styles[a]), " [",
                                         Number(v.noise().ci_low(), styles[a]), ", ",
                                         Number(v.noise().ci_high(), styles[a]), "]"));
        noisy = true;
      } else {
        row.cells.push_back(Number(cell.values(a).value(), styles[a]));
      }
    }
    if (show_partners) row.cells.push_back(absl::StrCat(cell.partners()));
    row.cells.push_back(cell.partial() ? "*" : "");
    if (cell.partial()) partial_partners.insert(cell.partners());
    rows.push_back(std::move(row));
  }

  std::string out = RenderTable(header, align, rows);
  if (result.cells_size() == 0) out += "(no cells)\n";
  if (!partial_partners.empty()) {
    const std::string of = partners_asked > 0 ? absl::StrCat(" of ", partners_asked) : "";
    if (partial_partners.size() == 1) {
      const int n = *partial_partners.begin();
      absl::StrAppend(&out, "* partial: covers ", n, of,
                      n == 1 && of.empty() ? " partner" : " partners", "\n");
    } else {
      absl::StrAppend(&out, "* partial: covers ", *partial_partners.begin(), " to ",
                      *partial_partners.rbegin(), of, " partners (see the partners column)\n");
    }
  }
  if (withheld_bins) out += "- histogram bin withheld\n";
  if (noisy) out += "[a, b]: 95% interval of the true figure, given the noise\n";
  out += BudgetText(result);
  out += WithheldFooter(result);
  if (!result.receipt().entry_hash().empty()) {
    absl::StrAppend(&out, "receipt: audit entry ", result.receipt().audit_index(), " of ",
                    result.receipt().org_id(), ", sha256 ",
                    absl::BytesToHexString(result.receipt().entry_hash()).substr(0, 16), "...\n");
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

std::string CoverageTable(const v1::FederatedAggregateResponse& response) {
  std::vector<Row> rows;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    const bool answered = c.state() == v1::PartnerCoverage::ANSWERED;
    std::string reason = absl::StrReplaceAll(c.reason(), {{"\n", " "}});
    Row row;
    row.cells = {c.org_id(), StateName(c.state()), answered ? absl::StrCat(c.released_cells()) : "",
                 answered ? absl::StrCat(c.withheld_cells()) : "", std::move(reason)};
    rows.push_back(std::move(row));
  }
  return RenderTable({"partner", "state", "released", "withheld", "reason"},
                     {Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kLeft},
                     rows);
}

int Answered(const v1::FederatedAggregateResponse& response) {
  int answered = 0;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    answered += c.state() == v1::PartnerCoverage::ANSWERED;
  }
  return answered;
}

// "as applied: ..." once when every answering partner applied the same
// predicates, else one line per partner; nothing without predicates.
std::string AppliedLines(const v1::FederatedAggregateResponse& response) {
  std::set<std::string> texts;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    if (c.state() == v1::PartnerCoverage::ANSWERED) texts.insert(c.applied_where_text());
  }
  if (texts.empty() || (texts.size() == 1 && texts.begin()->empty())) return "";
  if (texts.size() == 1) return absl::StrCat("as applied: ", *texts.begin(), "\n");
  std::string out;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    if (c.state() != v1::PartnerCoverage::ANSWERED) continue;
    absl::StrAppend(&out, "as applied by ", c.org_id(), ": ",
                    c.applied_where_text().empty() ? "(no filter)" : c.applied_where_text(), "\n");
  }
  return out;
}

// ---- CSV --------------------------------------------------------------------

// `text`'s lines as CSV comment lines ("# " prefix, CRLF).
std::string CsvComments(absl::string_view text) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "# ", line, "\r\n");
  }
  return out;
}

std::string CoverageComments(const v1::FederatedAggregateResponse& response) {
  std::string text = absl::StrCat("coverage: ", Answered(response), " of ",
                                  response.coverage_size(), " partners answered\n");
  for (const v1::PartnerCoverage& c : response.coverage()) {
    std::string detail;
    if (c.state() == v1::PartnerCoverage::ANSWERED) {
      if (!c.applied_where_text().empty()) detail = "; as applied: " + c.applied_where_text();
    } else if (!c.reason().empty()) {
      detail = ": " + absl::StrReplaceAll(c.reason(), {{"\r", " "}, {"\n", " "}});
    }
    absl::StrAppend(&text, c.org_id(), ": ", StateName(c.state()), detail, "\n");
  }
  return CsvComments(text);
}

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\"", "\"\""}}), "\"");
}

void CsvLine(const std::vector<std::string>& fields, std::string* out) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(CsvField(fields[i]));
  }
  out->append("\r\n");
}

// The number of bins of each value column (0 for a column without bins).
std::vector<int> BinsPerColumn(const v1::AggregateResult& result, size_t n_values) {
  std::vector<int> bins(n_values, 0);
  for (const v1::Cell& cell : result.cells()) {
    for (size_t a = 0; a < n_values && a < static_cast<size_t>(cell.values_size()); ++a) {
      bins[a] = std::max(bins[a], cell.values(a).bins_size());
    }
  }
  return bins;
}

std::string ResultCsv(const v1::AggregateResult& result, bool federated,
                      const v1::AggregateQuery* question) {
  const Shape shape = ShapeOf(result);
  const size_t n_values = shape.columns.size() - shape.keys;
  const std::vector<int> bins = BinsPerColumn(result, n_values);
  // Noisy (DP) columns get their 95% interval beside them; histograms give
  // each bin its own column instead.
  std::vector<bool> noisy(n_values, false);
  for (const v1::Cell& cell : result.cells()) {
    for (size_t a = 0; a < n_values && a < static_cast<size_t>(cell.values_size()); ++a) {
      if (bins[a] == 0 && cell.values(a).has_noise()) noisy[a] = true;
    }
  }
  std::vector<std::string> header(shape.columns.begin(), shape.columns.begin() + shape.keys);
  for (size_t a = 0; a < n_values; ++a) {
    const std::string& name = shape.columns[shape.keys + a];
    if (bins[a] == 0) {
      header.push_back(name);
      if (noisy[a]) header.insert(header.end(), {name + "_ci_low", name + "_ci_high"});
      continue;
    }
    for (const std::string& label : BinLabels(question, a, bins[a])) {
      header.push_back(absl::StrCat(name, " ", label));
    }
  }
  header.push_back("withheld");
  if (federated) {
    header.push_back("partial");
    header.push_back("partners");
  }
  std::string out;
  if (!result.applied_where_text().empty()) {
    out = CsvComments(absl::StrCat("as applied: ", result.applied_where_text()));
  }
  if (result.count_precision() == v1::AggregateResult::PERTURBED) {
    out += CsvComments(kPerturbedNote);
  }
  CsvLine(header, &out);
  for (const v1::Cell& cell : result.cells()) {
    std::vector<std::string> fields;
    for (const v1::Value& k : cell.key()) fields.push_back(ValueText(k));
    fields.resize(shape.keys);
    for (size_t a = 0; a < n_values; ++a) {
      const bool present = !cell.withheld() && a < static_cast<size_t>(cell.values_size());
      if (bins[a] == 0) {
        fields.push_back(present ? Shortest(cell.values(a).value()) : "");
        if (noisy[a]) {
          const bool has = present && cell.values(a).has_noise();
          fields.push_back(has ? Shortest(cell.values(a).noise().ci_low()) : "");
          fields.push_back(has ? Shortest(cell.values(a).noise().ci_high()) : "");
        }
        continue;
      }
      // One field per bin; a withheld bin (or cell) is empty.
      std::set<int> withheld;
      if (present) {
        withheld.insert(cell.values(a).withheld_bins().begin(),
                        cell.values(a).withheld_bins().end());
      }
      for (int b = 0; b < bins[a]; ++b) {
        const bool shown = present && b < cell.values(a).bins_size() && withheld.count(b) == 0;
        fields.push_back(shown ? Shortest(cell.values(a).bins(b)) : "");
      }
    }
    fields.push_back(
        cell.withheld() ? (cell.withheld_rule().empty() ? "withheld" : cell.withheld_rule()) : "");
    if (federated) {
      fields.push_back(cell.partial() ? "true" : "false");
      fields.push_back(absl::StrCat(cell.partners()));
    }
    CsvLine(fields, &out);
  }
  return out;
}

// ---- Chart ------------------------------------------------------------------

constexpr int kBarWidth = 40;

std::string Bar(double v, double largest) {
  if (!std::isfinite(v) || largest <= 0) return "";
  const int n = static_cast<int>(std::lround(std::fabs(v) / largest * kBarWidth));
  return std::string(std::max(n, v != 0 ? 1 : 0), '#');
}

std::string KeyLabel(const v1::Cell& cell) {
  if (cell.key_size() == 0) return "(all)";
  return absl::StrJoin(cell.key(), ", ",
                       [](std::string* out, const v1::Value& k) { out->append(ValueText(k)); });
}

// One line of a chart: a label, then a bar and a figure, or (withheld) a note.
struct ChartRow {
  std::string label;
  std::string bar;
  std::string figure;  // or the withheld note
  bool withheld = false;
};

// `rows` as aligned lines, indented two spaces.
std::string ChartLines(const std::vector<ChartRow>& rows) {
  size_t label = 0, bar = 0;
  for (const ChartRow& r : rows) {
    label = std::max(label, r.label.size());
    if (!r.withheld) bar = std::max(bar, r.bar.size());
  }
  std::string out;
  for (const ChartRow& r : rows) {
    std::string line = absl::StrCat("  ", r.label, std::string(label - r.label.size(), ' '), "  ");
    if (r.withheld) {
      line += r.figure;
    } else {
      absl::StrAppend(&line, r.bar, std::string(bar - r.bar.size(), ' '), "  ", r.figure);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string WithheldText(const v1::Cell& cell) {
  return cell.withheld_rule().empty() ? "withheld"
                                      : absl::StrCat("withheld (", cell.withheld_rule(), ")");
}

// What a chart's footer must explain.
struct ChartMarks {
  bool partial = false;
  bool withheld_bins = false;
};

// The chart of value column `a` (not a histogram): one line per cell.
std::string ValueColumnChart(const v1::AggregateResult& result, size_t a, const std::string& name,
                             ChartMarks& marks) {
  const bool whole = absl::StartsWithIgnoreCase(name, "count");
  double largest = 0;
  for (const v1::Cell& cell : result.cells()) {
    if (!cell.withheld() && a < static_cast<size_t>(cell.values_size()) &&
        std::isfinite(cell.values(a).value())) {
      largest = std::max(largest, std::fabs(cell.values(a).value()));
    }
  }
  std::vector<ChartRow> rows;
  for (const v1::Cell& cell : result.cells()) {
    if (cell.withheld() || a >= static_cast<size_t>(cell.values_size())) {
      rows.push_back({KeyLabel(cell), "", WithheldText(cell), /*withheld=*/true});
      continue;
    }
    const double v = cell.values(a).value();
    std::string figure = whole || IsWhole(v) ? fmt::format("{:.0f}", v) : fmt::format("{:.2f}", v);
    if (cell.partial()) {
      absl::StrAppend(&figure, " *");
      marks.partial = true;
    }
    rows.push_back({KeyLabel(cell), Bar(v, largest), std::move(figure)});
  }
  return absl::StrCat(name, "\n", ChartLines(rows));
}

// The chart of histogram column `a`: one block per cell, one line per bin.
std::string HistogramChart(const v1::AggregateResult& result, size_t a, const std::string& name,
                           const v1::AggregateQuery* question, ChartMarks& marks) {
  std::vector<std::string> blocks;
  for (const v1::Cell& cell : result.cells()) {
    const std::string title = absl::StrCat(name, ": ", KeyLabel(cell));
    if (cell.withheld() || a >= static_cast<size_t>(cell.values_size())) {
      blocks.push_back(absl::StrCat(title, "  ", WithheldText(cell), "\n"));
      continue;
    }
    const v1::AggregateValue& v = cell.values(a);
    const std::set<int> withheld(v.withheld_bins().begin(), v.withheld_bins().end());
    const std::vector<std::string> labels = BinLabels(question, a, v.bins_size());
    double largest = 0;
    for (int b = 0; b < v.bins_size(); ++b) {
      if (!withheld.count(b)) largest = std::max(largest, std::fabs(v.bins(b)));
    }
    std::vector<ChartRow> rows;
    for (int b = 0; b < v.bins_size(); ++b) {
      if (withheld.count(b)) {
        rows.push_back({labels[b], "", "withheld (histogram-bin)", /*withheld=*/true});
        marks.withheld_bins = true;
      } else {
        rows.push_back({labels[b], Bar(v.bins(b), largest), BinCount(v.bins(b))});
      }
    }
    blocks.push_back(absl::StrCat(title, cell.partial() ? " *" : "", "\n", ChartLines(rows)));
    marks.partial |= cell.partial();
  }
  return absl::StrJoin(blocks, "\n");
}

std::string ResultChart(const v1::AggregateResult& result, int partners_asked,
                        const v1::AggregateQuery* question) {
  const Shape shape = ShapeOf(result);
  const size_t n_values = shape.columns.size() - shape.keys;
  const std::vector<int> bins = BinsPerColumn(result, n_values);
  ChartMarks marks;
  std::vector<std::string> blocks;
  for (size_t a = 0; a < n_values; ++a) {
    const std::string& name = shape.columns[shape.keys + a];
    blocks.push_back(bins[a] == 0 ? ValueColumnChart(result, a, name, marks)
                                  : HistogramChart(result, a, name, question, marks));
  }
  std::string out = absl::StrJoin(blocks, "\n");
  if (result.cells_size() == 0) out += "(no cells)\n";
  if (marks.partial) {
    absl::StrAppend(&out, "* partial: not every answering partner",
                    partners_asked > 0 ? absl::StrCat(" (of ", partners_asked, " asked)") : "",
                    " is in this figure\n");
  }
  if (marks.withheld_bins) out += "withheld bins have no bar\n";
  return out + WithheldFooter(result);
}

// ---- JSON -------------------------------------------------------------------

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

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "table") return OutputFormat::kTable;
  if (lower == "csv") return OutputFormat::kCsv;
  if (lower == "json") return OutputFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format '", name, "': use table, csv or json"));
}

std::string FormatResult(const v1::AggregateResult& result, OutputFormat format,
                         const v1::AggregateQuery* question) {
  switch (format) {
    case OutputFormat::kTable:
      return ResultTable(result, LooksCombined(result), 0, question);
    case OutputFormat::kCsv:
      return ResultCsv(result, LooksCombined(result), question);
    case OutputFormat::kJson:
      return Json(result);
  }
  return "";
}

std::string FormatCoverage(const v1::FederatedAggregateResponse& response, OutputFormat format) {
  switch (format) {
    case OutputFormat::kTable:
      return CoverageTable(response);
    case OutputFormat::kCsv: {
      std::string out;
      CsvLine({"partner", "state", "released", "withheld", "reason"}, &out);
      for (const v1::PartnerCoverage& c : response.coverage()) {
        CsvLine({c.org_id(), StateName(c.state()), absl::StrCat(c.released_cells()),
                 absl::StrCat(c.withheld_cells()), c.reason()},
                &out);
      }
      return out;
    }
    case OutputFormat::kJson: {
      std::vector<std::string> entries;
      for (const v1::PartnerCoverage& c : response.coverage()) {
        std::string one = Json(c);
        one.pop_back();  // the newline
        entries.push_back(std::move(one));
      }
      return absl::StrCat("{\"coverage\":[", absl::StrJoin(entries, ","), "]}\n");
    }
  }
  return "";
}

namespace {

// The question's shape as SQL, without its WHERE (values are not recorded).
std::string ShapeSql(const v1::AggregateQuery& question) {
  v1::AggregateQuery shape = question;
  shape.clear_where();
  return FormatSql(shape);
}

std::string FiltersOn(const v1::AggregateQuery& question) {
  std::vector<std::string> filters;
  for (const v1::Predicate& p : question.where()) {
    filters.push_back(absl::StrCat(p.field(), " ", v1::Predicate::Op_Name(p.op())));
  }
  return absl::StrJoin(filters, ", ");
}

std::string OneLine(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\r", " "}, {"\n", " "}});
}

std::string AuditTable(const v1::ListAuditResponse& response) {
  std::string out = fmt::format("{:<6} {:<24} {:<9} {:<22} {:<18} {}\n", "INDEX", "TIME",
                                "DECISION", "DATASET", "RULE", "CALLER / REASON");
  for (const v1::AuditEntry& e : response.entries()) {
    const std::string decision = absl::AsciiStrToLower(v1::AuditEntry::Decision_Name(e.decision()));
    const std::string rule = e.rule().empty() ? e.agreement_id() : e.rule();
    out += fmt::format("{:<6} {:<24} {:<9} {:<22} {:<18} {}\n", e.index(),
                       fedshare::FormatTimeMillis(absl::FromUnixMillis(e.time_unix_ms())), decision,
                       e.dataset(), rule, e.caller());
    const std::string indent(7, ' ');
    if (!e.on_behalf_of().empty()) {
      absl::StrAppend(&out, indent, "on behalf of (unverified): ", e.on_behalf_of(), "\n");
    }
    if (e.has_question()) {
      absl::StrAppend(&out, indent, "question ",
                      absl::BytesToHexString(e.question_hash()).substr(0, 16), ": ",
                      ShapeSql(e.question()), "\n");
      if (!e.applied_where_text().empty()) {
        absl::StrAppend(&out, indent, "as applied: ", e.applied_where_text(), "\n");
      } else if (e.question().where_size() > 0) {
        absl::StrAppend(&out, indent, "filters on: ", FiltersOn(e.question()), "\n");
      }
    }
    if (!e.reason().empty()) absl::StrAppend(&out, indent, OneLine(e.reason()), "\n");
  }
  absl::StrAppend(&out, response.entries_size(), " of ", response.total(), " entries shown; ",
                  "audit log ",
                  response.chain_valid() ? "verifies" : "BROKEN: " + response.chain_error(), "\n");
  return out;
}

std::string AuditCsv(const v1::ListAuditResponse& response) {
  std::string out;
  CsvLine(
      {"index", "time", "decision", "caller", "on_behalf_of_unverified", "method", "dataset",
       "purpose", "question_hash", "question", "applied_where", "agreement_id", "rule", "reason"},
      &out);
  for (const v1::AuditEntry& e : response.entries()) {
    std::string applied = e.applied_where_text();
    if (applied.empty() && e.question().where_size() > 0) {
      applied = absl::StrCat("(not applied; filters on: ", FiltersOn(e.question()), ")");
    }
    CsvLine(
        {absl::StrCat(e.index()),
         fedshare::FormatTimeMillis(absl::FromUnixMillis(e.time_unix_ms())),
         absl::AsciiStrToLower(v1::AuditEntry::Decision_Name(e.decision())), e.caller(),
         e.on_behalf_of(), e.method(), e.dataset(), e.purpose(),
         absl::BytesToHexString(e.question_hash()), e.has_question() ? ShapeSql(e.question()) : "",
         applied, e.agreement_id(), e.rule(), OneLine(e.reason())},
        &out);
  }
  return out;
}

}  // namespace

std::string FormatAudit(const v1::ListAuditResponse& response, OutputFormat format) {
  switch (format) {
    case OutputFormat::kTable:
      return AuditTable(response);
    case OutputFormat::kCsv:
      return AuditCsv(response);
    case OutputFormat::kJson:
      return Json(response);
  }
  return std::string();
}

std::string FormatFederated(const v1::FederatedAggregateResponse& response, OutputFormat format,
                            const v1::AggregateQuery* question) {
  switch (format) {
    case OutputFormat::kTable: {
      const int asked = response.coverage_size();
      std::string out =
          absl::StrCat("coverage: ", Answered(response), " of ", asked, " partners answered\n",
                       CoverageTable(response), AppliedLines(response), "\ncombined:\n",
                       ResultTable(response.combined(), /*show_partners=*/true, asked, question));
      for (const v1::AggregateResult& partner : response.partners()) {
        absl::StrAppend(&out, "\npartner ", partner.org_id(), ":\n",
                        ResultTable(partner, LooksCombined(partner), 0, question));
      }
      return out;
    }
    case OutputFormat::kCsv:
      return CoverageComments(response) +
             ResultCsv(response.combined(), /*federated=*/true, question);
    case OutputFormat::kJson:
      return Json(response);
  }
  return "";
}

namespace {

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// "12.4ms probe", "310ms last answer", or "-".
std::string RoundTripText(const v1::PeerStatus& p) {
  if (p.round_trip_source() == v1::PeerStatus::ROUND_TRIP_SOURCE_UNSPECIFIED) return "-";
  const absl::Duration d =
      absl::Seconds(p.round_trip().seconds()) + absl::Nanoseconds(p.round_trip().nanos());
  return absl::StrCat(
      absl::StrFormat("%.1fms", absl::ToDoubleMilliseconds(d)),
      p.round_trip_source() == v1::PeerStatus::ROUND_TRIP_SOURCE_PROBE ? " probe" : " last answer");
}

// Whole days the peer's certificate has left ("-" if never seen; negative
// once expired).
std::string DaysLeftText(const v1::PeerStatus& p, absl::Time now) {
  if (!p.has_certificate_expires()) return "-";
  return absl::StrCat(absl::ToInt64Hours(TimeOf(p.certificate_expires()) - now) / 24);
}

}  // namespace

std::string FormatPeers(const v1::ListPeersResponse& response, OutputFormat format, bool probed,
                        absl::Time now) {
  if (format == OutputFormat::kJson) return Json(response);
  std::string out;
  if (format == OutputFormat::kCsv) {
    CsvLine({"org_id", "mode", "connection", "address", "last_contact", "round_trip_ms",
             "round_trip_source", "certificate_expires", "certificate_days_left",
             "certificate_warning", "state", "reason", "groups", "audit_tree_size", "audit_error"},
            &out);
  } else {
    out = absl::StrFormat("%-20s %-10s %-13s %-24s %-20s %-20s %-6s %-12s %s\n", "PEER", "MODE",
                          "CONNECTION", "ADDRESS", "LAST CONTACT", "ROUND TRIP", "CERT", "STATE",
                          "DETAIL");
  }
  auto time_text = [](const google::protobuf::Timestamp& t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", TimeOf(t), absl::UTCTimeZone());
  };
  for (const v1::PeerStatus& p : response.peers()) {
    const bool call_home = p.mode() == v1::PeerStatus::MODE_CALL_HOME;
    // Direct peers are dialled per question: there is no standing connection.
    const std::string connection = !call_home ? "-" : p.connected() ? "connected" : "disconnected";
    const std::string last_contact = p.has_last_contact() ? time_text(p.last_contact()) : "never";
    if (format == OutputFormat::kCsv) {
      const absl::Duration rtt =
          absl::Seconds(p.round_trip().seconds()) + absl::Nanoseconds(p.round_trip().nanos());
      const bool timed = p.round_trip_source() != v1::PeerStatus::ROUND_TRIP_SOURCE_UNSPECIFIED;
      CsvLine({p.org_id(), call_home ? "call-home" : "direct", connection, p.address(),
               p.has_last_contact() ? last_contact : "",
               timed ? absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(rtt)) : "",
               !timed                                                             ? ""
               : p.round_trip_source() == v1::PeerStatus::ROUND_TRIP_SOURCE_PROBE ? "probe"
                                                                                  : "last_answer",
               p.has_certificate_expires() ? time_text(p.certificate_expires()) : "",
               p.has_certificate_expires() ? DaysLeftText(p, now) : "", p.certificate_warning(),
               probed ? StateName(p.state()) : "", p.reason(), absl::StrJoin(p.groups(), ";"),
               absl::StrCat(p.audit_tree_size()), p.audit_error()},
              &out);
      continue;
    }
    std::string state = probed ? StateName(p.state()) : "not probed";
    std::string detail = p.state() == v1::PartnerCoverage::ANSWERED && !call_home
                             ? absl::StrCat(p.datasets_offered(), " dataset(s) offered")
                             : p.reason();
    if (p.groups_size() > 0) {
      absl::StrAppend(&detail, detail.empty() ? "" : "; ",
                      "groups: ", absl::StrJoin(p.groups(), ","));
    }
    if (!p.audit_error().empty()) {
      state = "audit_failed";
      absl::StrAppend(&detail, detail.empty() ? "" : "; ", "AUDIT LOG FAILED: ", p.audit_error());
    } else if (p.audit_tree_size() > 0) {
      absl::StrAppend(&detail, detail.empty() ? "" : "; ", "audit checkpoint held at ",
                      p.audit_tree_size(), " entries");
    }
    std::string cert = DaysLeftText(p, now);
    if (cert != "-") absl::StrAppend(&cert, "d");
    if (!p.certificate_warning().empty()) {
      absl::StrAppend(&cert, "!");
      absl::StrAppend(&detail, detail.empty() ? "" : "; ",
                      "CERTIFICATE: ", p.certificate_warning());
    }
    absl::StrAppend(&out, absl::StrFormat("%-20s %-10s %-13s %-24s %-20s %-20s %-6s %-12s %s\n",
                                          p.org_id(), call_home ? "call-home" : "direct",
                                          connection, p.address().empty() ? "-" : p.address(),
                                          last_contact, RoundTripText(p), cert, state, detail));
  }
  return out;
}

std::string ChartResult(const v1::AggregateResult& result, const v1::AggregateQuery* question) {
  return ResultChart(result, 0, question);
}

std::string ChartFederated(const v1::FederatedAggregateResponse& response,
                           const v1::AggregateQuery* question) {
  std::string out = absl::StrCat("coverage: ", Answered(response), " of ", response.coverage_size(),
                                 " partners answered\n");
  for (const v1::PartnerCoverage& c : response.coverage()) {
    if (c.state() == v1::PartnerCoverage::ANSWERED) continue;
    absl::StrAppend(&out, "  ", c.org_id(), ": ", StateName(c.state()),
                    c.reason().empty() ? "" : absl::StrCat(" (", OneLine(c.reason()), ")"), "\n");
  }
  absl::StrAppend(&out, AppliedLines(response), "\n",
                  ResultChart(response.combined(), response.coverage_size(), question));
  return out;
}

}  // namespace fedshare::client
