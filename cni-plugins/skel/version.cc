#include "cni-plugins/skel/version.h"

#include <algorithm>
#include <charconv>
#include <string>

#include "cni-plugins/skel/cni_error.h"

namespace sluice::cni {
namespace {

std::array<int, 3> ParseVersion(std::string_view v) {
  std::array<int, 3> parts{0, 0, 0};
  size_t i = 0;
  for (int& part : parts) {
    if (i > v.size()) break;
    auto end = v.find('.', i);
    if (end == std::string_view::npos) end = v.size();
    auto field = v.substr(i, end - i);
    auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), part);
    if (field.empty() || ec != std::errc() || ptr != field.data() + field.size()) {
      throw Error(kDecodeFailure, "invalid version \"" + std::string(v) + "\"");
    }
    i = end + 1;
  }
  if (i <= v.size()) throw Error(kDecodeFailure, "invalid version \"" + std::string(v) + "\"");
  return parts;
}

}  // namespace

bool IsSupportedVersion(std::string_view version) {
  return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) !=
         kSupportedVersions.end();
}

int CompareVersions(std::string_view a, std::string_view b) {
  auto pa = ParseVersion(a);
  auto pb = ParseVersion(b);
  return pa < pb ? -1 : (pa == pb ? 0 : 1);
}

}  // namespace sluice::cni
