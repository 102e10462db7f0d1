#include "proxy/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <thread>

namespace sluice::proxy {
namespace {

// A strict reader of the text format 0.0.4, enough to check what Render writes: every family
// has HELP then TYPE before its samples, sample names belong to the family, label values
// unescape, values parse as floats, histograms have cumulative buckets ending in +Inf with
// _count equal to it.
struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct ParsedFamily {
  std::string help;
  std::string type;
  std::vector<ParsedSample> samples;
};

double ParseValue(const std::string& s) {
  if (s == "+Inf") return std::numeric_limits<double>::infinity();
  if (s == "-Inf") return -std::numeric_limits<double>::infinity();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') throw std::runtime_error("bad value: " + s);
  return v;
}

std::string Unescape(const std::string& s, bool quotes) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out.push_back(s[i]);
      continue;
    }
    if (++i == s.size()) throw std::runtime_error("dangling backslash");
    if (s[i] == 'n') {
      out.push_back('\n');
    } else if (s[i] == '\\' || (quotes && s[i] == '"')) {
      out.push_back(s[i]);
    } else {
      throw std::runtime_error("bad escape");
    }
  }
  return out;
}

std::map<std::string, ParsedFamily> ParseExposition(const std::string& text) {
  std::map<std::string, ParsedFamily> families;
  std::string current;
  std::istringstream in(text);
  std::string line;
  if (!text.empty() && text.back() != '\n') throw std::runtime_error("no final newline");
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      size_t sp = line.find(' ', 7);
      current = line.substr(7, sp - 7);
      if (families.count(current)) throw std::runtime_error("family twice: " + current);
      families[current].help = Unescape(line.substr(sp + 1), false);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      size_t sp = line.find(' ', 7);
      if (line.substr(7, sp - 7) != current) throw std::runtime_error("TYPE without HELP");
      families[current].type = line.substr(sp + 1);
      continue;
    }
    if (current.empty() || families[current].type.empty()) {
      throw std::runtime_error("sample before TYPE: " + line);
    }
    ParsedSample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        size_t eq = line.find("=\"", i);
        std::string name = line.substr(i, eq - i);
        size_t j = eq + 2;
        std::string raw;
        while (line.at(j) != '"') {
          if (line[j] == '\\') raw.push_back(line[j++]);
          raw.push_back(line.at(j++));
        }
        s.labels[name] = Unescape(raw, true);
        i = j + 1;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    if (line.at(i) != ' ') throw std::runtime_error("no space before value: " + line);
    s.value = ParseValue(line.substr(i + 1));
    const std::string& type = families[current].type;
    bool ok = s.name == current;
    if (type == "histogram") {
      ok = s.name == current + "_bucket" || s.name == current + "_sum" ||
           s.name == current + "_count";
    }
    if (!ok) throw std::runtime_error("sample " + s.name + " outside family " + current);
    families[current].samples.push_back(std::move(s));
  }
  for (const auto& [name, f] : families) {
    if (f.type != "histogram") continue;
    // Per series (labels without le): cumulative buckets, +Inf last, _count == +Inf.
    std::map<std::map<std::string, std::string>, std::vector<const ParsedSample*>> series;
    for (const ParsedSample& s : f.samples) {
      auto key = s.labels;
      key.erase("le");
      series[key].push_back(&s);
    }
    for (const auto& [key, samples] : series) {
      double last_le = -std::numeric_limits<double>::infinity();
      double last_count = 0;
      double inf_count = -1, count = -2;
      for (const ParsedSample* s : samples) {
        if (s->name == name + "_bucket") {
          double le = ParseValue(s->labels.at("le"));
          if (!(le > last_le) || s->value < last_count)
            throw std::runtime_error("buckets out of order");
          last_le = le;
          last_count = s->value;
          if (std::isinf(le)) inf_count = s->value;
        } else if (s->name == name + "_count") {
          count = s->value;
        }
      }
      if (inf_count != count) throw std::runtime_error(name + ": _count differs from +Inf bucket");
    }
  }
  return families;
}

TEST(FormatMetricValueTest, MatchesGoFormatFloatG) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-0.0), "0");
  EXPECT_EQ(FormatMetricValue(1), "1");
  EXPECT_EQ(FormatMetricValue(-1), "-1");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(-0.5), "-0.5");
  EXPECT_EQ(FormatMetricValue(0.001), "0.001");
  EXPECT_EQ(FormatMetricValue(0.0001), "0.0001");
  EXPECT_EQ(FormatMetricValue(0.00001), "1e-05");
  EXPECT_EQ(FormatMetricValue(2.5e-7), "2.5e-07");
  EXPECT_EQ(FormatMetricValue(16.384), "16.384");
  EXPECT_EQ(FormatMetricValue(123.456), "123.456");
  EXPECT_EQ(FormatMetricValue(100000), "100000");
  EXPECT_EQ(FormatMetricValue(999999), "999999");
  EXPECT_EQ(FormatMetricValue(1e6), "1e+06");
  EXPECT_EQ(FormatMetricValue(1234567), "1.234567e+06");
  EXPECT_EQ(FormatMetricValue(1.7e9), "1.7e+09");
  EXPECT_EQ(FormatMetricValue(1e21), "1e+21");
  EXPECT_EQ(FormatMetricValue(1e100), "1e+100");
  EXPECT_EQ(FormatMetricValue(18446744073709551615.0), "1.8446744073709552e+19");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
}

