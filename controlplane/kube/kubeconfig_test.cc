#include "controlplane/kube/kubeconfig.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "controlplane/kube/errors.h"

namespace sluice::kube {
namespace {

const std::string kData = KUBE_TESTDATA;

// Expects a ConfigError whose message contains every part.
template <typename Fn>
void ExpectConfigError(Fn fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

Kubeconfig Parse(const std::string& text) { return ParseKubeconfig(text, "/k/config", "/k"); }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kube-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

TEST(KubeconfigTest, ExampleJsonFixture) {
  Kubeconfig k = LoadKubeconfigFile(kData + "/kubeconfig-example.json");
  EXPECT_EQ(k.current_context, "kube-proxy@local");
  ASSERT_EQ(k.clusters.size(), 2u);
  const auto& local = k.clusters.at("local");
  EXPECT_EQ(local.server, "https://10.0.0.1:6443");
  EXPECT_EQ(local.tls_server_name, "kubernetes");
  EXPECT_EQ(
      local.certificate_authority_data,
      "-----BEGIN CERTIFICATE-----\nPLACEHOLDER-NOT-A-REAL-CERT\n-----END CERTIFICATE-----\n");
  EXPECT_TRUE(k.clusters.at("insecure-dev").insecure_skip_tls_verify);
  EXPECT_EQ(k.users.at("kube-proxy-sa").token_file,
            "/var/run/secrets/kubernetes.io/serviceaccount/token");
  EXPECT_EQ(k.users.at("static-token").token, "PLACEHOLDER-BEARER-TOKEN");
  EXPECT_NE(k.users.at("admin-cert").client_key_data.find("BEGIN EC PRIVATE KEY"),
            std::string::npos);
  const ExecConfig& exec = *k.users.at("exec-user").exec;
  EXPECT_EQ(exec.command, "example-credential-helper");  // no '/': looked up in PATH
  EXPECT_EQ(exec.args, (std::vector<std::string>{"get-token", "--cluster", "local"}));
  ASSERT_EQ(exec.env.size(), 1u);
  EXPECT_EQ(exec.env[0], (std::pair<std::string, std::string>{"HELPER_MODE", "ci"}));
  EXPECT_EQ(exec.api_version, "client.authentication.k8s.io/v1");
  EXPECT_EQ(exec.interactive_mode, "Never");
  EXPECT_TRUE(exec.provide_cluster_info);
  EXPECT_EQ(k.contexts.at("kube-proxy@local").ns, "kube-system");
}

TEST(KubeconfigTest, JsonFixtureContexts) {
  Kubeconfig k = LoadKubeconfigFile(kData + "/kubeconfig-example.json");
  RestConfig dev = RestConfigFromKubeconfig(k, "dev", "");
  EXPECT_EQ(dev.server, "https://127.0.0.1:6443");
  EXPECT_TRUE(dev.tls.insecure_skip_verify);
  EXPECT_EQ(dev.token, "PLACEHOLDER-BEARER-TOKEN");
  EXPECT_EQ(dev.origin, "kubeconfig " + kData + "/kubeconfig-example.json, context dev");
  // The current context names a token file that does not exist here.
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "", ""); },
                    {"kubeconfig " + kData +
                     "/kubeconfig-example.json: users[kube-proxy-sa].user.tokenFile: "
                     "cannot read /var/run/secrets/kubernetes.io/serviceaccount/token"});
}

