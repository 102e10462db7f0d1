#include "cni-plugins/host-local/host_local.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace sluice::hostlocal {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class HostLocalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-hl-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  json Config(json ipam, std::string version = "1.0.0") {
    ipam["type"] = "host-local";
    ipam["dataDir"] = dir_;
    return {{"cniVersion", version}, {"name", "net1"}, {"type", "bridge"}, {"ipam", ipam}};
  }
  json Subnet(const std::string& subnet) {
    return {{"ranges", json::array({json::array({{{"subnet", subnet}}})})}};
  }

  std::pair<int, json> Run(cni::Command cmd, const json& config, const std::string& cid = "c1",
                           const std::string& ifname = "eth0", std::map<std::string, std::string> args = {}) {
    cni::Environment env;
    env.command = cmd;
    env.command_name = cmd == cni::Command::kAdd ? "ADD" : cmd == cni::Command::kDel ? "DEL" : "X";
    env.container_id = cid;
    env.ifname = ifname;
    env.netns = "/proc/self/ns/net";
    env.args = std::move(args);
    auto [code, out] = cni::Execute(MakePlugin(), env, config.dump());
    return {code, out.empty() ? json() : json::parse(out)};
  }
  std::string Ip(const json& result, int i = 0) {
    std::string a = result["ips"][i]["address"];
    return a.substr(0, a.find('/'));
  }
  std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
};

TEST_F(HostLocalTest, AllocatesInOrderSkippingGatewayWithReferenceStoreLayout) {
  auto cfg = Config(Subnet("10.10.0.0/24"));
  auto [code, r] = Run(cni::Command::kAdd, cfg, "c1");
  ASSERT_EQ(code, 0) << r;
  EXPECT_EQ(r["ips"][0]["address"], "10.10.0.2/24");
  EXPECT_EQ(r["ips"][0]["gateway"], "10.10.0.1");
  EXPECT_EQ(ReadFile(dir_ + "/net1/10.10.0.2"), "c1\r\neth0");
  EXPECT_EQ(ReadFile(dir_ + "/net1/last_reserved_ip.0"), "10.10.0.2");
  EXPECT_TRUE(fs::exists(dir_ + "/net1/lock"));
  auto [code2, r2] = Run(cni::Command::kAdd, cfg, "c2");
  EXPECT_EQ(Ip(r2), "10.10.0.3");
  // Round robin: a freed address is not reused before the range wraps.
  ASSERT_EQ(Run(cni::Command::kDel, cfg, "c1").first, 0);
  EXPECT_FALSE(fs::exists(dir_ + "/net1/10.10.0.2"));
  EXPECT_EQ(Ip(Run(cni::Command::kAdd, cfg, "c3").second), "10.10.0.4");
}

TEST_F(HostLocalTest, ExhaustionNamesTheRangeAndLeavesNothing) {
  auto ipam = Subnet("10.10.0.0/29");  // .1 gateway, .2-.6 usable
  auto cfg = Config(ipam);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Run(cni::Command::kAdd, cfg, "c" + std::to_string(i)).first, 0);
  auto [code, err] = Run(cni::Command::kAdd, cfg, "c9");
  EXPECT_EQ(code, 1);
  EXPECT_NE(err["msg"].get<std::string>().find("10.10.0.1-10.10.0.6"), std::string::npos) << err;
  // A dual-stack ADD that fails on the second family gives back the first.
  json dual = {{"ranges", json::array({json::array({{{"subnet", "fd00::/120"}}}),
                                      json::array({{{"subnet", "10.10.0.0/29"}}})})}};
  auto [code2, err2] = Run(cni::Command::kAdd, Config(dual), "c9");
  EXPECT_EQ(code2, 1);
  EXPECT_FALSE(fs::exists(dir_ + "/net1/fd00::2")) << err2;
}

