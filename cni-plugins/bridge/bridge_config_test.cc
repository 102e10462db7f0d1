#include "cni-plugins/bridge/bridge_config.h"

#include <gtest/gtest.h>

namespace sluice::bridge {
namespace {

using nlohmann::json;

cni::Request Req(json config, std::map<std::string, std::string> args = {}) {
  cni::Request req;
  config["cniVersion"] = "1.0.0";
  config["name"] = "net1";
  config["type"] = "bridge";
  req.config = config;
  req.name = "net1";
  req.cni_version = "1.0.0";
  if (config.contains("runtimeConfig")) req.runtime_config = config["runtimeConfig"];
  req.env.args = std::move(args);
  return req;
}

int CodeOf(const json& config) {
  try {
    ParseBridgeConfig(Req(config));
  } catch (const cni::Error& e) {
    return e.code();
  }
  return 0;
}

TEST(BridgeConfig, DefaultsMatchTheReference) {
  auto cfg = ParseBridgeConfig(Req(json::object()));
  EXPECT_EQ(cfg.bridge, "cni0");
  EXPECT_FALSE(cfg.is_gateway);
  EXPECT_FALSE(cfg.ip_masq);
  EXPECT_EQ(cfg.mtu, 0u);
  EXPECT_TRUE(cfg.ipam_type.empty());
}

TEST(BridgeConfig, EveryKeyIsRead) {
  auto cfg = ParseBridgeConfig(Req({{"bridge", "br-x"}, {"isDefaultGateway", true}, {"forceAddress", true},
                                    {"ipMasq", true}, {"mtu", 1400}, {"hairpinMode", true},
                                    {"vlan", 100}, {"vlanTrunk", {{{"id", 5}}, {{"minID", 10}, {"maxID", 20}}}},
                                    {"preserveDefaultVlan", true}, {"macspoofchk", true}, {"enabledad", true},
                                    {"portIsolation", true}, {"ipam", {{"type", "host-local"}}},
                                    {"dns", {{"nameservers", {"10.0.0.10"}}}}}));
  EXPECT_EQ(cfg.bridge, "br-x");
  EXPECT_TRUE(cfg.is_gateway) << "isDefaultGateway implies isGateway";
  EXPECT_TRUE(cfg.force_address && cfg.ip_masq && cfg.hairpin_mode && cfg.mac_spoof_check);
  EXPECT_TRUE(cfg.enable_dad && cfg.port_isolation && cfg.preserve_default_vlan);
  EXPECT_EQ(cfg.mtu, 1400u);
  EXPECT_EQ(cfg.vlan, 100);
  ASSERT_EQ(cfg.vlan_trunk.size(), 2u);
  EXPECT_EQ(cfg.vlan_trunk[1].vid_end, 20);
  EXPECT_EQ(cfg.ipam_type, "host-local");
  ASSERT_TRUE(cfg.dns);
  EXPECT_EQ(cfg.dns->nameservers[0], "10.0.0.10");
}

TEST(BridgeConfig, MacPrecedence) {
  auto with_all = Req({{"runtimeConfig", {{"mac", "02:00:00:00:00:01"}}},
                       {"args", {{"cni", {{"mac", "02:00:00:00:00:02"}}}}}},
                      {{"MAC", "02:00:00:00:00:03"}});
  EXPECT_EQ(ParseBridgeConfig(with_all).mac, "02:00:00:00:00:01");
  auto args_only = Req({{"args", {{"cni", {{"mac", "02:00:00:00:00:02"}}}}}}, {{"MAC", "02:00:00:00:00:03"}});
  EXPECT_EQ(ParseBridgeConfig(args_only).mac, "02:00:00:00:00:02");
  EXPECT_EQ(ParseBridgeConfig(Req(json::object(), {{"MAC", "02:00:00:00:00:03"}})).mac, "02:00:00:00:00:03");
}

TEST(BridgeConfig, InvalidCombinationsAndValues) {
  EXPECT_EQ(CodeOf({{"hairpinMode", true}, {"promiscMode", true}}), cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"vlan", 4095}}), cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"vlan", -1}}), cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"vlanTrunk", {{{"minID", 30}, {"maxID", 20}}}}}), cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"vlanTrunk", {{{"id", 0}}}}}), cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"vlan", 10}, {"vlanTrunk", {{{"minID", 5}, {"maxID", 20}}}}}), cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"disableContainerInterface", true}, {"ipam", {{"type", "host-local"}}}}),
            cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"mtu", "1500"}}), cni::kDecodeFailure);
  EXPECT_EQ(CodeOf({{"isGateway", "yes"}}), cni::kDecodeFailure);
  EXPECT_EQ(CodeOf({{"bridge", "a-very-long-bridge-name"}}), cni::kInvalidConfig);
  EXPECT_EQ(CodeOf({{"ipMasqBackend", "ipfw"}}), cni::kInvalidConfig);
}

}  // namespace
}  // namespace sluice::bridge
