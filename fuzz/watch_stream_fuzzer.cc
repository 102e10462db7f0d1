// A watch response body, cut into chunks at fuzzer-chosen points, through the line splitter and the
// watch session (event decoding and dispatch) into a store, in plain and watch-list mode. Checks
// that the session stops at its first bad line and that the store only changes through it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controlplane/kube/line_splitter.h"
#include "controlplane/kube/store.h"
#include "controlplane/kube/watch_event.h"
#include "controlplane/kube/watch_session.h"

namespace {

using sluice::kube::ObjectKey;
using sluice::kube::ObjectResourceVersion;

struct StoreSink : sluice::kube::ReflectorSink {
  sluice::kube::Store<nlohmann::json> store;
  void Replace(std::vector<nlohmann::json> items, const std::string&) override {
    std::vector<sluice::kube::Store<nlohmann::json>::Item> typed;
    for (auto& i : items) {
      std::string key = ObjectKey(i);
      std::string rv = ObjectResourceVersion(i);
      if (key.empty() || rv.empty()) std::abort();  // the decoder lets no such object through
      typed.push_back({key, rv, std::make_shared<const nlohmann::json>(std::move(i))});
    }
    store.Replace(std::move(typed));
  }
  void Upsert(nlohmann::json o) override {
    std::string key = ObjectKey(o);
    std::string rv = ObjectResourceVersion(o);
    if (key.empty() || rv.empty()) std::abort();
    store.Upsert({key, rv, std::make_shared<const nlohmann::json>(std::move(o))});
  }
  void Delete(nlohmann::json o) override {
    if (ObjectKey(o).empty()) std::abort();
    store.Delete(ObjectKey(o));
  }
};

void Run(std::string_view body, std::string_view cuts, bool watch_list) {
  StoreSink sink;
  sluice::kube::WatchSession session(sluice::kube::ServicesResource(), sink, "1", watch_list);
  sluice::kube::LineSplitter splitter(1 << 16);
  bool ended = false;
  auto on_line = [&](std::string_view line) {
    if (ended) std::abort();  // the reflector stops feeding after the first non-continue
    ended = session.OnLine(line) != sluice::kube::WatchSession::Outcome::kContinue;
    return !ended;
  };
  size_t pos = 0;
  for (unsigned char c : cuts) {
    if (pos >= body.size()) break;
    size_t n = std::min<size_t>(c + 1, body.size() - pos);
    if (splitter.Feed(body.substr(pos, n), on_line) != sluice::kube::LineSplitter::Result::kOk)
      return;
    pos += n;
  }
  if (pos < body.size()) splitter.Feed(body.substr(pos), on_line);
  if (session.resource_version().empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // First byte: how many cut sizes follow; then the cut sizes; the rest is the body.
  if (size == 0) return 0;
  size_t ncuts = std::min<size_t>(data[0] % 16, size - 1);
  std::string_view cuts(reinterpret_cast<const char*>(data + 1), ncuts);
  std::string_view body(reinterpret_cast<const char*>(data + 1 + ncuts), size - 1 - ncuts);
  Run(body, cuts, false);
  Run(body, cuts, true);
  return 0;
}
