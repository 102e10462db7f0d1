#include "cni-plugins/bridge/bridge.h"

int main() { return sluice::cni::Run(sluice::bridge::MakePlugin()); }
