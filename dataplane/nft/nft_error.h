// The one exception type of dataplane/nft: an errno plus the object the kernel refused.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace sluice::nft {

class NftError : public std::runtime_error {
 public:
  // `context` says what was attempted ("create table inet t"); the errno text is appended.
  NftError(int error, const std::string& context,
           std::optional<size_t> message_index = std::nullopt);

  int error() const noexcept { return error_; }
  // For batch failures: index (as returned by the Batch builder) of the first refused message.
  std::optional<size_t> message_index() const noexcept { return message_index_; }

 private:
  int error_;
  std::optional<size_t> message_index_;
};

}  // namespace sluice::nft
