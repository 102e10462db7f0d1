#include "dataplane/nft/cni_attachment.h"

#include <stdexcept>

namespace sluice::nft {
namespace {

void CheckField(std::string_view name, const std::string& value) {
  if (value.empty()) throw std::invalid_argument("CNI attachment: empty " + std::string(name));
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f || c == '"' || c == '\\') {
      throw std::invalid_argument("CNI attachment: " + std::string(name) + " \"" + value +
                                  "\" holds a character nft comments cannot carry");
    }
  }
}

}  // namespace

std::string CniAttachment::ToComment() const {
  CheckField("network", network);
  CheckField("container ID", container_id);
  CheckField("ifname", ifname);
  return "net=" + network + " id=" + container_id + " if=" + ifname;
}

std::optional<CniAttachment> CniAttachment::FromComment(std::string_view comment) {
  // Exactly three space-separated fields, in this order.
  static constexpr std::string_view kKeys[] = {"net=", "id=", "if="};
  std::string* fields[3];
  CniAttachment attachment;
  fields[0] = &attachment.network;
  fields[1] = &attachment.container_id;
  fields[2] = &attachment.ifname;
  for (int i = 0; i < 3; ++i) {
    if (!comment.starts_with(kKeys[i])) return std::nullopt;
    comment.remove_prefix(kKeys[i].size());
    size_t end = comment.find(' ');
    if ((i < 2) != (end != std::string_view::npos)) return std::nullopt;
    std::string_view value = comment.substr(0, end);
    if (value.empty()) return std::nullopt;
    *fields[i] = std::string(value);
    comment.remove_prefix(i < 2 ? end + 1 : comment.size());
  }
  return attachment;
}

}  // namespace sluice::nft
