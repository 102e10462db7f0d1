// When the proxy syncs its rules: kube-proxy's BoundedFrequencyRunner (pkg/proxy/runner).
//
//  - Run() asks for a sync; requests coalesce: any number of them before the sync starts make
//    one sync, and a request made during a sync makes one more after it.
//  - min_interval (kube-proxy's --*-min-sync-period) must pass between the end of one sync and
//    the start of the next, whatever triggered it. 0 syncs as soon as asked.
//  - max_interval (--sync-period) forces a sync when none has run for that long, requested or not.
//  - A failed sync (the function returns false or throws) is retried. kube-proxy retries after a
//    fixed interval; we back off: retry_initial doubling per consecutive failure up to
//    retry_max (default max_interval), so a persistent kernel error does not spin while a
//    transient one heals in a second. Success resets it. Run() and the periodic sync still
//    happen meanwhile.
//
// The function learns why it runs, so a backend can rebuild everything on kFirst, kPeriodic and
// kRetry, and write only what changed on kChanges.
//
// Time comes from a RunnerClock: real time in production, a fake in tests so they never sleep.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>

namespace sluice::proxy {

enum class SyncTrigger {
  kFirst,     // the first sync of this runner
  kChanges,   // Run() was called
  kPeriodic,  // max_interval passed without a sync
  kRetry,     // the previous sync failed
};
std::string_view SyncTriggerName(SyncTrigger trigger);
// Whether the backend should rebuild all its state rather than apply the pending changes.
inline bool IsFullSync(SyncTrigger trigger) { return trigger != SyncTrigger::kChanges; }

class RunnerClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~RunnerClock() = default;
  virtual TimePoint Now() = 0;
  // Called with `lock` held; returns with it held. Blocks until `wake()` is true (evaluated under
  // `lock` each time `cv` is notified) or this clock reaches `deadline`.
  virtual void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         TimePoint deadline, const std::function<bool()>& wake) = 0;
};

class SteadyRunnerClock : public RunnerClock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline, const std::function<bool()>& wake) override {
    cv.wait_until(lock, deadline, wake);
  }
};

struct SyncRunnerOptions {
  std::string name = "sync-runner";  // in log lines
  std::chrono::nanoseconds min_interval = std::chrono::seconds(1);
  std::chrono::nanoseconds max_interval = std::chrono::seconds(30);
  std::chrono::nanoseconds retry_initial = std::chrono::seconds(1);
  std::chrono::nanoseconds retry_max{0};  // 0: max_interval
};

// Returns whether the sync succeeded; an exception counts as a failure and is logged.
using SyncFunction = std::function<bool(SyncTrigger)>;

class SyncRunner {
 public:
  // Throws std::invalid_argument unless 0 <= min_interval <= max_interval, max_interval > 0 and
  // 0 < retry_initial.
  SyncRunner(SyncRunnerOptions options, SyncFunction sync,
             std::shared_ptr<RunnerClock> clock = std::make_shared<SteadyRunnerClock>());
  ~SyncRunner();
  SyncRunner(const SyncRunner&) = delete;
  SyncRunner& operator=(const SyncRunner&) = delete;

  // Starts the runner's thread. The first sync happens on the first Run() or after
  // max_interval. Calling Start twice throws std::logic_error.
  void Start();
  // Requests a sync. Never blocks on a running sync; may be called from the sync function, and
  // before Start (the request waits for it).
  void Run();
  // Ends the thread after the sync in progress, if any; pending requests are dropped.
  // Idempotent; not from inside the sync function.
  void Stop();

 private:
  using TimePoint = RunnerClock::TimePoint;
  void Loop(std::stop_token stop);
  bool Invoke(SyncTrigger trigger);
  std::chrono::nanoseconds NextRetryDelay();

  const SyncRunnerOptions options_;
  const SyncFunction sync_;
  const std::shared_ptr<RunnerClock> clock_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wakeups_ = 0;  // bumped by Run and Stop so the waiting loop re-evaluates
  bool started_ = false;
  bool requested_ = false;
  bool synced_once_ = false;
  std::optional<TimePoint> last_end_;
  TimePoint next_periodic_{};
  std::optional<TimePoint> retry_at_;
  std::chrono::nanoseconds retry_delay_{0};  // the last delay used; 0 after a success
  std::jthread thread_;
};

}  // namespace sluice::proxy
