#include "controlplane/api/watch_stream_framer.h"

#include "controlplane/api/object_error.h"

namespace sluice::api {

WatchStreamFramer::WatchStreamFramer(size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

void WatchStreamFramer::Feed(std::string_view bytes) { buffer_.append(bytes); }

bool WatchStreamFramer::idle() const {
  if (depth_ != 0) return false;
  for (size_t i = scan_; i < buffer_.size(); ++i) {
    char c = buffer_[i];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return false;
  }
  return true;
}

std::optional<std::string> WatchStreamFramer::Next() {
  auto fail = [](std::string reason) { throw ParseError("", "", "", "watch stream: " + reason); };
  while (scan_ < buffer_.size()) {
    char c = buffer_[scan_];
    if (depth_ == 0) {
      // Between events: skip whitespace; an event starts with '{'.
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        ++scan_;
        continue;
      }
      if (c != '{') {
        fail("unexpected byte 0x" + std::string(1, "0123456789abcdef"[(c >> 4) & 0xf]) +
             std::string(1, "0123456789abcdef"[c & 0xf]) + " between events");
      }
      start_ = scan_;
      depth_ = 1;
      ++scan_;
      continue;
    }
    ++scan_;
    if (in_string_) {
      if (escaped_) {
        escaped_ = false;
      } else if (c == '\\') {
        escaped_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        std::string event = buffer_.substr(start_, scan_ - start_);
        // Drop consumed bytes once they are the larger part of the buffer (amortised O(1)).
        if (scan_ > buffer_.size() / 2) {
          buffer_.erase(0, scan_);
          scan_ = 0;
        }
        start_ = scan_;
        return event;
      }
    }
  }
  if (depth_ == 0) {
    buffer_.clear();
    scan_ = start_ = 0;
  } else if (scan_ - start_ > max_event_bytes_) {
    fail("event larger than " + std::to_string(max_event_bytes_) + " bytes");
  }
  return std::nullopt;
}

}  // namespace sluice::api
