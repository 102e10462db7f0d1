// api_parse_bench: how long and how much memory it takes to turn API server JSON into typed
// api:: values, with the project's parsers (controlplane/api, over simdjson's DOM) and with
// simdjson's ondemand API (bench/apiclient/simdjson_decoder), side by side. See README.md.
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "bench/apiclient/simdjson_decoder.h"
#include "bench/apiclient/workload.h"
#include "common/unique_fd.h"
#include "controlplane/api/field_reader.h"
#include "controlplane/api/object_list.h"
#include "controlplane/api/watch_event.h"

namespace sluice::bench {
namespace {

struct Options {
  WorkloadSize size;
  int runs = 5;
};

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: api_parse_bench [--services N] [--slices N] [--endpoints N] [--events N] "
               "[--runs N]\n");
  std::exit(2);
}

Options ParseFlags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Usage();
    char* end = nullptr;
    long v = std::strtol(argv[++i], &end, 10);
    if (*end != '\0' || v < 0) Usage();
    if (flag == "--services") {
      o.size.services = static_cast<size_t>(v);
    } else if (flag == "--slices") {
      o.size.slices = static_cast<size_t>(v);
    } else if (flag == "--endpoints") {
      o.size.endpoints_per_slice = static_cast<size_t>(v);
    } else if (flag == "--events") {
      o.size.watch_events = static_cast<size_t>(v);
    } else if (flag == "--runs" && v > 0) {
      o.runs = static_cast<int>(v);
    } else {
      Usage();
    }
  }
  return o;
}

double Millis(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

long StatusKb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0 && line[n] == ':')
      return std::strtol(line.c_str() + n + 1, nullptr, 10);
  }
  return -1;
}

struct Memory {
  long peak_kb = -1;      // VmHWM during the parse, above the RSS before it
  long retained_kb = -1;  // RSS with the typed result alive, above the RSS before
};

// One parse in a child process, so each measurement starts from the same heap and VmHWM can be
// reset ("5" > clear_refs). parse_state_reset drops what a parser keeps between calls (simdjson's
// buffers): before the parse, so they count in its peak; after it, so that "retained" is the typed
// result alone.
template <typename Parse, typename Reset>
Memory MeasureInChild(Parse&& parse, Reset&& parse_state_reset) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = fork();
  if (pid < 0) return {};
  if (pid == 0) {
    read_end.Reset();
    parse_state_reset();
    // Free heap left by earlier runs would be reused without raising RSS: hand it back first.
    malloc_trim(0);
    { std::ofstream("/proc/self/clear_refs") << "5"; }
    Memory m;
    long before = StatusKb("VmRSS");
    auto result = parse();  // alive until _exit
    m.peak_kb = StatusKb("VmHWM") - before;
    parse_state_reset();
    malloc_trim(0);  // what is still resident now is the typed result
    m.retained_kb = StatusKb("VmRSS") - before;
    ssize_t w = write(write_end.get(), &m, sizeof(m));
    _exit(w == sizeof(m) ? 0 : 1);
  }
  write_end.Reset();
  Memory m;
  if (read(read_end.get(), &m, sizeof(m)) != sizeof(m)) m = {};
  int status = 0;
  waitpid(pid, &status, 0);
  return m;
}

// The watch lines in one padded buffer, each line followed by real bytes simdjson may read ahead.
struct PaddedLines {
  std::string buffer;
  std::vector<std::pair<size_t, size_t>> spans;  // offset, length
  std::vector<api::Kind> kinds;
};

PaddedLines Pad(const std::vector<WatchLine>& lines) {
  PaddedLines p;
  for (const auto& l : lines) {
    p.spans.emplace_back(p.buffer.size(), l.text.size());
    p.kinds.push_back(l.kind);
    p.buffer += l.text;
    p.buffer += '\n';
  }
  p.buffer.append(simdjson::SIMDJSON_PADDING, ' ');
  return p;
}

struct Row {
  std::string name;
  size_t bytes;
  std::vector<double> dom, nlohmann, simd;
  Memory nl_mem, simd_mem;
};

double Mb(long kb) { return kb < 0 ? -1.0 : static_cast<double>(kb) / 1024.0; }

void PrintTimes(const Row& r) {
  double nl = Median(r.nlohmann), sj = Median(r.simd), dom = Median(r.dom);
  std::printf("%-40s %8.1f MB %10.1f ms  (%7.1f + %6.1f) %10.1f ms %7.2fx\n", r.name.c_str(),
              static_cast<double>(r.bytes) / 1e6, nl, dom, nl - dom, sj, nl / sj);
}

void PrintMemory(const Row& r) {
  std::printf("%-40s %11.1f / %-11.1f %11.1f / %-11.1f %7.2fx\n", r.name.c_str(),
              Mb(r.nl_mem.peak_kb), Mb(r.nl_mem.retained_kb), Mb(r.simd_mem.peak_kb),
              Mb(r.simd_mem.retained_kb),
              static_cast<double>(r.nl_mem.peak_kb) / static_cast<double>(r.simd_mem.peak_kb));
}