TEST_F(HostLocalTest, DualStackAndMultipleRangesWrap) {
  json ipam = {{"ranges",
                json::array({json::array({{{"subnet", "10.1.0.0/30"}},
                                          {{"subnet", "10.2.0.0/24"},
                                           {"rangeStart", "10.2.0.10"},
                                           {"rangeEnd", "10.2.0.11"}}}),
                             json::array({{{"subnet", "fd00:1::/64"}}})})},
               {"routes", json::array({{{"dst", "0.0.0.0/0"}}, {{"dst", "::/0"}}})}};
  auto cfg = Config(ipam);
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    auto [code, r] = Run(cni::Command::kAdd, cfg, "c" + std::to_string(i));
    ASSERT_EQ(code, 0) << r;
    got.push_back(Ip(r, 0));
    EXPECT_EQ(r["ips"][1]["address"].get<std::string>().substr(0, 6), "fd00:1");
    EXPECT_EQ(r["routes"].size(), 2u);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"10.1.0.2", "10.2.0.10", "10.2.0.11"}));
  ASSERT_EQ(Run(cni::Command::kDel, cfg, "c0").first, 0);
  EXPECT_EQ(Ip(Run(cni::Command::kAdd, cfg, "c3").second), "10.1.0.2");
}

TEST_F(HostLocalTest, RequestedAddressesFromEverySource) {
  auto cfg = Config(Subnet("10.10.0.0/24"));
  auto [code, r] = Run(cni::Command::kAdd, cfg, "c1", "eth0", {{"IP", "10.10.0.50"}});
  ASSERT_EQ(code, 0) << r;
  EXPECT_EQ(Ip(r), "10.10.0.50");
  auto cfg2 = cfg;
  cfg2["runtimeConfig"] = {{"ips", {"10.10.0.60/24"}}};
  EXPECT_EQ(Ip(Run(cni::Command::kAdd, cfg2, "c2").second), "10.10.0.60");
  auto cfg3 = cfg;
  cfg3["args"] = {{"cni", {{"ips", {"10.10.0.70"}}}}};
  EXPECT_EQ(Ip(Run(cni::Command::kAdd, cfg3, "c3").second), "10.10.0.70");
  // Taken, gateway, and out of range are refused with a message naming the address.
  auto [c4, e4] = Run(cni::Command::kAdd, cfg, "c4", "eth0", {{"IP", "10.10.0.50"}});
  EXPECT_EQ(c4, 1);
  EXPECT_NE(e4["msg"].get<std::string>().find("10.10.0.50"), std::string::npos);
  auto [c5, e5] = Run(cni::Command::kAdd, cfg, "c5", "eth0", {{"IP", "10.10.0.1"}});
  EXPECT_NE(e5["msg"].get<std::string>().find("gateway"), std::string::npos);
  auto [c6, e6] = Run(cni::Command::kAdd, cfg, "c6", "eth0", {{"IP", "10.99.0.1"}});
  EXPECT_EQ(e6["code"], cni::kInvalidConfig);
}

TEST_F(HostLocalTest, DuplicateAllocationRefused) {
  auto cfg = Config(Subnet("10.10.0.0/24"));
  ASSERT_EQ(Run(cni::Command::kAdd, cfg).first, 0);
  auto [code, err] = Run(cni::Command::kAdd, cfg);
  EXPECT_EQ(code, 1);
  EXPECT_NE(err["msg"].get<std::string>().find("duplicate allocation"), std::string::npos);
  // Another interface of the same container is a different attachment.
  EXPECT_EQ(Run(cni::Command::kAdd, cfg, "c1", "eth1").first, 0);
}

TEST_F(HostLocalTest, DelIsIdempotentAndMatchesOldFormat) {
  auto cfg = Config(Subnet("10.10.0.0/24"));
  EXPECT_EQ(Run(cni::Command::kDel, cfg, "nobody").first, 0);
  fs::create_directories(dir_ + "/net1");
  std::ofstream(dir_ + "/net1/10.10.0.9") << "old-container";
  EXPECT_EQ(Run(cni::Command::kDel, cfg, "old-container").first, 0);
  EXPECT_FALSE(fs::exists(dir_ + "/net1/10.10.0.9"));
}

TEST_F(HostLocalTest, CheckFindsTheReservation) {
  auto cfg = Config(Subnet("10.10.0.0/24"));
  auto [code, r] = Run(cni::Command::kAdd, cfg);
  ASSERT_EQ(code, 0);
  auto check = cfg;
  check["prevResult"] = r;
  EXPECT_EQ(Run(cni::Command::kCheck, check).first, 0);
  fs::remove(dir_ + "/net1/10.10.0.2");
  auto [code2, err] = Run(cni::Command::kCheck, check);
  EXPECT_EQ(code2, 1);
  EXPECT_NE(err["msg"].get<std::string>().find("Failed to find address"), std::string::npos);
}

