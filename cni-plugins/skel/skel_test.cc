#include "cni-plugins/skel/skel.h"

#include <gtest/gtest.h>

#include <map>

namespace sluice::cni {
namespace {

using nlohmann::json;

Environment Env(std::map<std::string, std::string> vars) {
  return ParseEnvironment([vars = std::move(vars)](const char* name) -> const char* {
    static thread_local std::string value;
    auto it = vars.find(name);
    if (it == vars.end()) return nullptr;
    value = it->second;
    return value.c_str();
  });
}

Environment AddEnv() {
  return Env({{"CNI_COMMAND", "ADD"},
              {"CNI_CONTAINERID", "c1"},
              {"CNI_NETNS", "/var/run/netns/x"},
              {"CNI_IFNAME", "eth0"},
              {"CNI_PATH", "/opt/cni/bin:/usr/lib/cni"}});
}

Plugin EchoPlugin() {
  Plugin p;
  p.known_args = {"IP"};
  p.add = [](const Request& req) {
    Result r;
    r.ips.push_back({IpPrefix::MustParse("10.0.0.5/24"), IpAddress::MustParse("10.0.0.1"), 0});
    r.interfaces.push_back({.name = req.env.ifname, .mac = "", .sandbox = req.env.netns});
    return r;
  };
  p.del = [](const Request&) {};
  p.check = [](const Request&) {};
  return p;
}

int CodeOf(const std::string& out) { return json::parse(out)["code"].get<int>(); }

TEST(Environment, RejectsMissingAndInvalidVariables) {
  try {
    Env({});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kInvalidEnvironment);
    EXPECT_NE(e.msg().find("CNI_COMMAND"), std::string::npos);
  }
  try {
    Env({{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c1"}, {"CNI_IFNAME", "eth0"}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kInvalidEnvironment);
    EXPECT_NE(e.msg().find("CNI_NETNS"), std::string::npos);
  }
  EXPECT_THROW(Env({{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "-bad"}, {"CNI_NETNS", "/x"},
                    {"CNI_IFNAME", "eth0"}}),
               Error);
  EXPECT_THROW(Env({{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c"}, {"CNI_NETNS", "/x"},
                    {"CNI_IFNAME", "0123456789abcdef"}}),
               Error);
  EXPECT_THROW(Env({{"CNI_COMMAND", "FROB"}}), Error);
  // DEL may come without a netns.
  auto del = Env({{"CNI_COMMAND", "DEL"}, {"CNI_CONTAINERID", "c1"}, {"CNI_IFNAME", "eth0"}});
  EXPECT_EQ(del.command, Command::kDel);
  // GC and STATUS need no attachment.
  EXPECT_EQ(Env({{"CNI_COMMAND", "GC"}}).command, Command::kGc);
}

TEST(Environment, ParsesCniArgs) {
  auto env = Env({{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c1"}, {"CNI_NETNS", "/x"},
                  {"CNI_IFNAME", "eth0"},
                  {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web-0;IP=10.1.1.1"}});
  EXPECT_EQ(env.args.at("IP"), "10.1.1.1");
  EXPECT_EQ(env.args.at("K8S_POD_NAME"), "web-0");
}

TEST(Execute, AddAnswersInTheConfigVersion) {
  auto [code, out] = Execute(EchoPlugin(), AddEnv(),
                             R"({"cniVersion":"0.4.0","name":"net1","type":"echo"})");
  ASSERT_EQ(code, 0) << out;
  auto j = json::parse(out);
  EXPECT_EQ(j["cniVersion"], "0.4.0");
  EXPECT_EQ(j["ips"][0]["version"], "4");
  auto [code1, out1] = Execute(EchoPlugin(), AddEnv(),
                               R"({"cniVersion":"1.0.0","name":"net1","type":"echo"})");
  ASSERT_EQ(code1, 0);
  EXPECT_FALSE(json::parse(out1)["ips"][0].contains("version"));
}

TEST(Execute, ErrorsCarryTheSpecCodes) {
  auto p = EchoPlugin();
  EXPECT_EQ(CodeOf(Execute(p, AddEnv(), "{not json").second), kDecodeFailure);
  EXPECT_EQ(CodeOf(Execute(p, AddEnv(), R"({"cniVersion":"9.9.9","name":"n"})").second),
            kIncompatibleVersion);
  EXPECT_EQ(CodeOf(Execute(p, AddEnv(), R"({"cniVersion":"1.0.0"})").second), kInvalidConfig);
  EXPECT_EQ(CodeOf(Execute(p, AddEnv(), R"({"name":"n"})").second), kIncompatibleVersion);
  EXPECT_EQ(CodeOf(Execute(p, AddEnv(), R"({"cniVersion":"1.0.0","name":"bad name"})").second),
            kInvalidConfig);
  auto env = AddEnv();
  env.command = Command::kCheck;
  EXPECT_EQ(CodeOf(Execute(p, env, R"({"cniVersion":"0.3.1","name":"n"})").second),
            kIncompatibleVersion);
  env.command = Command::kGc;
  EXPECT_EQ(CodeOf(Execute(p, env, R"({"cniVersion":"1.0.0","name":"n"})").second),
            kIncompatibleVersion);
  auto [code, out] = Execute(p, AddEnv(), R"({"cniVersion":"1.0.0","name":"n","mtu":"x"})");
  EXPECT_EQ(code, 0) << "unknown keys are not the skeleton's business: " << out;
  auto err = json::parse(Execute(p, AddEnv(), "{").second);
  EXPECT_TRUE(err.contains("cniVersion"));
  EXPECT_TRUE(err.contains("msg"));
}

TEST(Execute, UnknownCniArgsAreRefusedUnlessIgnored) {
  auto env = AddEnv();
  env.args = {{"FOO", "bar"}};
  auto [code, out] = Execute(EchoPlugin(), env, R"({"cniVersion":"1.0.0","name":"n"})");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("FOO=bar"), std::string::npos);
  env.args["IgnoreUnknown"] = "1";
  EXPECT_EQ(Execute(EchoPlugin(), env, R"({"cniVersion":"1.0.0","name":"n"})").first, 0);
}

TEST(Execute, VersionEchoesASupportedVersion) {
  auto env = Env({{"CNI_COMMAND", "VERSION"}});
  auto j = json::parse(Execute(EchoPlugin(), env, R"({"cniVersion":"0.4.0"})").second);
  EXPECT_EQ(j["cniVersion"], "0.4.0");
  EXPECT_EQ(j["supportedVersions"].size(), 5u);
  j = json::parse(Execute(EchoPlugin(), env, "").second);
  EXPECT_EQ(j["cniVersion"], "1.1.0");
}

TEST(Execute, GcReadsBothAttachmentKeys) {
  Plugin p = EchoPlugin();
  std::set<Attachment> seen;
  p.gc = [&](const Request& req) { seen = req.valid_attachments; };
  auto env = Env({{"CNI_COMMAND", "GC"}});
  auto [code, out] = Execute(p, env, R"({"cniVersion":"1.1.0","name":"n",
      "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
      "cni.dev/attachments":[{"containerID":"b","ifname":"eth1"}]})");
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen.contains({"b", "eth1"}));
}

TEST(Execute, CheckNeedsPrevResult) {
  auto env = AddEnv();
  env.command = Command::kCheck;
  auto [code, out] = Execute(EchoPlugin(), env, R"({"cniVersion":"1.0.0","name":"n"})");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("prevResult"), std::string::npos);
  std::tie(code, out) = Execute(EchoPlugin(), env, R"({"cniVersion":"1.0.0","name":"n",
      "prevResult":{"ips":[{"address":"10.0.0.9/24"}]}})");
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = Execute(EchoPlugin(), env, R"({"cniVersion":"1.0.0","name":"n",
      "prevResult":{"ips":[{"address":"10.0.0.999/24"}]}})");
  EXPECT_EQ(CodeOf(out), kDecodeFailure);
}

}  // namespace
}  // namespace sluice::cni
