#include "node/metrics/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fedshare::metrics {
namespace {

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.15g", v);
}

std::string RenderLabels(const Labels& labels, absl::string_view extra_name = "",
                         absl::string_view extra_value = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ",";
    first = false;
    absl::StrAppend(&out, name, "=\"", EscapeLabelValue(value), "\"");
  }
  if (!extra_name.empty()) {
    if (!first) out += ",";
    absl::StrAppend(&out, extra_name, "=\"", extra_value, "\"");
  }
  out += "}";
  return out;
}

}  // namespace

const std::vector<double>& Metrics::LatencyBuckets() {
  static const std::vector<double>* buckets = new std::vector<double>{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *buckets;
}

void Metrics::DefineCounter(const std::string& name, const std::string& help) {
  absl::MutexLock lock(&mu_);
  families_[name] = Family{Type::kCounter, help, {}, {}, {}};
}

void Metrics::DefineGauge(const std::string& name, const std::string& help) {
  absl::MutexLock lock(&mu_);
  families_[name] = Family{Type::kGauge, help, {}, {}, {}};
}

void Metrics::DefineHistogram(const std::string& name, const std::string& help,
                              std::vector<double> buckets) {
  absl::MutexLock lock(&mu_);
  families_[name] = Family{Type::kHistogram, help, std::move(buckets), {}, {}};
}

void Metrics::Increment(const std::string& name, const Labels& labels, uint64_t by) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != Type::kCounter) return;
  it->second.values[labels] += static_cast<double>(by);
}

void Metrics::Observe(const std::string& name, const Labels& labels, double value) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != Type::kHistogram) return;
  Family& family = it->second;
  Histogram& h = family.histograms[labels];
  if (h.counts.empty()) h.counts.assign(family.buckets.size() + 1, 0);
  size_t i = 0;
  while (i < family.buckets.size() && value > family.buckets[i]) ++i;
  ++h.counts[i];
  ++h.count;
  h.sum += value;
}

void Metrics::SetGauge(const std::string& name, const Labels& labels, double value) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != Type::kGauge) return;
  it->second.values[labels] = value;
}

void Metrics::AddCollector(Collector collector) {
  absl::MutexLock lock(&collectors_mu_);
  collectors_.push_back(std::move(collector));
}

void Metrics::Collect() {
  // Collectors may be slow (file reads); they run outside mu_ but one
  // scrape at a time, so gauges are consistent within a scrape.
  absl::MutexLock lock(&collectors_mu_);
  for (const Collector& c : collectors_) c(*this);
}

std::map<Labels, double> Metrics::Values(const std::string& name, const Labels& match) {
  std::map<Labels, double> out;
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return out;
  for (const auto& [labels, value] : it->second.values) {
    bool matches = true;
    for (const auto& wanted : match) {
      matches = matches && std::find(labels.begin(), labels.end(), wanted) != labels.end();
    }
    if (matches) out.emplace(labels, value);
  }
  return out;
}

double Metrics::Sum(const std::string& name, const Labels& match) {
  double total = 0;
  for (const auto& [labels, value] : Values(name, match)) total += value;
  return total;
}

std::string Metrics::Render() {
  Collect();
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    const char* type = family.type == Type::kCounter ? "counter"
                       : family.type == Type::kGauge ? "gauge"
                                                     : "histogram";
    absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(family.help), "\n");
    absl::StrAppend(&out, "# TYPE ", name, " ", type, "\n");
    for (const auto& [labels, value] : family.values) {
      absl::StrAppend(&out, name, RenderLabels(labels), " ", FormatValue(value), "\n");
    }
    for (const auto& [labels, h] : family.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < h.counts.size(); ++i) {
        cumulative += h.counts[i];
        std::string le = i < family.buckets.size() ? FormatValue(family.buckets[i]) : "+Inf";
        absl::StrAppend(&out, name, "_bucket", RenderLabels(labels, "le", le), " ", cumulative,
                        "\n");
      }
      absl::StrAppend(&out, name, "_sum", RenderLabels(labels), " ", FormatValue(h.sum), "\n");
      absl::StrAppend(&out, name, "_count", RenderLabels(labels), " ", h.count, "\n");
    }
  }
  return out;
}

}  // namespace fedshare::metrics
