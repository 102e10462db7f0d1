// A watch response body, cut into chunks at fuzzer-chosen points, through the watch session (the
// stream framer, envelope decoding and dispatch) into a store, in plain and watch-list mode. Checks
// that the session stops at its first bad event and that the store only changes through it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controlplane/api/object_meta.h"
#include "controlplane/kube/store.h"
#include "controlplane/kube/watch_session.h"

namespace {

using sluice::api::ObjectKey;
using sluice::api::ObjectResourceVersion;
using Outcome = sluice::kube::WatchSession::Outcome;

struct StoreSink : sluice::kube::JsonSink {
  sluice::kube::Store<nlohmann::json> store;
  bool ended = false;  // set once the session reported anything but kContinue
  void Replace(std::vector<nlohmann::json> items, const std::string&) override {
    if (ended) std::abort();
    std::vector<sluice::kube::Store<nlohmann::json>::Item> typed;
    for (auto& i : items) {
      std::string key = ObjectKey(i);
      std::string rv = ObjectResourceVersion(i);
      if (key.empty() || rv.empty()) std::abort();  // the session lets no such object through
      typed.push_back({key, rv, std::make_shared<const nlohmann::json>(std::move(i))});
    }
    store.Replace(std::move(typed));
  }
  void UpsertJson(nlohmann::json o) override {
    if (ended) std::abort();
    std::string key = ObjectKey(o);
    std::string rv = ObjectResourceVersion(o);
    if (key.empty() || rv.empty()) std::abort();
    store.Upsert({key, rv, std::make_shared<const nlohmann::json>(std::move(o))});
  }
  void DeleteJson(nlohmann::json o) override {
    if (ended) std::abort();
    if (ObjectKey(o).empty()) std::abort();
    store.Delete(ObjectKey(o));
  }
};

void Run(std::string_view body, std::string_view cuts, bool watch_list) {
  StoreSink sink;
  sluice::kube::WatchSession session(sluice::kube::ServicesResource(), sink, "1", watch_list,
                                     1 << 16);
  auto feed = [&](std::string_view data) {
    Outcome o = session.OnData(data);
    if (o == Outcome::kContinue) return true;
    sink.ended = true;  // the reflector stops feeding here; the session must ignore the rest
    if (session.problem().empty()) std::abort();
    if (session.OnData(data) != o) std::abort();
    return false;
  };
  size_t pos = 0;
  for (unsigned char c : cuts) {
    if (pos >= body.size()) break;
    size_t n = std::min<size_t>(c + 1, body.size() - pos);
    if (!feed(body.substr(pos, n))) return;
    pos += n;
  }
  if (pos < body.size() && !feed(body.substr(pos))) return;
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