TEST(FormatMetricValueTest, RoundTrips) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mantissa(-10, 10);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int i = 0; i < 10000; ++i) {
    double v = mantissa(rng) * std::pow(10.0, exponent(rng));
    std::string s = FormatMetricValue(v);
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
  }
}

TEST(EscapeTest, LabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue(R"(a\b"c)"
                             "\nd"),
            R"(a\\b\"c\nd)");
  EXPECT_EQ(EscapeHelp(R"(a\b"c)"
                       "\nd"),
            R"(a\\b"c\nd)");
}

TEST(BucketsTest, LinearAndExponential) {
  EXPECT_EQ(LinearBuckets(0.25, 0.25, 2), (std::vector<double>{0.25, 0.5}));
  EXPECT_EQ(ExponentialBuckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_THROW(ExponentialBuckets(0, 2, 3), std::invalid_argument);
  EXPECT_THROW(LinearBuckets(1, 1, 0), std::invalid_argument);
}

TEST(HistogramTest, BucketsAreCumulativeAndUpperBoundsInclusive) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 2.0, 5.0, 7.0, -3.0}) h.Observe(v);
  Histogram::Snapshot s = h.Take();
  EXPECT_EQ(s.upper_bounds, (std::vector<double>{1, 2, 5}));
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{3, 5, 6, 7}));
  EXPECT_EQ(s.count, 7u);
  EXPECT_DOUBLE_EQ(s.sum, 14.0);
}

TEST(HistogramTest, NanGoesToInfAndExplicitInfIsDropped) {
  Histogram h({1, std::numeric_limits<double>::infinity()});
  h.Observe(std::nan(""));
  Histogram::Snapshot s = h.Take();
  EXPECT_EQ(s.upper_bounds, (std::vector<double>{1}));
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{0, 1}));
}

TEST(HistogramTest, RejectsBadLayouts) {
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({2, 1}), std::invalid_argument);
  EXPECT_THROW(Histogram({std::nan("")}), std::invalid_argument);
}

TEST(CounterTest, OnlyGoesUp) {
  Counter c;
  c.Inc();
  c.Add(2.5);
  EXPECT_EQ(c.Value(), 3.5);
  EXPECT_THROW(c.Add(-1), std::invalid_argument);
  EXPECT_THROW(c.Add(std::nan("")), std::invalid_argument);
}

TEST(GaugeTest, SetAddAndTime) {
  Gauge g;
  g.Set(3);
  g.Inc();
  g.Dec();
  g.Add(-5);
  EXPECT_EQ(g.Value(), -2);
  g.SetToTime(std::chrono::system_clock::time_point(std::chrono::milliseconds(1500)));
  EXPECT_EQ(g.Value(), 1.5);
}

TEST(RegistryTest, RendersTheGoldenText) {
  Registry r;
  Counter& requests = r.AddCounter("test_requests_total", "Requests \\ served.\nSecond line.");
  GaugeVec& temps = r.AddGaugeVec("test_temperature", "Temperature by room.", {"room", "floor"});
  HistogramVec& latency = r.AddHistogramVec("test_latency_seconds", "Latency.", {0.1, 1}, {"path"});
  r.AddCounterVec("test_unused_total", "Never touched, so never rendered.", {"x"});
  requests.Add(3);
  temps.WithLabelValues({"kitchen", "1"}).Set(21.5);
  temps.WithLabelValues({"attic \"A\"", "2"}).Set(-4);
  temps.WithLabelValues({"hall\\\n", "0"}).Set(1e6);
  latency.WithLabelValues({"/b"}).Observe(0.05);
  latency.WithLabelValues({"/b"}).Observe(3);
  latency.WithLabelValues({"/a"}).Observe(0.1);

  const std::string want =
      "# HELP test_latency_seconds Latency.\n"
      "# TYPE test_latency_seconds histogram\n"
      "test_latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 1\n"
      "test_latency_seconds_bucket{path=\"/a\",le=\"1\"} 1\n"
      "test_latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 1\n"
      "test_latency_seconds_sum{path=\"/a\"} 0.1\n"
      "test_latency_seconds_count{path=\"/a\"} 1\n"
      "test_latency_seconds_bucket{path=\"/b\",le=\"0.1\"} 1\n"
      "test_latency_seconds_bucket{path=\"/b\",le=\"1\"} 1\n"
      "test_latency_seconds_bucket{path=\"/b\",le=\"+Inf\"} 2\n"
      "test_latency_seconds_sum{path=\"/b\"} 3.05\n"
      "test_latency_seconds_count{path=\"/b\"} 2\n"
      "# HELP test_requests_total Requests \\\\ served.\\nSecond line.\n"
      "# TYPE test_requests_total counter\n"
      "test_requests_total 3\n"
      "# HELP test_temperature Temperature by room.\n"
      "# TYPE test_temperature gauge\n"
      "test_temperature{floor=\"0\",room=\"hall\\\\\\n\"} 1e+06\n"
      "test_temperature{floor=\"1\",room=\"kitchen\"} 21.5\n"
      "test_temperature{floor=\"2\",room=\"attic \\\"A\\\"\"} -4\n";
  const std::string got = r.Render();
  EXPECT_EQ(got, want);

  auto parsed = ParseExposition(got);
  ASSERT_EQ(parsed.size(), 3u);
  EXPECT_EQ(parsed["test_requests_total"].help, "Requests \\ served.\nSecond line.");
  EXPECT_EQ(parsed["test_requests_total"].type, "counter");
  const auto& t = parsed["test_temperature"].samples;
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].labels.at("room"), "hall\\\n");
  EXPECT_EQ(t[0].value, 1e6);
  EXPECT_EQ(t[2].labels.at("room"), "attic \"A\"");
  EXPECT_EQ(parsed["test_latency_seconds"].type, "histogram");
}

