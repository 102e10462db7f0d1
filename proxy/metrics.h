// A small Prometheus metrics registry: counters, gauges and fixed-bucket histograms, each either a
// single series or a family with one child per label-value tuple, rendered in the text exposition
// format 0.0.4 the way client_golang renders it (families sorted by name, labels by name, floats
// as Go's strconv 'g' -1, empty families left out).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::proxy {

// Content-Type of Registry::Render's output.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

// The value as Go's strconv.FormatFloat(v, 'g', -1, 64) prints it ("0.25", "1e+06",
// "1.7e+09"), with Prometheus' "+Inf", "-Inf" and "NaN".
std::string FormatMetricValue(double v);
// Label value escaping of the text format: backslash, double quote and line feed.
std::string EscapeLabelValue(std::string_view v);
// HELP text escaping: backslash and line feed.
std::string EscapeHelp(std::string_view v);

// Seconds since the Unix epoch, the unit of every *_timestamp_seconds gauge.
double UnixSeconds(std::chrono::system_clock::time_point t);

// Bucket layouts as client_golang computes them (repeated addition / multiplication).
std::vector<double> LinearBuckets(double start, double width, int count);
std::vector<double> ExponentialBuckets(double start, double factor, int count);

class Counter {
 public:
  void Inc() { Add(1); }
  // Throws std::invalid_argument for a negative or NaN delta: counters only go up.
  void Add(double delta);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void SetToTime(std::chrono::system_clock::time_point t) { Set(UnixSeconds(t)); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `upper_bounds` strictly increasing, finite; the +Inf bucket is implicit.
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);

  struct Snapshot {
    std::vector<double> upper_bounds;         // without +Inf
    std::vector<uint64_t> cumulative_counts;  // one per upper bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  // A consistent view: count equals the +Inf bucket.
  Snapshot Take() const;

 private:
  std::vector<double> upper_bounds_;
  mutable std::mutex mu_;  // observations are per sync, not per packet: a lock is cheap enough
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// One series per tuple of label values, in the order the family's label names were given.
// Children live as long as the family (references stay valid) unless Delete/Reset drop them.
template <typename Metric>
class MetricVec {
 public:
  using Factory = std::function<std::unique_ptr<Metric>()>;
  MetricVec(std::vector<std::string> label_names, Factory factory);

  // Throws std::invalid_argument if the number of values differs from the label names.
  Metric& WithLabelValues(const std::vector<std::string>& values);
  bool Delete(const std::vector<std::string>& values);
  void Reset();

  const std::vector<std::string>& label_names() const { return label_names_; }
  // Children as (label values in label-name order, metric), sorted like client_golang's output.
  void ForEach(const std::function<void(const std::vector<std::string>& values,
                                        const Metric& metric)>& fn) const;

 private:
  std::vector<std::string> label_names_;
  std::vector<size_t> sorted_positions_;  // label indices in name order
  Factory factory_;
  mutable std::mutex mu_;
  // Keyed by the values in label-name order, so iteration is already in output order.
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> children_;
};

using CounterVec = MetricVec<Counter>;
using GaugeVec = MetricVec<Gauge>;
using HistogramVec = MetricVec<Histogram>;

// One sample line of a rendered family: name suffix ("", "_bucket", "_sum", "_count"), labels
// (already in output order) and value.
struct MetricSample {
  std::string suffix;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

struct MetricFamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<MetricSample> samples;
};

// Computes families at scrape time (process metrics, values read from the kernel).
using MetricCollector = std::function<void(std::vector<MetricFamilySnapshot>& out)>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Names follow Prometheus' rules ([a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]*, no
  // "__" prefix, no "le" on histograms) and are unique: std::invalid_argument otherwise.
  Counter& AddCounter(std::string name, std::string help);
  Gauge& AddGauge(std::string name, std::string help);
  Histogram& AddHistogram(std::string name, std::string help, std::vector<double> buckets);
  CounterVec& AddCounterVec(std::string name, std::string help, std::vector<std::string> labels);
  GaugeVec& AddGaugeVec(std::string name, std::string help, std::vector<std::string> labels);
  HistogramVec& AddHistogramVec(std::string name, std::string help, std::vector<double> buckets,
                                std::vector<std::string> labels);
  // `names` are the families the collector produces (checked for uniqueness like the others).
  void AddCollector(std::vector<std::string> names, MetricCollector collector);

  std::vector<MetricFamilySnapshot> Gather() const;
  // The text exposition format 0.0.4.
  std::string Render() const;

 private:
  struct Entry;
  void Reserve(const std::string& name);
  template <typename T>
  T& Add(std::string name, std::string help, MetricType type, std::unique_ptr<T> metric);

  mutable std::mutex mu_;
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<Entry>> entries_;
  std::vector<MetricCollector> collectors_;
};

// Renders families (in the given order) as text format 0.0.4.
std::string RenderMetricFamilies(const std::vector<MetricFamilySnapshot>& families);

}  // namespace sluice::proxy
