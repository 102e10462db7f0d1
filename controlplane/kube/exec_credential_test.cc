#include "controlplane/kube/exec_credential.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "controlplane/kube/errors.h"

namespace sluice::kube {
namespace {

const std::string kData = KUBE_TESTDATA;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(kData + "/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ExecConfig Plugin(std::vector<std::string> args,
                  std::string version = "client.authentication.k8s.io/v1") {
  ExecConfig e;
  e.command = kData + "/exec-plugin.sh";
  e.args = std::move(args);
  e.api_version = std::move(version);
  e.interactive_mode = "Never";
  e.origin = "kubeconfig test: users[u].user.exec";
  return e;
}

template <typename Fn>
std::string CredentialErrorOf(Fn fn) {
  try {
    fn();
  } catch (const CredentialError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ExecCredentialTest, ParsesTheFixture) {
  ExecConfig e = Plugin({});
  ExecCredential c = ParseExecCredential(ReadTestdata("exec-credential-response.json"), e);
  EXPECT_EQ(c.token, "PLACEHOLDER-BEARER-TOKEN");
  ASSERT_TRUE(c.expiration);
  EXPECT_EQ(*c.expiration, *ParseRfc3339("2024-05-01T11:00:00Z"));
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c.expiration), 1714561200);
}

TEST(ExecCredentialTest, ExecInfoMatchesTheFixture) {
  ExecConfig e = Plugin({});
  e.provide_cluster_info = true;
  ExecClusterInfo cluster;
  cluster.server = "https://10.0.0.1:6443";
  cluster.tls_server_name = "kubernetes";
  cluster.ca_pem =
      "-----BEGIN CERTIFICATE-----\nPLACEHOLDER-NOT-A-REAL-CERT\n-----END CERTIFICATE-----\n";
  EXPECT_EQ(nlohmann::json::parse(ExecInfoJson(e, cluster)),
            nlohmann::json::parse(ReadTestdata("exec-credential-env-KUBERNETES_EXEC_INFO.json")));
  e.provide_cluster_info = false;
  EXPECT_EQ(
      ExecInfoJson(e, cluster),
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}})");
}

TEST(ExecCredentialTest, ParseErrors) {
  ExecConfig e = Plugin({});
  EXPECT_EQ(CredentialErrorOf([&] { ParseExecCredential("nope", e); }),
            "exec plugin " + e.command + ": output is not an ExecCredential JSON object");
  EXPECT_NE(
      CredentialErrorOf([&] {
        ParseExecCredential(
            R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"t"}})",
            e);
      })
          .find("configured for client.authentication.k8s.io/v1 but the plugin returned "
                "\"client.authentication.k8s.io/v1beta1\""),
      std::string::npos);
  EXPECT_NE(
      CredentialErrorOf([&] {
        ParseExecCredential(
            R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}})",
            e);
      }).find("neither a token nor a client certificate"),
      std::string::npos);
  EXPECT_NE(
      CredentialErrorOf([&] {
        ParseExecCredential(
            R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"x"}})",
            e);
      }).find("clientCertificateData without clientKeyData"),
      std::string::npos);
  EXPECT_NE(
      CredentialErrorOf([&] {
        ParseExecCredential(
            R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"tomorrow"}})",
            e);
      }).find("expirationTimestamp \"tomorrow\" is not an RFC 3339 time"),
      std::string::npos);
  ExecCredential cert = ParseExecCredential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"C","clientKeyData":"K"}})",
      e);
  EXPECT_EQ(cert.client_certificate_pem, "C");
  EXPECT_EQ(cert.client_key_pem, "K");
  EXPECT_FALSE(cert.expiration);
}

TEST(ExecCredentialTest, RunsThePluginV1AndV1beta1) {
  for (std::string version :
       {"client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"}) {
    ExecConfig e = Plugin({"token"}, version);
    e.env = {{"EXEC_TOKEN", "tok-" + version.substr(version.rfind('/') + 1)},
             {"EXEC_EXPIRY", "2030-01-02T03:04:05.5+01:00"}};
    ExecCredential c = RunExecPlugin(e, {});
    EXPECT_EQ(c.token, "tok-" + version.substr(version.rfind('/') + 1));
    ASSERT_TRUE(c.expiration);
    EXPECT_EQ(
        std::chrono::duration_cast<std::chrono::milliseconds>(c.expiration->time_since_epoch())
            .count(),
        1893549845500);
  }
}

TEST(ExecCredentialTest, PluginSeesEnvAndClusterInfo) {
  ExecConfig e = Plugin({"echo-info"});
  e.env = {{"HELPER_MODE", "ci"}};
  e.provide_cluster_info = true;
  ExecClusterInfo cluster{.server = "https://127.0.0.1:9", .insecure_skip_tls_verify = true};
  ExecCredential c = RunExecPlugin(e, cluster);
  auto bar = c.token.find('|');
  ASSERT_NE(bar, std::string::npos) << c.token;
  EXPECT_EQ(c.token.substr(0, bar), "ci");
  auto info = nlohmann::json::parse(c.token.substr(bar + 1));
  EXPECT_EQ(info["kind"], "ExecCredential");
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_EQ(info["spec"]["cluster"]["server"], "https://127.0.0.1:9");
  EXPECT_EQ(info["spec"]["cluster"]["insecure-skip-tls-verify"], true);
}

TEST(ExecCredentialTest, PluginFailures) {
  ExecConfig fail = Plugin({"fail"});
  EXPECT_EQ(CredentialErrorOf([&] { RunExecPlugin(fail, {}); }),
            "exec plugin " + fail.command + ": exit status 3: plugin says: no credentials for you");
  ExecConfig garbage = Plugin({"garbage"});
  EXPECT_NE(CredentialErrorOf([&] { RunExecPlugin(garbage, {}); }).find("not an ExecCredential"),
            std::string::npos);
  ExecConfig missing = Plugin({});
  missing.command = "sluice-no-such-credential-helper";
  missing.install_hint = "install it with: apt-get install nothing";
  std::string err = CredentialErrorOf([&] { RunExecPlugin(missing, {}); });
  EXPECT_NE(err.find("exec plugin sluice-no-such-credential-helper: cannot run: No such file or "
                     "directory; install it with"),
            std::string::npos)
      << err;
  ExecConfig always = Plugin({"token"});
  always.interactive_mode = "Always";
  EXPECT_NE(CredentialErrorOf([&] { RunExecPlugin(always, {}); }).find("needs a terminal"),
            std::string::npos);
}

TEST(ExecCredentialTest, PluginTimeout) {
  ExecConfig slow;
  slow.command = "/bin/sleep";
  slow.args = {"5"};
  slow.api_version = "client.authentication.k8s.io/v1";
  auto start = std::chrono::steady_clock::now();
  EXPECT_NE(CredentialErrorOf([&] {
              RunExecPlugin(slow, {}, std::chrono::milliseconds(200));
            }).find("no answer within"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(Rfc3339Test, Formats) {
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*ParseRfc3339("1970-01-01T00:00:00Z")), 0);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*ParseRfc3339("1970-01-01T01:00:00+01:00")), 0);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*ParseRfc3339("2000-03-01T00:00:00Z")), 951868800);
  EXPECT_FALSE(ParseRfc3339("2024-05-01 11:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("2024-05-01T11:00:00"));
  EXPECT_FALSE(ParseRfc3339("2024-13-01T11:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("2024-05-01T11:00:00.Z"));
  EXPECT_FALSE(ParseRfc3339("2024-05-01T11:00:00Zjunk"));
}

}  // namespace
}  // namespace sluice::kube
