// The benchmark's second path: the same typed api:: values, decoded with simdjson's ondemand API
// instead of controlplane/api's parsers (simdjson's DOM). Bench-only and deliberately small: it
// reads the fields the api parser reads and applies the same defaults, but reports errors without
// field paths, does not read the load-balancer-source-ranges annotation, and expects a watch
// event's "type" before its "object" (Go's encoder writes them in that order).
#pragma once

#include <simdjson.h>

#include "controlplane/api/object_list.h"
#include "controlplane/api/watch_event.h"

namespace sluice::bench {

class SimdjsonDecoder {
 public:
  // Each text must stay valid, with SIMDJSON_PADDING readable bytes after it, during the call.
  api::ServiceList ServiceList(simdjson::padded_string_view text);
  api::EndpointSliceList EndpointSliceList(simdjson::padded_string_view text);
  api::WatchEvent WatchEvent(simdjson::padded_string_view text, api::Kind kind);

 private:
  simdjson::ondemand::parser parser_;
};

}  // namespace sluice::bench
