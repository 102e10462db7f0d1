// One manifest file (YAML, possibly several `---` documents, or JSON) read into typed, validated
// Services, EndpointSlices and Nodes. Pure: text in, objects and notes out; no I/O, no logging.
//
// What is kept, what is refused and why is in README.md: a syntax error refuses the whole file; an
// invalid object is set aside with a note and the rest of the file is kept; other kinds are
// ignored.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/node.h"
#include "controlplane/api/object.h"
#include "controlplane/api/service.h"

namespace sluice::sources {

// Where an object came from: "web.yaml#2" (the second document), "all.json#1 items[3]" (an item of
// a List). Documents count from 1, as an editor shows them; items from 0, as JSON paths do.
struct ManifestOrigin {
  std::string file;
  size_t document = 0;         // 0: the file as a whole
  std::optional<size_t> item;  // index in the document's List

  std::string ToString() const;
  bool operator==(const ManifestOrigin&) const = default;
};

using ServicePtr = std::shared_ptr<const api::Service>;
using EndpointSlicePtr = std::shared_ptr<const api::EndpointSlice>;
using NodePtr = std::shared_ptr<const api::Node>;
using ManifestValue = std::variant<ServicePtr, EndpointSlicePtr, NodePtr>;

struct ManifestObject {
  ManifestValue value;
  ManifestOrigin origin;

  api::Kind kind() const { return static_cast<api::Kind>(value.index()); }
  const api::ObjectMeta& metadata() const;
  // "Service default/web", "Node node-1": how logs and notes name it.
  std::string Identity() const;
  // The same value (not just the same pointer).
  bool SameValue(const ManifestObject& other) const;
};

struct ManifestNote {
  enum class Level { kInfo, kWarning, kError };
  Level level = Level::kError;
  ManifestOrigin origin;
  // The object first when there is one: "Service default/web: spec.ports[0].port: 0 out of range
  // 1..65535", "Deployment default/app: ignored (not a Service, EndpointSlice or Node)".
  std::string message;

  // "<origin>: <message>"
  std::string ToString() const;
};

struct ManifestFile {
  std::vector<ManifestObject> objects;  // in document order (list items in item order)
  std::vector<ManifestNote> notes;      // invalid objects, ignored kinds, warnings
  // Set when the text is not valid YAML/JSON (or cannot become JSON: too deep, duplicate keys,
  // non-scalar keys, ...). Then `objects` is empty: the file is refused as a whole.
  std::optional<std::string> syntax_error;  // "line 14: invalid YAML: illegal map value"
  std::optional<size_t> syntax_error_line;  // 1-based, when known
  size_t documents = 0;                     // non-empty documents seen

  bool failed() const { return syntax_error.has_value(); }
};

// Limits on what a file may expand to. Kubernetes objects nest a dozen levels deep; anything
// deeper, or an alias bomb that expands to millions of values, is refused as a syntax error.
inline constexpr size_t kMaxManifestDepth = 64;
inline constexpr size_t kMaxManifestValues = 1'000'000;

// Parses `text`, the contents of `file` (used only to name origins). JSON when the first
// non-space character is `{` or `[` (an array holds one object per element), YAML otherwise, with
// YAML 1.2 core-schema typing of plain scalars (`port: 80` is a number, `port: "80"` a string).
// `trim_for_proxy`: Services and EndpointSlices keep only what a proxy reads
// (api::TrimForProxy), as the API source's informers store them.
ManifestFile ParseManifest(std::string_view text, std::string_view file,
                           bool trim_for_proxy = false);

}  // namespace sluice::sources
