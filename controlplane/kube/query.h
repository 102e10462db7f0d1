// Request URLs as client-go writes them: query keys sorted, values escaped like Go's
// url.QueryEscape, durations like Go's time.Duration.String().
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>

namespace sluice::kube {

using QueryParams = std::map<std::string, std::string>;  // sorted by key, as url.Values.Encode

std::string QueryEscape(std::string_view text);
// "a=1&b=x%2Fy"; empty when there are no parameters.
std::string EncodeQuery(const QueryParams& params);
// "7m34s", "5m0s", "45s", "1h0m0s".
std::string GoDuration(std::chrono::seconds d);

}  // namespace sluice::kube
