#include "proxy/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <type_traits>

namespace sluice::proxy {
namespace {

bool IsMetricNameChar(char c, bool first) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
  return alpha || (!first && c >= '0' && c <= '9');
}

void CheckMetricName(const std::string& name) {
  bool ok = !name.empty();
  for (size_t i = 0; ok && i < name.size(); ++i) ok = IsMetricNameChar(name[i], i == 0);
  if (!ok) throw std::invalid_argument("metrics: invalid metric name \"" + name + "\"");
}

void CheckLabelNames(const std::string& metric, const std::vector<std::string>& labels,
                     MetricType type) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& l = labels[i];
    bool ok = !l.empty() && l.rfind("__", 0) != 0;
    for (size_t j = 0; ok && j < l.size(); ++j) ok = l[j] != ':' && IsMetricNameChar(l[j], j == 0);
    if (!ok)
      throw std::invalid_argument("metrics: " + metric + ": invalid label name \"" + l + "\"");
    if (type == MetricType::kHistogram && l == "le") {
      throw std::invalid_argument("metrics: " + metric +
                                  ": \"le\" is reserved for histogram buckets");
    }
    if (std::find(labels.begin(), labels.begin() + static_cast<ptrdiff_t>(i), l) !=
        labels.begin() + static_cast<ptrdiff_t>(i)) {
      throw std::invalid_argument("metrics: " + metric + ": duplicate label name \"" + l + "\"");
    }
  }
}

void AppendHistogramSamples(const Histogram& h,
                            const std::vector<std::pair<std::string, std::string>>& labels,
                            std::vector<MetricSample>& out) {
  Histogram::Snapshot s = h.Take();
  for (size_t i = 0; i <= s.upper_bounds.size(); ++i) {
    MetricSample b{"_bucket", labels, static_cast<double>(s.cumulative_counts[i])};
    double bound =
        i < s.upper_bounds.size() ? s.upper_bounds[i] : std::numeric_limits<double>::infinity();
    b.labels.emplace_back("le", FormatMetricValue(bound));
    out.push_back(std::move(b));
  }
  out.push_back({"_sum", labels, s.sum});
  out.push_back({"_count", labels, static_cast<double>(s.count)});
}

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return "0";  // also -0, as client_golang does
  // Shortest round-trip digits, then Go's 'g' layout: exponent form when the decimal exponent
  // is < -4 or >= 6 (FormatFloat's threshold for the shortest precision), fixed otherwise.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  if (ec != std::errc()) return "NaN";
  std::string_view text(buf, static_cast<size_t>(end - buf));
  bool negative = text.front() == '-';
  if (negative) text.remove_prefix(1);
  size_t e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = 0;
  std::string_view exp_text = text.substr(e + 1);
  if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp);

  std::string out = negative ? "-" : "";
  const int nd = static_cast<int>(digits.size());
  if (exp < -4 || exp >= 6) {
    out.push_back(digits[0]);
    if (nd > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    out.push_back('e');
    out.push_back(exp < 0 ? '-' : '+');
    int a = exp < 0 ? -exp : exp;
    if (a < 10) out.push_back('0');
    out += std::to_string(a);
    return out;
  }
  const int dp = exp + 1;  // digits before the decimal point
  if (dp > 0) {
    for (int i = 0; i < dp; ++i) out.push_back(i < nd ? digits[static_cast<size_t>(i)] : '0');
  } else {
    out.push_back('0');
  }
  if (nd > dp) {
    out.push_back('.');
    for (int i = dp; i < nd; ++i) out.push_back(i < 0 ? '0' : digits[static_cast<size_t>(i)]);
  }
  return out;
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

double UnixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  if (count < 1) throw std::invalid_argument("metrics: LinearBuckets needs a positive count");
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start += width) out.push_back(start);
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  if (count < 1 || start <= 0 || factor <= 1) {
    throw std::invalid_argument(
        "metrics: ExponentialBuckets needs count >= 1, start > 0, factor > 1");
  }
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start *= factor) out.push_back(start);
  return out;
}

void Counter::Add(double delta) {
  if (!(delta >= 0)) throw std::invalid_argument("metrics: counter cannot decrease");
  value_.fetch_add(delta, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> upper_bounds) : upper_bounds_(std::move(upper_bounds)) {
  if (!upper_bounds_.empty() && std::isinf(upper_bounds_.back()) && upper_bounds_.back() > 0) {
    upper_bounds_.pop_back();  // +Inf is always there
  }
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    if (!std::isfinite(upper_bounds_[i]) || (i > 0 && upper_bounds_[i] <= upper_bounds_[i - 1])) {
      throw std::invalid_argument(
          "metrics: histogram buckets must be finite and strictly increasing");
    }
  }
  counts_.assign(upper_bounds_.size() + 1, 0);
}

