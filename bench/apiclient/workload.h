// The objects the API client benchmark parses: a LIST of Services, a LIST of EndpointSlices and a
// run of watch events, as JSON text shaped like what kube-apiserver sends (Go field order,
// managedFields, ownerReferences, last-applied annotations on some objects).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "controlplane/api/object.h"

namespace sluice::bench {

struct WorkloadSize {
  size_t services = 10000;
  size_t slices = 10000;
  size_t endpoints_per_slice = 10;
  size_t watch_events = 1000;
};

struct WatchLine {
  api::Kind kind;    // what the watch was opened for
  std::string text;  // one event, as one line of the stream
};

struct Workload {
  std::string service_list;  // {"kind":"ServiceList",...}
  std::string slice_list;    // {"kind":"EndpointSliceList",...}
  std::vector<WatchLine> events;
};

// Deterministic: the same sizes give the same bytes.
Workload GenerateWorkload(const WorkloadSize& size);

}  // namespace sluice::bench
