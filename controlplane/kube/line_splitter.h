// Splits a byte stream (a watch response body, as curl hands it over in arbitrary chunks) into
// newline-terminated lines. Chunk boundaries are not event boundaries: a line may span many chunks.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace sluice::kube {

class LineSplitter {
 public:
  // A line longer than this is an error, not a reason to buffer without bound. The API server
  // caps objects at about 1.5 MiB (etcd's request limit), so 16 MiB is generous.
  static constexpr size_t kDefaultMaxLine = 16u << 20;

  enum class Result {
    kOk,       // every complete line was handed over; a partial one may be pending
    kStopped,  // on_line returned false; the rest of the data was not looked at
    kTooLong,  // a line grew past max_line; the splitter is spent
  };

  explicit LineSplitter(size_t max_line = kDefaultMaxLine) : max_line_(max_line) {}

  // Calls on_line for each complete line in `data` (without the '\n'; a trailing '\r' is removed;
  // empty lines are skipped). on_line returns false to stop.
  Result Feed(std::string_view data, const std::function<bool(std::string_view)>& on_line);

  // Bytes after the last newline: at the end of a stream, a truncated line.
  std::string_view pending() const { return pending_; }
  void Reset() { pending_.clear(); }

 private:
  size_t max_line_;
  std::string pending_;
};

}  // namespace sluice::kube