int Main(int argc, char** argv) {
  Options opt = ParseFlags(argc, argv);
  std::printf("generating %zu Services, %zu EndpointSlices x %zu endpoints, %zu watch events...\n",
              opt.size.services, opt.size.slices, opt.size.endpoints_per_slice,
              opt.size.watch_events);
  std::fflush(stdout);
  Workload w = GenerateWorkload(opt.size);
  simdjson::padded_string services_padded(w.service_list), slices_padded(w.slice_list);
  PaddedLines padded_events = Pad(w.events);
  size_t event_bytes = 0;
  for (const auto& e : w.events) event_bytes += e.text.size();
  SimdjsonDecoder simd;

  auto nl_services = [&] { return api::ParseServiceListText(w.service_list); };
  auto sj_services = [&] { return simd.ServiceList(services_padded); };
  auto nl_slices = [&] { return api::ParseEndpointSliceListText(w.slice_list); };
  auto sj_slices = [&] { return simd.EndpointSliceList(slices_padded); };
  // As the reflector's watch session does: one parser for the stream, reused event after event.
  auto nl_events = [&] {
    std::vector<api::WatchEvent> out;
    out.reserve(w.events.size());
    api::JsonParser parser;
    for (const auto& e : w.events) {
      out.push_back(api::ParseWatchEvent(api::ParseJsonDom(parser, e.text), e.kind));
    }
    return out;
  };
  auto sj_events = [&] {
    std::vector<api::WatchEvent> out;
    const PaddedLines& p = padded_events;
    out.reserve(p.spans.size());
    for (size_t i = 0; i < p.spans.size(); ++i) {
      auto [off, len] = p.spans[i];
      out.push_back(simd.WatchEvent(
          simdjson::padded_string_view(p.buffer.data() + off, len, p.buffer.size() - off),
          p.kinds[i]));
    }
    return out;
  };

  // Both paths must produce the same values, or the comparison means nothing.
  {
    auto a = nl_services(), b = sj_services();
    auto c = nl_slices(), d = sj_slices();
    auto e = nl_events(), f = sj_events();
    bool same = a.items == b.items && a.resource_version == b.resource_version &&
                c.items == d.items && e == f && a.rejected.empty() && c.rejected.empty();
    if (!same) {
      std::fprintf(stderr, "FAIL: the controlplane/api and ondemand paths disagree\n");
      return 1;
    }
    std::printf(
        "checked: both paths give identical values (%zu Services, %zu slices, %zu events)\n",
        a.items.size(), c.items.size(), e.size());
    std::fflush(stdout);
  }

  Row rows[3] = {
      {"ServiceList " + std::to_string(opt.size.services),
       w.service_list.size(),
       {},
       {},
       {},
       {},
       {}},
      {"EndpointSliceList " + std::to_string(opt.size.slices) + " x " +
           std::to_string(opt.size.endpoints_per_slice) + " endpoints",
       w.slice_list.size(),
       {},
       {},
       {},
       {},
       {}},
      {std::to_string(opt.size.watch_events) + " watch events (one per call)",
       event_bytes,
       {},
       {},
       {},
       {},
       {}},
  };
  size_t sink = 0;
  api::JsonParser dom_parser;
  auto dom_only = [&](const std::string& text) {
    return api::ParseJsonDom(dom_parser, text).is_object() ? 1u : 0u;
  };
  for (int run = 0; run < opt.runs; ++run) {
    // Interleaved, so drift on a shared machine hits both paths alike.
    rows[0].dom.push_back(Millis([&] { sink += dom_only(w.service_list); }));
    rows[0].nlohmann.push_back(Millis([&] { sink += nl_services().items.size(); }));
    rows[0].simd.push_back(Millis([&] { sink += sj_services().items.size(); }));
    rows[1].dom.push_back(Millis([&] { sink += dom_only(w.slice_list); }));
    rows[1].nlohmann.push_back(Millis([&] { sink += nl_slices().items.size(); }));
    rows[1].simd.push_back(Millis([&] { sink += sj_slices().items.size(); }));
    rows[2].dom.push_back(Millis([&] {
      for (const auto& e : w.events) sink += dom_only(e.text);
    }));
    rows[2].nlohmann.push_back(Millis([&] { sink += nl_events().size(); }));
    rows[2].simd.push_back(Millis([&] { sink += sj_events().size(); }));
  }
  auto nothing = [] {};
  auto drop_decoder = [&] { simd = SimdjsonDecoder(); };
  rows[0].nl_mem = MeasureInChild(nl_services, nothing);
  rows[1].nl_mem = MeasureInChild(nl_slices, nothing);
  rows[2].nl_mem = MeasureInChild(nl_events, nothing);
  rows[0].simd_mem = MeasureInChild(sj_services, drop_decoder);
  rows[1].simd_mem = MeasureInChild(sj_slices, drop_decoder);
  rows[2].simd_mem = MeasureInChild(sj_events, drop_decoder);

  std::printf(
      "\nTime: median of %d runs. api parsers = text -> api:: values through controlplane/api "
      "(simdjson DOM),\nsplit into (DOM parse + typed conversion); ondemand = the bench's "
      "simdjson ondemand decoder;\nratio = api parsers / ondemand.\n",
      opt.runs);
  std::printf("%-40s %11s %13s  %16s %13s %8s\n", "workload", "input", "api parsers",
              "(DOM + typed)", "ondemand", "ratio");
  for (const auto& r : rows) PrintTimes(r);
  std::printf(
      "\nMemory: MB above the RSS before the parse, one parse in a fresh child process;\n"
      "peak = VmHWM during the parse, retained = RSS with the typed result alive.\n");
  std::printf("%-40s %25s %25s %8s\n", "workload", "api parsers peak/kept",
              "ondemand peak/kept", "ratio");
  for (const auto& r : rows) PrintMemory(r);
  const double events = static_cast<double>(std::max<size_t>(opt.size.watch_events, 1));
  std::printf("per watch event: api parsers %.1f us, ondemand %.1f us\n",
              Median(rows[2].nlohmann) * 1000.0 / events, Median(rows[2].simd) * 1000.0 / events);
  return sink == 0 ? 1 : 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) { return sluice::bench::Main(argc, argv); }
