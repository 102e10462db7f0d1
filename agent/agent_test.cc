// The agent's wiring with a manifest directory and a recording backend: the first sync waits for
// the source and is full, later ones carry only what changed, and a failed sync is retried as a
// full one. Real threads, files and loopback servers; waits have generous timeouts and no test
// asserts on how long anything took.
#include "agent/agent.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>

namespace sluice::agent {
namespace {

namespace fs = std::filesystem;

struct Call {
  bool full;
  std::vector<std::string> changed;  // keys of the Services in the change
  size_t services;                   // in the desired state
};

class RecordingBackend : public proxy::Backend {
 public:
  std::string_view name() const override { return "recording"; }
  void Sync(const state::NodeState& desired, const state::NodeStateChange& change) override {
    std::lock_guard lock(mu_);
    Call c{change.full, {}, desired.services.size()};
    for (const auto& d : change.services) c.changed.push_back(d.key);
    calls_.push_back(c);
    cv_.notify_all();
    if (fail_next_ > 0) {
      --fail_next_;
      throw std::runtime_error("the kernel said no");
    }
  }
  void FailNext(int n) {
    std::lock_guard lock(mu_);
    fail_next_ = n;
  }
  // Waits until some call from index `from` on satisfies `pred`; returns its index (or -1).
  int WaitCall(size_t from, const std::function<bool(const Call&)>& pred) {
    std::unique_lock lock(mu_);
    int found = -1;
    cv_.wait_for(lock, std::chrono::seconds(20), [&] {
      for (size_t i = from; i < calls_.size(); ++i) {
        if (pred(calls_[i])) {
          found = static_cast<int>(i);
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::vector<Call> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  int fail_next() {
    std::lock_guard lock(mu_);
    return fail_next_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  int fail_next_ = 0;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "sluice-agent-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& name, const std::string& text) {
    fs::path tmp = dir_ / ("." + name + ".tmp");
    std::ofstream(tmp) << text;
    fs::rename(tmp, dir_ / name);
  }
  static std::string Service(const std::string& name, const std::string& ip) {
    return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
           "}\nspec:\n  clusterIP: " + ip + "\n  ports: [{name: http, port: 80}]\n";
  }
  AgentConfig Config() {
    AgentConfig c;
    c.manifests_dir = dir_.string();
    c.hostname_override = "node-a";
    c.healthz_bind_address = "127.0.0.1:0";
    c.metrics_bind_address = "127.0.0.1:0";
    c.min_sync_period = std::chrono::milliseconds(0);
    c.sync_period = std::chrono::seconds(600);
    return c;
  }

  fs::path dir_;
};

TEST_F(AgentTest, FirstSyncIsFullThenOnlyChangesFollow) {
  Write("a.yaml", Service("a", "10.96.0.1"));
  Write("b.yaml", Service("b", "10.96.0.2"));
  auto backend = std::make_unique<RecordingBackend>();
  RecordingBackend& b = *backend;
  Agent agent(Config(), std::move(backend));
  agent.Start();
  // The first call the backend sees already has both Services: the agent waited for the source.
  ASSERT_EQ(b.WaitCall(0, [](const Call&) { return true; }), 0);
  Call first = b.calls()[0];
  EXPECT_TRUE(first.full);
  EXPECT_EQ(first.services, 2u);
  EXPECT_EQ(first.changed, (std::vector<std::string>{"default/a", "default/b"}));

  size_t before = b.calls().size();
  Write("b.yaml", Service("b", "10.96.0.3"));
  int i = b.WaitCall(before, [](const Call& c) { return !c.changed.empty(); });
  ASSERT_GE(i, 0);
  Call change = b.calls()[i];
  EXPECT_FALSE(change.full);
  EXPECT_EQ(change.changed, (std::vector<std::string>{"default/b"}));
  agent.Stop();
}

TEST_F(AgentTest, AFailedSyncIsRetriedAsAFullOne) {
  Write("a.yaml", Service("a", "10.96.0.1"));
  auto backend = std::make_unique<RecordingBackend>();
  RecordingBackend& b = *backend;
  Agent agent(Config(), std::move(backend));
  agent.Start();
  ASSERT_EQ(b.WaitCall(0, [](const Call&) { return true; }), 0);
  size_t before = b.calls().size();
  b.FailNext(1);
  Write("c.yaml", Service("c", "10.96.0.4"));
  // A sync fails; the runner retries after its backoff, and the retry reconciles everything,
  // including the Service whose change the failed sync carried.
  int failed = b.WaitCall(before, [](const Call&) { return true; });
  ASSERT_GE(failed, 0);
  int retry = b.WaitCall(static_cast<size_t>(failed) + 1,
                         [](const Call& c) { return c.full && c.services == 2; });
  ASSERT_GT(retry, failed);
  EXPECT_EQ(b.fail_next(), 0);
  agent.Stop();
}

}  // namespace
}  // namespace sluice::agent
