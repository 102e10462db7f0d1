// libFuzzer target: Kubernetes API JSON through the controlplane/api parsers (objects, lists, watch
// events typed and raw, Status, the watch stream framer) and validation. Any input must end in a
// value or an api::ParseError / api::ValidationError, never another exception, a crash, a leak or
// undefined behaviour. The lenient Status reader (HTTP error bodies) must not throw at all, and the
// raw envelope must accept whatever the typed parser accepts (they share it).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "controlplane/api/field_reader.h"
#include "controlplane/api/object.h"
#include "controlplane/api/object_list.h"
#include "controlplane/api/object_meta.h"
#include "controlplane/api/status.h"
#include "controlplane/api/watch_event.h"
#include "controlplane/api/watch_stream_framer.h"

namespace api = sluice::api;

namespace {

template <typename F>
void Expecting(F&& f) {
  try {
    f();
  } catch (const api::ObjectError& e) {
    if (e.what()[0] == '\0') __builtin_trap();  // every error says something
  }
}

template <typename List>
void CheckList(const List& list) {
  for (const auto& item : list.items) Expecting([&] { api::Validate(item); });
  for (const auto& e : list.rejected) {
    if (e.context().find(" items[") == std::string::npos) __builtin_trap();  // names the item
  }
}

void Event(std::string_view text) {
  for (std::optional<api::Kind> kind :
       {std::optional<api::Kind>(), std::optional(api::Kind::kService),
        std::optional(api::Kind::kEndpointSlice), std::optional(api::Kind::kNode)}) {
    std::string_view kind_name = kind ? api::ToString(*kind) : "";
    bool typed_ok = false;
    Expecting([&] {
      auto ev = api::ParseWatchEventText(text, kind);
      typed_ok = true;
      if (ev.type == api::WatchEventType::kBookmark) {
        if (ev.bookmark().resource_version.empty()) __builtin_trap();
      } else if (ev.type != api::WatchEventType::kError) {
        if (kind && api::KindOf(ev.object()) != *kind) __builtin_trap();
        api::Validate(ev.object());
      }
    });
    bool raw_ok = false;
    Expecting([&] {
      api::JsonParser parser;
      auto ev = api::ParseRawWatchEventText(parser, text, kind_name);
      raw_ok = true;
      if (ev.type == api::WatchEventType::kBookmark) {
        if (ev.bookmark().resource_version.empty()) __builtin_trap();
      } else if (ev.type != api::WatchEventType::kError) {
        if (!ev.object().is_object()) __builtin_trap();
        (void)api::ObjectKey(ev.object());
        (void)api::ObjectResourceVersion(ev.object());
      }
    });
    if (typed_ok && !raw_ok) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  // The whole input as one document, decoded once and handed to every JSON-level parser.
  std::optional<nlohmann::json> doc;
  Expecting([&] { doc = api::ParseJsonText(text); });
  if (doc) {
    Expecting([&] {
      auto o = api::ParseObject(*doc);
      (void)api::MetaOf(o).Key();
      api::Validate(o);
    });
    Expecting([&] { CheckList(api::ParseServiceList(*doc)); });
    Expecting([&] { CheckList(api::ParseEndpointSliceList(*doc)); });
    Expecting([&] { CheckList(api::ParseNodeList(*doc)); });
    Expecting([&] { (void)api::ParseStatus(*doc).Summary(); });
    Event(text);
  }
  for (int http_status : {0, 410, 504}) {
    api::Status st = api::StatusFromBody(text, http_status);  // throws nothing
    (void)st.Summary();
    (void)st.IsExpired();
    (void)st.IsTooLargeResourceVersion();
  }

  // The input as a watch stream, cut into chunks whose sizes come from the input itself.
  api::WatchStreamFramer framer(1 << 16);
  Expecting([&] {
    size_t pos = 0, step = size > 0 ? (data[0] % 61) + 1 : 1;
    while (pos < size) {
      size_t n = std::min(step, size - pos);
      framer.Feed(text.substr(pos, n));
      pos += n;
      step = (step * 7 + 3) % 97 + 1;
      while (auto event = framer.Next()) Event(*event);
    }
  });
  return 0;
}
