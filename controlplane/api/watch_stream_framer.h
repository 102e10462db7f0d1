// Cuts a watch response body into complete JSON texts for ParseWatchEventText or
// ParseRawWatchEventText. HTTP chunks (and reads) do not follow event boundaries, so this counts
// braces instead of splitting at newlines: bytes go in as they arrive, whole events come out, and
// several events on one line or none between them are fine.
//
// The API server writes each event as one line of compact JSON, so a line end inside an event
// means the event was cut short (a write truncated, then the next event): that is an error at
// once, rather than an object that swallows every later event and never closes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::api {

class WatchStreamFramer {
 public:
  // An event larger than this is an error rather than unbounded buffering. The API server caps
  // objects at about 1.5 MiB (etcd's request limit), so 16 MiB is generous.
  static constexpr size_t kDefaultMaxEventBytes = 16u << 20;

  explicit WatchStreamFramer(size_t max_event_bytes = kDefaultMaxEventBytes);

  void Feed(std::string_view bytes);
  // The next complete top-level JSON object, or nullopt until more bytes arrive. Throws ParseError
  // ("watch stream: ...") for bytes that cannot start an event (anything but whitespace or '{'
  // between events), for a line end inside an event, and for an event over the size limit; the
  // stream is then unusable.
  std::optional<std::string> Next();
  // After Next() returned nullopt: the bytes of the event not yet complete ("" between events).
  // When the stream ends here, that is a truncated event.
  std::string_view pending() const;
  // True when no partial event is buffered: the stream may end here cleanly.
  bool idle() const { return pending().empty(); }

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