TEST(KubeconfigTest, YamlWithRelativePaths) {
  Kubeconfig k = LoadKubeconfigFile(kData + "/kubeconfig-example.yaml");
  RestConfig current = RestConfigFromKubeconfig(k, "", "");
  EXPECT_EQ(current.server, "https://10.0.0.1:6443");
  EXPECT_EQ(current.token_file, kData + "/token");
  EXPECT_EQ(current.tls.server_name, "kubernetes");
  EXPECT_NE(current.tls.ca_pem.find("PLACEHOLDER-NOT-A-REAL-CERT"), std::string::npos);

  RestConfig dev = RestConfigFromKubeconfig(k, "dev", "");
  EXPECT_EQ(dev.token, "12345");  // a plain YAML scalar read as the string it is
  EXPECT_TRUE(dev.tls.insecure_skip_verify);

  RestConfig files = RestConfigFromKubeconfig(k, "files", "");
  EXPECT_EQ(files.server, "https://127.0.0.1:6443");  // no scheme + TLS settings: https
  EXPECT_EQ(files.tls.ca_file, kData + "/ca.pem");
  EXPECT_EQ(files.tls.cert_file, kData + "/client.pem");
  EXPECT_EQ(files.tls.key_file, kData + "/client-key.pem");

  RestConfig exec = RestConfigFromKubeconfig(k, "exec", "");
  ASSERT_TRUE(exec.exec);
  EXPECT_EQ(exec.exec->command, kData + "/./exec-plugin.sh");
  EXPECT_EQ(exec.exec->api_version, "client.authentication.k8s.io/v1beta1");
  EXPECT_EQ(exec.exec->interactive_mode, "IfAvailable");  // v1beta1's default
  EXPECT_EQ(exec.exec_cluster.server, "https://10.0.0.1:6443");
  EXPECT_EQ(exec.exec_cluster.tls_server_name, "kubernetes");
  EXPECT_NE(exec.exec_cluster.ca_pem.find("PLACEHOLDER"), std::string::npos);
}

TEST(KubeconfigTest, MasterOverridesServer) {
  Kubeconfig k = LoadKubeconfigFile(kData + "/kubeconfig-example.yaml");
  RestConfig rc = RestConfigFromKubeconfig(k, "dev", "https://192.0.2.1:443/");
  EXPECT_EQ(rc.server, "https://192.0.2.1:443");
  EXPECT_EQ(rc.token, "12345");
  // Master alone, no context at all.
  RestConfig bare = RestConfigFromKubeconfig(Kubeconfig{}, "", "127.0.0.1:8080");
  EXPECT_EQ(bare.server, "http://127.0.0.1:8080");
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "dev", "ftp://x"); },
                    {"--master: \"ftp://x\" is not an http or https URL"});
}

TEST(KubeconfigTest, ErrorsNameTheFileAndTheKey) {
  ExpectConfigError([] { Parse("clusters: [{name: a, cluster: {server: [1]}}]"); },
                    {"kubeconfig /k/config: clusters[a].cluster.server: must be a string"});
  ExpectConfigError(
      [] { Parse("clusters: [{name: a, cluster: {insecure-skip-tls-verify: maybe}}]"); },
      {"clusters[a].cluster.insecure-skip-tls-verify: must be true or false"});
  ExpectConfigError(
      [] { Parse("clusters: [{name: a, cluster: {certificate-authority-data: '!!'}}]"); },
      {"clusters[a].cluster.certificate-authority-data: not valid base64"});
  ExpectConfigError([] { Parse("users: [{user: {token: x}}]"); },
                    {"kubeconfig /k/config: users[0].name: missing"});
  ExpectConfigError([] { Parse("users: [{name: a}, {name: a}]"); },
                    {"users[1]: duplicate name \"a\" in users"});
  ExpectConfigError([] { Parse("users: {a: b}"); },
                    {"kubeconfig /k/config: users: must be a list"});
  ExpectConfigError([] { Parse("kind: Pod"); }, {"kind: \"Pod\" is not Config"});
  ExpectConfigError([] { Parse("clusters: [\n  - name: a\n   bad"); },
                    {"kubeconfig /k/config: invalid YAML: line"});
  ExpectConfigError([] { Parse("{\"clusters\": [}"); }, {"kubeconfig /k/config: invalid JSON"});
  ExpectConfigError([] { Parse("   \n"); }, {"kubeconfig /k/config: empty file"});
  ExpectConfigError([] { LoadKubeconfigFile("/nonexistent/kubeconfig"); },
                    {"kubeconfig /nonexistent/kubeconfig: cannot read: No such file or directory"});
}

