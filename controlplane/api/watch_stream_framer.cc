#include "controlplane/api/watch_stream_framer.h"

#include <algorithm>

#include "controlplane/api/object_error.h"

namespace sluice::api {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Inside an event, the bytes that matter: in a string '"', '\\' and the line end; outside one
// also the brackets. Everything else (most of the bytes) is skipped in a tight loop.
struct StopBytes {
  bool in_string[256] = {};
  bool outside[256] = {};
};
constexpr StopBytes kStop = [] {
  StopBytes s;
  for (unsigned char c : {'"', '\\', '\n'}) s.in_string[c] = true;
  for (unsigned char c : {'"', '{', '}', '[', ']', '\n'}) s.outside[c] = true;
  return s;
}();

[[noreturn]] void Fail(const std::string& reason) {
  throw ParseError("", "", "", "watch stream: " + reason);
}

// For messages: the start of a cut event, on one line.
std::string Excerpt(std::string_view text) {
  constexpr size_t kMax = 120;
  std::string out(text.substr(0, kMax));
  if (text.size() > kMax) out += "...";
  return out;
}

}  // namespace

WatchStreamFramer::WatchStreamFramer(size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

void WatchStreamFramer::Feed(std::string_view bytes) { buffer_.append(bytes); }

std::string_view WatchStreamFramer::pending() const {
  std::string_view rest(buffer_);
  if (depth_ > 0) return rest.substr(start_);
  rest.remove_prefix(scan_);
  while (!rest.empty() && IsSpace(rest.front())) rest.remove_prefix(1);
  return rest;
}

std::optional<std::string> WatchStreamFramer::Next() {
  while (scan_ < buffer_.size()) {
    char c = buffer_[scan_];
    if (depth_ == 0) {
      // Between events: skip whitespace; an event starts with '{'.
      if (IsSpace(c)) {
        ++scan_;
        continue;
      }
      if (c != '{') {
        constexpr char kHex[] = "0123456789abcdef";
        Fail(std::string("unexpected byte 0x") + kHex[(c >> 4) & 0xf] + kHex[c & 0xf] +
             " between events");
      }
      start_ = scan_;
      depth_ = 1;
      ++scan_;
      continue;
    }
    // Inside an event, up to the size limit.
    const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data());
    const size_t end = std::min(buffer_.size(), start_ + max_event_bytes_);
    size_t i = scan_;
    bool closed = false;
    while (i < end) {
      if (!escaped_) {
        const bool* stop = in_string_ ? kStop.in_string : kStop.outside;
        while (i < end && !stop[p[i]]) ++i;
        if (i == end) break;
      }
      const char c = static_cast<char>(p[i++]);
      if (c == '\n') {
        // Raw newlines are not valid inside JSON strings either, so this holds in and out of them.
        Fail("malformed JSON: the line ends inside an event: " +
             Excerpt(std::string_view(buffer_).substr(start_, i - 1 - start_)));
      }
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
      } else if (--depth_ == 0) {  // '}' or ']'
        closed = true;
        break;
      }
    }
    scan_ = i;
    if (closed) {
      std::string event = buffer_.substr(start_, scan_ - start_);
      // Drop consumed bytes once they are the larger part of the buffer (amortised O(1)).
      if (scan_ > buffer_.size() / 2) {
        buffer_.erase(0, scan_);
        scan_ = 0;
      }
      start_ = scan_;
      return event;
    }
    if (scan_ < buffer_.size()) {
      Fail("event larger than " + std::to_string(max_event_bytes_) + " bytes");
    }
  }
  if (depth_ == 0) {
    buffer_.clear();
    scan_ = start_ = 0;
  }
  return std::nullopt;
}

}  // namespace sluice::api
