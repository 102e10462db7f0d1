#include "controlplane/kube/credentials.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "controlplane/kube/errors.h"

namespace sluice::kube {
namespace {

const std::string kData = KUBE_TESTDATA;
using std::chrono::seconds;

class FakeClock {
 public:
  std::chrono::system_clock::time_point now{std::chrono::seconds(1700000000)};
  Credentials::Clock fn() {
    return [this] { return now; };
  }
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kube-cred-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }
  std::string path(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

int Lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string l; std::getline(in, l);) ++n;
  return n;
}

TEST(CredentialsTest, StaticToken) {
  RestConfig rc;
  rc.token = "abc";
  Credentials c(rc);
  EXPECT_EQ(c.Current().bearer_token, "abc");
  EXPECT_FALSE(c.Unauthorized(c.Current()));
}

TEST(CredentialsTest, NoCredentials) {
  Credentials c(RestConfig{});
  EXPECT_EQ(c.Current().bearer_token, "");
}

TEST(CredentialsTest, TokenFileIsReReadEveryMinute) {
  TempDir dir;
  RestConfig rc;
  rc.token_file = dir.Write("token", "one\n");
  FakeClock clock;
  Credentials c(rc, clock.fn());
  EXPECT_EQ(c.Current().bearer_token, "one");
  dir.Write("token", "two");  // the kubelet rotated it
  clock.now += seconds(30);
  EXPECT_EQ(c.Current().bearer_token, "one");
  clock.now += seconds(31);
  EXPECT_EQ(c.Current().bearer_token, "two");
  // Unreadable later: keep the last token.
  std::filesystem::remove(rc.token_file);
  clock.now += seconds(61);
  EXPECT_EQ(c.Current().bearer_token, "two");
}

TEST(CredentialsTest, TokenFileRereadAfter401) {
  TempDir dir;
  RestConfig rc;
  rc.token_file = dir.Write("token", "old");
  FakeClock clock;
  Credentials c(rc, clock.fn());
  auto used = c.Current();
  EXPECT_FALSE(c.Unauthorized(used));  // same file content: a retry would not help
  dir.Write("token", "new");
  EXPECT_TRUE(c.Unauthorized(used));
  EXPECT_EQ(c.Current().bearer_token, "new");
}

TEST(CredentialsTest, TokenFileNeverReadable) {
  RestConfig rc;
  rc.token_file = "/nonexistent/token";
  Credentials c(rc);
  EXPECT_THROW(c.Current(), CredentialError);
}

RestConfig ExecConfigFor(const TempDir& dir, const std::string& expiry) {
  RestConfig rc;
  ExecConfig e;
  e.command = kData + "/exec-plugin.sh";
  e.args = {"token"};
  e.api_version = "client.authentication.k8s.io/v1";
  e.interactive_mode = "Never";
  e.env = {{"EXEC_COUNT_FILE", dir.path("count")}, {"EXEC_EXPIRY", expiry}};
  rc.exec = e;
  return rc;
}

TEST(CredentialsTest, ExecCachedUntilExpiry) {
  TempDir dir;
  FakeClock clock;  // 2023-11-14T22:13:20Z
  Credentials c(ExecConfigFor(dir, "2023-11-14T22:23:20Z"), clock.fn());
  auto first = c.Current();
  EXPECT_EQ(first.bearer_token, "exec-token");
  c.Current();
  clock.now += seconds(599);
  c.Current();
  EXPECT_EQ(Lines(dir.path("count")), 1);
  clock.now += seconds(1);  // expired
  auto second = c.Current();
  EXPECT_EQ(Lines(dir.path("count")), 2);
  EXPECT_NE(second.generation, first.generation);
}

TEST(CredentialsTest, ExecWithoutExpiryRerunsOnlyAfter401) {
  TempDir dir;
  FakeClock clock;
  Credentials c(ExecConfigFor(dir, ""), clock.fn());
  auto used = c.Current();
  clock.now += seconds(86400);
  c.Current();
  EXPECT_EQ(Lines(dir.path("count")), 1);
  EXPECT_TRUE(c.Unauthorized(used));
  EXPECT_TRUE(c.Unauthorized(used));  // a second 401 for the same credential drops nothing new
  c.Current();
  EXPECT_EQ(Lines(dir.path("count")), 2);
  c.Unauthorized(used);  // stale: from the previous credential
  c.Current();
  EXPECT_EQ(Lines(dir.path("count")), 2);
}

}  // namespace
}  // namespace sluice::kube
