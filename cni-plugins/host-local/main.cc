#include "cni-plugins/host-local/host_local.h"

int main() { return sluice::cni::Run(sluice::hostlocal::MakePlugin()); }
