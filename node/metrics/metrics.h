// A small Prometheus registry (DESIGN §12): counters and histograms the node
// updates as it works, gauges sampled at scrape time, rendered in the
// Prometheus text exposition format 0.0.4.
//
//   Metrics metrics;
//   metrics.DefineCounter("fedshare_questions_total", "Questions by outcome and rule.");
//   metrics.Increment("fedshare_questions_total", {{"outcome", "answered"}, {"rule", ""}});
//   metrics.AddCollector([&](Metrics& m) { m.SetGauge("fedshare_up", {}, 1); });
//   std::string text = metrics.Render();
//
// Every family must be defined before it is used; using an undefined family
// is a programming error and is ignored (logged once would be noise in a hot
// path). Label values are escaped as the format requires. Label values must
// never carry a subject id: callers pass only org ids, rule ids, method
// names and states.
//
// Thread-safe. Collectors run under no lock of the registry's and may call
// SetGauge.
#ifndef FEDSHARE_NODE_METRICS_METRICS_H_
#define FEDSHARE_NODE_METRICS_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fedshare::metrics {

// Label name/value pairs, in the order they are rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  using Collector = std::function<void(Metrics&)>;

  // Latency buckets in seconds, from 1 ms to 30 s.
  static const std::vector<double>& LatencyBuckets();

  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void DefineCounter(const std::string& name, const std::string& help);
  void DefineGauge(const std::string& name, const std::string& help);
  // `buckets`: increasing upper bounds; +Inf is added.
  void DefineHistogram(const std::string& name, const std::string& help,
                       std::vector<double> buckets);

  void Increment(const std::string& name, const Labels& labels, uint64_t by = 1);
  void Observe(const std::string& name, const Labels& labels, double value);
  void ObserveDuration(const std::string& name, const Labels& labels, absl::Duration d) {
    Observe(name, labels, absl::ToDoubleSeconds(d));
  }
  void SetGauge(const std::string& name, const Labels& labels, double value);

  // Runs at the start of every Render, to sample gauges.
  void AddCollector(Collector collector);

  // Runs the collectors once, so gauges hold current values.
  void Collect();

  // Every sample of counter or gauge family `name` whose labels include each
  // of `match`, by its full labels; empty for an undefined family or a
  // histogram. Gauges hold what the last Collect or Render sampled.
  std::map<Labels, double> Values(const std::string& name, const Labels& match = {});
  // The sum of Values(name, match).
  double Sum(const std::string& name, const Labels& match = {});

  // Runs the collectors and renders every family, in name order. A counter
  // or histogram family with no sample yet is rendered with its HELP and
  // TYPE lines only.
  std::string Render();

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket, not cumulative; last is +Inf
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> buckets;
    std::map<Labels, double> values;  // counters and gauges
    std::map<Labels, Histogram> histograms;
  };

  absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
  absl::Mutex collectors_mu_;
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(collectors_mu_);
};

}  // namespace fedshare::metrics

#endif  // FEDSHARE_NODE_METRICS_METRICS_H_
