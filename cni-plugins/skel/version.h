// CNI spec versions this project speaks, and comparisons between version strings.
#pragma once

#include <array>
#include <string_view>

namespace sluice::cni {

inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0",
                                                                       "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

bool IsSupportedVersion(std::string_view version);
// Compares dotted numeric versions ("0.4.0" < "1.0.0"); throws Error(kDecodeFailure) on junk.
int CompareVersions(std::string_view a, std::string_view b);
inline bool VersionAtLeast(std::string_view v, std::string_view min) {
  return CompareVersions(v, min) >= 0;
}

}  // namespace sluice::cni