void Histogram::Observe(double v) {
  // First bucket whose upper bound is >= v (le is inclusive); NaN lands in +Inf, like
  // client_golang.
  size_t i =
      std::isnan(v)
          ? upper_bounds_.size()
          : static_cast<size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), v) -
                                upper_bounds_.begin());
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  std::lock_guard lock(mu_);
  s.cumulative_counts.resize(counts_.size());
  std::partial_sum(counts_.begin(), counts_.end(), s.cumulative_counts.begin());
  s.sum = sum_;
  s.count = count_;
  return s;
}

template <typename Metric>
MetricVec<Metric>::MetricVec(std::vector<std::string> label_names, Factory factory)
    : label_names_(std::move(label_names)), factory_(std::move(factory)) {
  sorted_positions_.resize(label_names_.size());
  std::iota(sorted_positions_.begin(), sorted_positions_.end(), 0);
  std::sort(sorted_positions_.begin(), sorted_positions_.end(),
            [&](size_t a, size_t b) { return label_names_[a] < label_names_[b]; });
}

template <typename Metric>
Metric& MetricVec<Metric>::WithLabelValues(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument("metrics: got " + std::to_string(values.size()) +
                                " label values for " + std::to_string(label_names_.size()) +
                                " label names");
  }
  std::vector<std::string> key;
  key.reserve(values.size());
  for (size_t p : sorted_positions_) key.push_back(values[p]);
  std::lock_guard lock(mu_);
  auto& slot = children_[std::move(key)];
  if (!slot) slot = factory_();
  return *slot;
}

template <typename Metric>
bool MetricVec<Metric>::Delete(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size()) return false;
  std::vector<std::string> key;
  for (size_t p : sorted_positions_) key.push_back(values[p]);
  std::lock_guard lock(mu_);
  return children_.erase(key) > 0;
}

template <typename Metric>
void MetricVec<Metric>::Reset() {
  std::lock_guard lock(mu_);
  children_.clear();
}

template <typename Metric>
void MetricVec<Metric>::ForEach(
    const std::function<void(const std::vector<std::string>&, const Metric&)>& fn) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> values(label_names_.size());
  for (const auto& [key, metric] : children_) {
    for (size_t i = 0; i < key.size(); ++i) values[sorted_positions_[i]] = key[i];
    fn(values, *metric);
  }
}

template class MetricVec<Counter>;
template class MetricVec<Gauge>;
template class MetricVec<Histogram>;

struct Registry::Entry {
  std::string name;
  std::string help;
  MetricType type;
  std::shared_ptr<void> owner;
  std::function<void(std::vector<MetricSample>&)> collect;
};

namespace {

template <typename Metric>
std::function<void(std::vector<MetricSample>&)> VecCollector(const MetricVec<Metric>* vec) {
  return [vec](std::vector<MetricSample>& out) {
    std::vector<std::string> names = vec->label_names();
    vec->ForEach([&](const std::vector<std::string>& values, const Metric& m) {
      // Output labels in name order, as client_golang does.
      std::vector<std::pair<std::string, std::string>> labels;
      for (size_t i = 0; i < names.size(); ++i) labels.emplace_back(names[i], values[i]);
      std::sort(labels.begin(), labels.end());
      if constexpr (std::is_same_v<Metric, Histogram>) {
        AppendHistogramSamples(m, labels, out);
      } else {
        out.push_back({"", std::move(labels), m.Value()});
      }
    });
  };
}

}  // namespace

void Registry::Reserve(const std::string& name) {
  CheckMetricName(name);
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
    throw std::invalid_argument("metrics: " + name + " is already registered");
  }
  names_.push_back(name);
}

template <typename T>
T& Registry::Add(std::string name, std::string help, MetricType type, std::unique_ptr<T> metric) {
  std::lock_guard lock(mu_);
  Reserve(name);
  T* raw = metric.get();
  auto entry = std::make_shared<Entry>();
  entry->name = std::move(name);
  entry->help = std::move(help);
  entry->type = type;
  entry->owner = std::shared_ptr<T>(std::move(metric));
  if constexpr (std::is_same_v<T, Histogram>) {
    entry->collect = [raw](std::vector<MetricSample>& out) {
      AppendHistogramSamples(*raw, {}, out);
    };
  } else if constexpr (std::is_same_v<T, Counter> || std::is_same_v<T, Gauge>) {
    entry->collect = [raw](std::vector<MetricSample>& out) {
      out.push_back({"", {}, raw->Value()});
    };
  } else {
    entry->collect = VecCollector(raw);
  }
  entries_.push_back(std::move(entry));
  return *raw;
}

