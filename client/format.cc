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
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/format_internal.h"
#include "fmt/format.h"

namespace fedshare::client {
namespace {

using format_internal::Answered;
using format_internal::AppliedLines;
using format_internal::BinCount;
using format_internal::BinLabels;
using format_internal::BinsPerColumn;
using format_internal::CoverageLine;
using format_internal::CsvLine;
using format_internal::IsWhole;
using format_internal::Json;
using format_internal::kPerturbedNote;
using format_internal::OneLine;
using format_internal::Shape;
using format_internal::ShapeOf;
using format_internal::Shortest;
using format_internal::StateName;
using format_internal::ValueText;
using format_internal::WithheldFooter;

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

bool LooksCombined(const v1::AggregateResult& result) {
  for (const v1::Cell& cell : result.cells()) {
    if (cell.partners() > 0 || cell.partial()) return true;
  }
  return false;
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

// The coverage table: every partner, or with `failures_only` the partners
// that did not answer.
std::string CoverageTable(const v1::FederatedAggregateResponse& response, bool failures_only) {
  std::vector<Row> rows;
  for (const v1::PartnerCoverage& c : response.coverage()) {
    const bool answered = c.state() == v1::PartnerCoverage::ANSWERED;
    if (failures_only && answered) continue;
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
  std::string text = CoverageLine(response);
  for (const v1::PartnerCoverage& c : response.coverage()) {
    std::string detail;
    if (c.state() == v1::PartnerCoverage::ANSWERED) {
      if (!c.applied_where_text().empty()) detail = "; as applied: " + c.applied_where_text();
    } else if (!c.reason().empty()) {
      detail = ": " + OneLine(c.reason());
    }
    absl::StrAppend(&text, c.org_id(), ": ", StateName(c.state()), detail, "\n");
  }
  return CsvComments(text);
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
      return CoverageTable(response, /*failures_only=*/false);
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

std::string FormatFederated(const v1::FederatedAggregateResponse& response, OutputFormat format,
                            const v1::AggregateQuery* question, bool all_partners) {
  switch (format) {
    case OutputFormat::kTable: {
      const int asked = response.coverage_size();
      // Thousands of partners: the ones that did not answer, each by name
      // (nothing missing goes unsaid), and the others counted.
      const bool each = all_partners || asked <= kPartnersListed;
      const int answered = Answered(response);
      std::string out = CoverageLine(response);
      if (each || answered < asked) absl::StrAppend(&out, CoverageTable(response, !each));
      if (!each) {
        absl::StrAppend(&out, answered, " partner(s) answered, not listed one by one (more than ",
                        kPartnersListed,
                        " asked): --all-partners lists each with its own answer; --output csv "
                        "or json has each too\n");
      }
      absl::StrAppend(&out, AppliedLines(response), "\ncombined:\n",
                      ResultTable(response.combined(), /*show_partners=*/true, asked, question));
      if (each) {
        for (const v1::AggregateResult& partner : response.partners()) {
          absl::StrAppend(&out, "\npartner ", partner.org_id(), ":\n",
                          ResultTable(partner, LooksCombined(partner), 0, question));
        }
      } else if (response.partners_size() > 0) {
        absl::StrAppend(&out, "\n", response.partners_size(),
                        " partner answer(s) released directly, left out here: --all-partners "
                        "shows them\n");
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

}  // namespace fedshare::client