TEST(RegistryTest, RejectsBadNamesDuplicatesAndLabelCounts) {
  Registry r;
  r.AddCounter("ok_total", "x");
  EXPECT_THROW(r.AddGauge("ok_total", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("0bad", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddGauge("bad-name", "x"), std::invalid_argument);
  EXPECT_THROW(r.AddGaugeVec("g", "x", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(r.AddGaugeVec("g", "x", {"a:b"}), std::invalid_argument);
  EXPECT_THROW(r.AddGaugeVec("g", "x", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogramVec("h", "x", {1}, {"le"}), std::invalid_argument);
  EXPECT_THROW(r.AddHistogramVec("h", "x", {2, 1}, {"a"}), std::invalid_argument);
  EXPECT_THROW(r.AddCollector({"ok_total"}, [](auto&) {}), std::invalid_argument);
  GaugeVec& g = r.AddGaugeVec("g", "x", {"a", "b"});
  EXPECT_THROW(g.WithLabelValues({"1"}), std::invalid_argument);
  EXPECT_NO_THROW(g.WithLabelValues({"1", "2"}));
}

TEST(RegistryTest, ChildrenAreStableAndCanBeDeleted) {
  Registry r;
  CounterVec& c = r.AddCounterVec("c_total", "x", {"code"});
  Counter& ok = c.WithLabelValues({"200"});
  for (int i = 0; i < 100; ++i) c.WithLabelValues({std::to_string(i)});
  ok.Inc();
  EXPECT_EQ(&ok, &c.WithLabelValues({"200"}));
  EXPECT_EQ(c.WithLabelValues({"200"}).Value(), 1);
  EXPECT_TRUE(c.Delete({"200"}));
  EXPECT_FALSE(c.Delete({"200"}));
  EXPECT_EQ(r.Render().find("code=\"200\""), std::string::npos);
  c.Reset();
  EXPECT_EQ(r.Render(), "");
}

TEST(RegistryTest, CollectorsAreMergedInNameOrder) {
  Registry r;
  r.AddGauge("m_gauge", "g").Set(2);
  r.AddCollector({"a_collected", "z_collected"}, [](std::vector<MetricFamilySnapshot>& out) {
    out.push_back({"z_collected", "z", MetricType::kCounter, {{"", {}, 1}}});
    out.push_back({"a_collected", "a", MetricType::kGauge, {{"", {{"k", "v"}}, 0.5}}});
  });
  EXPECT_EQ(r.Render(),
            "# HELP a_collected a\n# TYPE a_collected gauge\na_collected{k=\"v\"} 0.5\n"
            "# HELP m_gauge g\n# TYPE m_gauge gauge\nm_gauge 2\n"
            "# HELP z_collected z\n# TYPE z_collected counter\nz_collected 1\n");
}

TEST(RegistryTest, ConcurrentUpdatesAreNotLost) {
  Registry r;
  CounterVec& c = r.AddCounterVec("c_total", "x", {"worker"});
  Gauge& g = r.AddGauge("g", "x");
  Histogram& h = r.AddHistogram("h", "x", {0.5});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        c.WithLabelValues({std::to_string(t % 2)}).Inc();
        g.Add(1);
        h.Observe(i % 2);
        if (i % 1000 == 0) r.Render();  // scrapes while writers write
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.WithLabelValues({"0"}).Value() + c.WithLabelValues({"1"}).Value(), 40000);
  EXPECT_EQ(g.Value(), 40000);
  EXPECT_EQ(h.Take().count, 40000u);
  EXPECT_EQ(h.Take().cumulative_counts[0], 20000u);
  EXPECT_NO_THROW(ParseExposition(r.Render()));
}

}  // namespace
}  // namespace sluice::proxy
