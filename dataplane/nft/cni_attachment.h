// Which CNI attachment (network, container, interface) an nft object belongs to, written into
// the object's comment so that DEL and GC find their objects without any other state.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::nft {

struct CniAttachment {
  std::string network;       // the CNI network name
  std::string container_id;  // CNI_CONTAINERID
  std::string ifname;        // CNI_IFNAME (the interface inside the pod)

  // "net=<network> id=<container_id> if=<ifname>". Throws std::invalid_argument if a field is
  // empty or holds a space, a quote or a control character (CNI forbids them anyway).
  std::string ToComment() const;
  // Inverse of ToComment; nullopt for comments written by anyone else.
  static std::optional<CniAttachment> FromComment(std::string_view comment);

  auto operator<=>(const CniAttachment&) const = default;
};

}  // namespace sluice::nft