Counter& Registry::AddCounter(std::string name, std::string help) {
  return Add(std::move(name), std::move(help), MetricType::kCounter, std::make_unique<Counter>());
}

Gauge& Registry::AddGauge(std::string name, std::string help) {
  return Add(std::move(name), std::move(help), MetricType::kGauge, std::make_unique<Gauge>());
}

Histogram& Registry::AddHistogram(std::string name, std::string help, std::vector<double> buckets) {
  return Add(std::move(name), std::move(help), MetricType::kHistogram,
             std::make_unique<Histogram>(std::move(buckets)));
}

CounterVec& Registry::AddCounterVec(std::string name, std::string help,
                                    std::vector<std::string> labels) {
  CheckLabelNames(name, labels, MetricType::kCounter);
  auto vec =
      std::make_unique<CounterVec>(std::move(labels), [] { return std::make_unique<Counter>(); });
  return Add(std::move(name), std::move(help), MetricType::kCounter, std::move(vec));
}

GaugeVec& Registry::AddGaugeVec(std::string name, std::string help,
                                std::vector<std::string> labels) {
  CheckLabelNames(name, labels, MetricType::kGauge);
  auto vec =
      std::make_unique<GaugeVec>(std::move(labels), [] { return std::make_unique<Gauge>(); });
  return Add(std::move(name), std::move(help), MetricType::kGauge, std::move(vec));
}

HistogramVec& Registry::AddHistogramVec(std::string name, std::string help,
                                        std::vector<double> buckets,
                                        std::vector<std::string> labels) {
  CheckLabelNames(name, labels, MetricType::kHistogram);
  Histogram probe(buckets);  // validate the layout now, not at the first WithLabelValues
  auto vec = std::make_unique<HistogramVec>(
      std::move(labels), [buckets] { return std::make_unique<Histogram>(buckets); });
  return Add(std::move(name), std::move(help), MetricType::kHistogram, std::move(vec));
}

void Registry::AddCollector(std::vector<std::string> names, MetricCollector collector) {
  std::lock_guard lock(mu_);
  for (const std::string& n : names) CheckMetricName(n);
  for (const std::string& n : names) {
    if (std::find(names_.begin(), names_.end(), n) != names_.end()) {
      throw std::invalid_argument("metrics: " + n + " is already registered");
    }
  }
  names_.insert(names_.end(), names.begin(), names.end());
  collectors_.push_back(std::move(collector));
}

std::vector<MetricFamilySnapshot> Registry::Gather() const {
  std::vector<std::shared_ptr<Entry>> entries;
  std::vector<MetricCollector> collectors;
  {
    std::lock_guard lock(mu_);
    entries = entries_;
    collectors = collectors_;
  }
  std::vector<MetricFamilySnapshot> out;
  for (const auto& e : entries) {
    MetricFamilySnapshot f{e->name, e->help, e->type, {}};
    e->collect(f.samples);
    if (!f.samples.empty()) out.push_back(std::move(f));
  }
  for (const auto& c : collectors) {
    std::vector<MetricFamilySnapshot> got;
    c(got);
    for (auto& f : got) {
      if (!f.samples.empty()) out.push_back(std::move(f));
    }
  }
  std::sort(
      out.begin(), out.end(),
      [](const MetricFamilySnapshot& a, const MetricFamilySnapshot& b) { return a.name < b.name; });
  return out;
}

std::string Registry::Render() const { return RenderMetricFamilies(Gather()); }

std::string RenderMetricFamilies(const std::vector<MetricFamilySnapshot>& families) {
  std::string out;
  for (const MetricFamilySnapshot& f : families) {
    out += "# HELP " + f.name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + f.name + " " + TypeName(f.type) + "\n";
    for (const MetricSample& s : f.samples) {
      out += f.name;
      out += s.suffix;
      if (!s.labels.empty()) {
        out.push_back('{');
        for (size_t i = 0; i < s.labels.size(); ++i) {
          if (i > 0) out.push_back(',');
          out += s.labels[i].first + "=\"" + EscapeLabelValue(s.labels[i].second) + "\"";
        }
        out.push_back('}');
      }
      out.push_back(' ');
      out += FormatMetricValue(s.value);
      out.push_back('\n');
    }
  }
  return out;
}

}  // namespace sluice::proxy