TEST(KubeconfigTest, ExecErrors) {
  ExpectConfigError(
      [] {
        Parse(
            "users: [{name: e, user: {exec: {command: x, apiVersion: "
            "client.authentication.k8s.io/v1}}}]");
      },
      {"users[e].user.exec.interactiveMode: must be set for client.authentication.k8s.io/v1"});
  ExpectConfigError(
      [] {
        Parse(
            "users: [{name: e, user: {exec: {command: x, apiVersion: "
            "client.authentication.k8s.io/v1alpha1}}}]");
      },
      {"users[e].user.exec.apiVersion: client.authentication.k8s.io/v1alpha1 is no longer "
       "supported"});
  ExpectConfigError([] { Parse("users: [{name: e, user: {exec: {apiVersion: v}}}]"); },
                    {"users[e].user.exec.command: missing"});
  ExpectConfigError(
      [] {
        Parse(
            "users: [{name: e, user: {exec: {command: x, apiVersion: "
            "client.authentication.k8s.io/v1, interactiveMode: Sometimes}}}]");
      },
      {"interactiveMode: \"Sometimes\" is not one of Never, IfAvailable, Always"});
  ExpectConfigError(
      [] {
        Parse(
            "users: [{name: e, user: {exec: {command: x, apiVersion: "
            "client.authentication.k8s.io/v1beta1, env: [{value: v}]}}}]");
      },
      {"users[e].user.exec.env[0].name: missing"});
}

TEST(KubeconfigTest, ResolutionErrors) {
  Kubeconfig k = Parse(R"(
clusters:
- name: c
  cluster: {server: "https://h:1", insecure-skip-tls-verify: true, certificate-authority-data: "eA=="}
- name: plain
  cluster: {server: "https://h:1"}
users:
- name: certonly
  user: {client-certificate-data: "eA=="}
- name: gcp
  user: {auth-provider: {name: gcp}}
- name: nokey
  user: {client-key: missing.pem}
contexts:
- {name: insecure-ca, context: {cluster: c}}
- {name: nocluster, context: {cluster: gone}}
- {name: nouser, context: {cluster: plain, user: gone}}
- {name: certonly, context: {cluster: plain, user: certonly}}
- {name: gcp, context: {cluster: plain, user: gcp}}
- {name: nokey, context: {cluster: plain, user: nokey}}
current-context: missing
)");
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "", ""); },
                    {"kubeconfig /k/config: current-context: no context named \"missing\""});
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "other", ""); },
                    {"--context: no context named \"other\""});
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "insecure-ca", ""); },
                    {"clusters[c].cluster: insecure-skip-tls-verify cannot be combined"});
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "nocluster", ""); },
                    {"contexts[nocluster].context.cluster: no cluster named \"gone\""});
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "nouser", ""); },
                    {"contexts[nouser].context.user: no user named \"gone\""});
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "certonly", ""); },
                    {"users[certonly].user.client-key: missing (client-certificate is set)"});
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "gcp", ""); },
                    {"users[gcp].user.auth-provider: \"gcp\" is not supported"});
  ExpectConfigError([&] { RestConfigFromKubeconfig(k, "nokey", ""); },
                    {"users[nokey].user.client-key: cannot read /k/missing.pem"});
}

