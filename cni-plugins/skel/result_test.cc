#include "cni-plugins/skel/result.h"

#include <gtest/gtest.h>

#include "cni-plugins/skel/cni_error.h"

namespace sluice::cni {
namespace {

using nlohmann::json;

const char* kResult110 = R"({
  "cniVersion": "1.1.0",
  "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1400},
                 {"name": "eth0", "mac": "11:22:33:44:55:66", "sandbox": "/var/run/netns/p"}],
  "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 1},
          {"address": "fd00::5/64", "interface": 1}],
  "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1", "priority": 10}],
  "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
})";

TEST(Result, RoundTripsEveryVersion) {
  auto r = Result::FromJson(json::parse(kResult110));
  ASSERT_EQ(r.ips.size(), 2u);
  EXPECT_EQ(r.ips[0].address.ToString(), "10.244.1.5/24");
  EXPECT_EQ(r.ips[1].interface, 1);
  EXPECT_EQ(r.routes[0].priority, 10);
  for (const char* v : {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
    auto j = r.ToJson(v);
    EXPECT_EQ(j["cniVersion"], v);
    auto back = Result::FromJson(j);
    EXPECT_EQ(back.ips, r.ips) << v;
    EXPECT_EQ(back.dns, r.dns) << v;
  }
  auto old = r.ToJson("0.3.1");
  EXPECT_EQ(old["ips"][1]["version"], "6");
  EXPECT_FALSE(old["interfaces"][0].contains("mtu"));
  EXPECT_FALSE(old["routes"][0].contains("priority"));
  EXPECT_EQ(r.ToJson("1.1.0")["interfaces"][0]["mtu"], 1400);
}

TEST(Result, NamesTheBadField) {
  try {
    Result::FromJson(json::parse(R"({"ips":[{"address":"10.0.0.1"}]})"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kInvalidConfig);
    EXPECT_NE(e.msg().find("ips[].address"), std::string::npos);
  }
  EXPECT_THROW(Result::FromJson(json::parse(R"({"routes":[{"gw":"10.0.0.1"}]})")), Error);
  EXPECT_THROW(Result::FromJson(json::parse(R"({"ips":"x"})")), Error);
  EXPECT_THROW(Result::FromJson(json::parse(R"([1])")), Error);
}

}  // namespace
}  // namespace sluice::cni
