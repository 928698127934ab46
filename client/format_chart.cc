#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/format.h"
#include "client/format_internal.h"
#include "fmt/format.h"

namespace fedshare::client {
namespace {

using format_internal::AppliedLines;
using format_internal::BinCount;
using format_internal::BinLabels;
using format_internal::BinsPerColumn;
using format_internal::CoverageLine;
using format_internal::IsWhole;
using format_internal::OneLine;
using format_internal::Shape;
using format_internal::ShapeOf;
using format_internal::StateName;
using format_internal::ValueText;
using format_internal::WithheldFooter;

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

}  // namespace

std::string ChartResult(const v1::AggregateResult& result, const v1::AggregateQuery* question) {
  return ResultChart(result, 0, question);
}

std::string ChartFederated(const v1::FederatedAggregateResponse& response,
                           const v1::AggregateQuery* question) {
  std::string out = CoverageLine(response);
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
