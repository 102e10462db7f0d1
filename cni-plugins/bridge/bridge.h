// The bridge plugin: a Linux bridge on the node, a veth pair per container with the host end
// enslaved to it, addresses from the IPAM plugin, and optional gateway, masquerade and VLANs.
#pragma once

#include "cni-plugins/skel/skel.h"

namespace sluice::bridge {

cni::Result Add(const cni::Request& req);
void Del(const cni::Request& req);
void Check(const cni::Request& req);
void Gc(const cni::Request& req);
void Status(const cni::Request& req);

cni::Plugin MakePlugin();

}  // namespace sluice::bridge