TEST_F(HostLocalTest, GcKeepsOnlyValidAttachments) {
  auto cfg = Config(Subnet("10.10.0.0/24"), "1.1.0");
  for (const char* c : {"a", "b", "c"}) ASSERT_EQ(Run(cni::Command::kAdd, cfg, c).first, 0);
  std::ofstream(dir_ + "/net1/10.10.0.100") << "";  // a claim with no owner
  std::ofstream(dir_ + "/net1/.sluice-tmp-999") << "x";
  auto gc = cfg;
  gc["cni.dev/valid-attachments"] = {{{"containerID", "b"}, {"ifname", "eth0"}}};
  ASSERT_EQ(Run(cni::Command::kGc, gc).first, 0);
  EXPECT_FALSE(fs::exists(dir_ + "/net1/10.10.0.2"));
  EXPECT_TRUE(fs::exists(dir_ + "/net1/10.10.0.3"));
  EXPECT_FALSE(fs::exists(dir_ + "/net1/10.10.0.4"));
  EXPECT_FALSE(fs::exists(dir_ + "/net1/10.10.0.100"));
  EXPECT_FALSE(fs::exists(dir_ + "/net1/.sluice-tmp-999"));
  EXPECT_TRUE(fs::exists(dir_ + "/net1/last_reserved_ip.0"));
}

TEST_F(HostLocalTest, StatusReportsAFullRange) {
  auto cfg = Config(Subnet("10.10.0.0/30"), "1.1.0");  // one usable address
  EXPECT_EQ(Run(cni::Command::kStatus, cfg).first, 0);
  ASSERT_EQ(Run(cni::Command::kAdd, cfg).first, 0);
  auto [code, err] = Run(cni::Command::kStatus, cfg);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(err["code"], cni::kNotAvailable);
}

TEST_F(HostLocalTest, BadRangesAreInvalidConfig) {
  for (const char* subnet : {"10.10.0.1/24", "10.10.0.0/31", "banana", "10.10.0.0/33"}) {
    auto [code, err] = Run(cni::Command::kAdd, Config(Subnet(subnet)));
    EXPECT_EQ(code, 1);
    EXPECT_EQ(err["code"], cni::kInvalidConfig) << subnet << " " << err;
  }
  json overlap = {{"ranges", json::array({json::array({{{"subnet", "10.0.0.0/16"}}}),
                                          json::array({{{"subnet", "10.0.1.0/24"}}})})}};
  auto [code, err] = Run(cni::Command::kAdd, Config(overlap));
  EXPECT_NE(err["msg"].get<std::string>().find("overlaps"), std::string::npos);
  json outside = {{"ranges", json::array({json::array(
                                 {{{"subnet", "10.0.0.0/24"}, {"rangeStart", "10.0.1.5"}}})})}};
  EXPECT_EQ(Run(cni::Command::kAdd, Config(outside)).second["code"], cni::kInvalidConfig);
}

TEST_F(HostLocalTest, ResolvConfBecomesDns) {
  std::string path = dir_ + "/resolv.conf";
  std::ofstream(path) << "# comment\nnameserver 10.96.0.10\nnameserver 8.8.8.8\n"
                         "search svc.cluster.local cluster.local\noptions ndots:5\ndomain example\n";
  auto ipam = Subnet("10.10.0.0/24");
  ipam["resolvConf"] = path;
  auto [code, r] = Run(cni::Command::kAdd, Config(ipam));
  ASSERT_EQ(code, 0) << r;
  EXPECT_EQ(r["dns"]["nameservers"], json({"10.96.0.10", "8.8.8.8"}));
  EXPECT_EQ(r["dns"]["search"], json({"svc.cluster.local", "cluster.local"}));
  EXPECT_EQ(r["dns"]["options"], json({"ndots:5"}));
  EXPECT_EQ(r["dns"]["domain"], "example");
}

}  // namespace
}  // namespace sluice::hostlocal
