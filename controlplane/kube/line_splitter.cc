#include "controlplane/kube/line_splitter.h"

namespace sluice::kube {

namespace {
std::string_view Trim(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}
}  // namespace

LineSplitter::Result LineSplitter::Feed(std::string_view data,
                                        const std::function<bool(std::string_view)>& on_line) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      if (pending_.size() + data.size() > max_line_) return Result::kTooLong;
      pending_.append(data);
      return Result::kOk;
    }
    std::string_view head = data.substr(0, nl);
    data.remove_prefix(nl + 1);
    std::string_view line;
    if (pending_.empty()) {
      line = head;  // the common case: the whole line is in this chunk, no copy
    } else {
      if (pending_.size() + head.size() > max_line_) return Result::kTooLong;
      pending_.append(head);
      line = pending_;
    }
    if (line.size() > max_line_) return Result::kTooLong;
    line = Trim(line);
    bool keep_going = line.empty() || on_line(line);
    pending_.clear();
    if (!keep_going) return Result::kStopped;
  }
  return Result::kOk;
}

}  // namespace sluice::kube
