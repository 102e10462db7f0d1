// Cuts a watch response body into complete JSON texts. The server writes one event per line, but
// HTTP chunks (and reads) do not follow event boundaries, so this counts braces instead of relying
// on newlines: bytes go in as they arrive, whole events come out for ParseWatchEventText.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::api {

class WatchStreamFramer {
 public:
  // An event larger than this is an error rather than unbounded buffering.
  explicit WatchStreamFramer(size_t max_event_bytes = 64 << 20);

  void Feed(std::string_view bytes);
  // The next complete top-level JSON object, or nullopt until more bytes arrive. Throws ParseError
  // for bytes that cannot start an event (anything but whitespace or '{' between events) and for an
  // event over the size limit; the stream is then unusable.
  std::optional<std::string> Next();
  // True when no partial event is buffered: the stream may end here cleanly.
  bool idle() const;

 private:
  std::string buffer_;
  size_t max_event_bytes_;
  size_t start_ = 0;  // first byte of the event being scanned
  size_t scan_ = 0;   // next byte to scan
  int depth_ = 0;     // brace/bracket depth inside the event; 0 between events
  bool in_string_ = false;
  bool escaped_ = false;
};

}  // namespace sluice::api
