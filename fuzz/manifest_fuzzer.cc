// libFuzzer target: arbitrary bytes as one manifest file through the manifest parser
// (controlplane/sources): YAML or JSON, documents, lists, core-schema typing, then the API
// parsers and validation. Nothing may throw, crash, leak, hang or recurse without bound; a refused
// file holds nothing; every object kept is valid and named; the same text reads the same twice.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "controlplane/api/object.h"
#include "controlplane/sources/manifest.h"

namespace sources = sluice::sources;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  sources::ManifestFile f = sources::ParseManifest(text, "fuzz.yaml");
  if (f.failed()) {
    if (!f.objects.empty() || !f.notes.empty() || f.syntax_error->empty()) __builtin_trap();
    if (f.syntax_error_line && *f.syntax_error_line == 0) __builtin_trap();
  }
  for (const auto& o : f.objects) {
    if (o.origin.file != "fuzz.yaml" || o.origin.document == 0) __builtin_trap();
    const auto& meta = o.metadata();
    if (meta.name.empty()) __builtin_trap();
    // Namespaced kinds always have one (defaulted when the manifest left it out).
    if (o.kind() != sluice::api::Kind::kNode && meta.namespace_name.empty()) __builtin_trap();
    if (o.Identity().empty()) __builtin_trap();
    std::visit([](const auto& p) { sluice::api::Validate(*p); }, o.value);  // must not throw
  }
  for (const auto& n : f.notes) {
    if (n.message.empty() || n.origin.document == 0) __builtin_trap();
  }
  // Deterministic: the same text gives the same objects and notes.
  sources::ManifestFile again = sources::ParseManifest(text, "fuzz.yaml");
  if (again.objects.size() != f.objects.size() || again.notes.size() != f.notes.size() ||
      again.syntax_error != f.syntax_error) {
    __builtin_trap();
  }
  for (size_t i = 0; i < f.objects.size(); ++i) {
    if (!again.objects[i].SameValue(f.objects[i])) __builtin_trap();
  }
  return 0;
}
