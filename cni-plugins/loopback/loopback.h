// The loopback plugin: brings "lo" up in the pod (ADD) and down again (DEL).
#pragma once

#include "cni-plugins/skel/skel.h"

namespace sluice::loopback {

cni::Plugin MakePlugin();

}  // namespace sluice::loopback