TEST(KubeconfigTest, MergesKubeconfigListFirstWins) {
  TempDir dir;
  std::string a = dir.Write("a", R"(
clusters: [{name: c, cluster: {server: "https://first:1"}}]
users: [{name: u, user: {token: first}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
)");
  std::string b = dir.Write("b", R"(
clusters: [{name: c, cluster: {server: "https://second:1"}}, {name: d, cluster: {server: "https://d:1"}}]
users: [{name: u, user: {token: second}}]
contexts: [{name: y, context: {cluster: d, user: u}}]
current-context: y
)");
  Kubeconfig k = LoadKubeconfigFiles({a, dir.path() + "/missing", b});
  EXPECT_EQ(k.current_context, "y");
  EXPECT_EQ(k.clusters.at("c").server, "https://first:1");
  RestConfig rc = RestConfigFromKubeconfig(k, "", "");
  EXPECT_EQ(rc.server, "https://d:1");
  EXPECT_EQ(rc.token, "first");
  ExpectConfigError([&] { LoadKubeconfigFiles({dir.path() + "/none"}); }, {"no such file"});
}

TEST(KubeconfigTest, Base64) {
  EXPECT_EQ(DecodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(DecodeBase64("aGVs\nbG8h"), "hello!");
  EXPECT_EQ(DecodeBase64(""), "");
  EXPECT_FALSE(DecodeBase64("aGVsbG8"));
  EXPECT_FALSE(DecodeBase64("aG=sbG8="));
  EXPECT_FALSE(DecodeBase64("a*=="));
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(DecodeBase64(EncodeBase64(s)), s);
  }
}

class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~EnvVar() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(InClusterTest, FromEnvironmentTokenAndCa) {
  TempDir dir;
  InClusterPaths paths{dir.Write("token", "abc\n"), dir.Write("ca.crt", "PEM")};
  EnvVar host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  EnvVar port("KUBERNETES_SERVICE_PORT", "443");
  RestConfig rc = InClusterConfig(paths);
  EXPECT_EQ(rc.server, "https://10.96.0.1:443");
  EXPECT_EQ(rc.token_file, paths.token_file);
  EXPECT_EQ(rc.tls.ca_file, paths.ca_file);
  EXPECT_EQ(rc.origin, "in-cluster");
  EnvVar host6("KUBERNETES_SERVICE_HOST", "fd00::1");
  EXPECT_EQ(InClusterConfig(paths).server, "https://[fd00::1]:443");
  // BuildRestConfig takes the in-cluster path when neither kubeconfig nor master is given.
  EXPECT_EQ(BuildRestConfig({.in_cluster = paths}).origin, "in-cluster");
}

TEST(InClusterTest, Errors) {
  TempDir dir;
  {
    EnvVar host("KUBERNETES_SERVICE_HOST", nullptr);
    EnvVar port("KUBERNETES_SERVICE_PORT", "443");
    ExpectConfigError([] { InClusterConfig(); },
                      {"unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                       "KUBERNETES_SERVICE_PORT must be defined"});
  }
  EnvVar host("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  EnvVar port("KUBERNETES_SERVICE_PORT", "443");
  ExpectConfigError(
      [&] {
        InClusterConfig({dir.path() + "/token", dir.path() + "/ca"});
      },
      {"service account token " + dir.path() + "/token: No such file or directory"});
  // A missing CA is logged; the system trust store is used.
  RestConfig rc = InClusterConfig({dir.Write("token", "t"), dir.path() + "/ca"});
  EXPECT_EQ(rc.tls.ca_file, "");
}

TEST(BuildRestConfigTest, KubeconfigFlagAndMasterOnly) {
  TempDir dir;
  std::string path = dir.Write("config", R"(
clusters: [{name: c, cluster: {server: "https://h:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
)");
  RestConfig rc = BuildRestConfig({.kubeconfig = path, .master = "https://m:1"});
  EXPECT_EQ(rc.server, "https://m:1");
  EXPECT_EQ(rc.token, "t");
  // --master without --kubeconfig still reads $KUBECONFIG for credentials.
  {
    EnvVar kc("KUBECONFIG", path.c_str());
    RestConfig m = BuildRestConfig({.master = "https://m:2"});
    EXPECT_EQ(m.server, "https://m:2");
    EXPECT_EQ(m.token, "t");
  }
  EnvVar kc("KUBECONFIG", (dir.path() + "/none").c_str());
  RestConfig bare = BuildRestConfig({.master = "http://127.0.0.1:1"});
  EXPECT_EQ(bare.server, "http://127.0.0.1:1");
  EXPECT_EQ(bare.token, "");
  EXPECT_EQ(bare.origin, "--master http://127.0.0.1:1");
}

}  // namespace
}  // namespace sluice::kube
