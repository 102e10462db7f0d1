#include "proxy/sync_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <stdexcept>
#include <utility>
#include <vector>

namespace sluice::proxy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = RunnerClock::TimePoint;

// Time stands still until the test advances it. The test knows when the runner has acted on
// everything (it is back in WaitUntil), so no assertion depends on how fast threads run.
class FakeRunnerClock : public RunnerClock {
 public:
  TimePoint Now() override {
    std::lock_guard lock(mu_);
    return now_;
  }

  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline, const std::function<bool()>& wake) override {
    {
      std::lock_guard g(mu_);
      runner_mu_ = lock.mutex();
      cv_ = &cv;
      deadline_ = deadline;
      fired_ = false;
      waiting_ = true;
      ++waits_;
      waits_cv_.notify_all();
    }
    // fired_ is written with the runner's mutex held (see Advance), so reading it under
    // `lock` is race-free.
    cv.wait(lock, [&] { return fired_ || wake(); });
    std::lock_guard g(mu_);
    waiting_ = false;
  }

  // Moves time forward; if that reaches the runner's deadline, returns once the runner has
  // done what was due and waits again.
  void Advance(std::chrono::nanoseconds d) {
    std::mutex* runner_mu;
    {
      std::lock_guard g(mu_);
      runner_mu = runner_mu_;
    }
    uint64_t before = 0;
    bool fired = false;
    {
      // Runner mutex first, then ours: the order WaitUntil takes them in.
      std::unique_lock<std::mutex> rl;
      if (runner_mu != nullptr) rl = std::unique_lock(*runner_mu);
      std::lock_guard g(mu_);
      now_ += d;
      before = waits_;
      if (waiting_ && now_ >= deadline_) {
        fired_ = fired = true;
        cv_->notify_all();
      }
    }
    if (fired) AwaitWaits(before + 1);
  }

  uint64_t waits() {
    std::lock_guard g(mu_);
    return waits_;
  }

  // Blocks until the runner has entered WaitUntil `n` times in all.
  void AwaitWaits(uint64_t n) {
    std::unique_lock g(mu_);
    // The timeout only keeps a broken runner from hanging the suite; it never decides a test.
    if (!waits_cv_.wait_for(g, seconds(30), [&] { return waits_ >= n; })) {
      ADD_FAILURE() << "runner never went back to waiting";
    }
  }

  TimePoint start() const { return TimePoint(seconds(1000)); }

 private:
  std::mutex mu_;
  std::condition_variable waits_cv_;
  TimePoint now_ = TimePoint(seconds(1000));
  std::mutex* runner_mu_ = nullptr;
  std::condition_variable* cv_ = nullptr;
  TimePoint deadline_{};
  bool fired_ = false;
  bool waiting_ = false;
  uint64_t waits_ = 0;
};

struct SyncRecord {
  SyncTrigger trigger;
  TimePoint at;
};

class SyncRunnerTest : public ::testing::Test {
 protected:
  // Results the sync function returns, in order; it succeeds once they run out. "throw"
  // results throw instead of returning false.
  enum class Result { kOk, kFail, kThrow };

  void Make(SyncRunnerOptions options) {
    options.name = "test-runner";
    runner_ = std::make_unique<SyncRunner>(
        options,
        [this](SyncTrigger trigger) {
          std::lock_guard lock(mu_);
          syncs_.push_back({trigger, clock_->Now()});
          if (on_sync_) on_sync_();
          if (results_.empty()) return true;
          Result r = results_.front();
          results_.pop_front();
          if (r == Result::kThrow) throw std::runtime_error("nft: transaction refused");
          return r == Result::kOk;
        },
        clock_);
    runner_->Start();
    clock_->AwaitWaits(1);
  }

  // Requests a sync and returns once the runner has acted on the request.
  void RunAndSettle() {
    uint64_t n = clock_->waits();
    runner_->Run();
    clock_->AwaitWaits(n + 1);
  }

  std::vector<SyncRecord> Syncs() {
    std::lock_guard lock(mu_);
    return syncs_;
  }
  size_t Count() { return Syncs().size(); }
  SyncRecord Last() { return Syncs().back(); }
  TimePoint At(std::chrono::nanoseconds since_start) {
    return clock_->start() + std::chrono::duration_cast<TimePoint::duration>(since_start);
  }

  std::shared_ptr<FakeRunnerClock> clock_ = std::make_shared<FakeRunnerClock>();
  std::mutex mu_;
  std::vector<SyncRecord> syncs_;
  std::deque<Result> results_;
  std::function<void()> on_sync_;
  std::unique_ptr<SyncRunner> runner_;
};

TEST_F(SyncRunnerTest, FirstRunSyncsAtOnceAndIsFull) {
  Make({.min_interval = seconds(1), .max_interval = seconds(30)});
  EXPECT_EQ(Count(), 0u);
  RunAndSettle();
  ASSERT_EQ(Count(), 1u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kFirst);
  EXPECT_TRUE(IsFullSync(SyncTrigger::kFirst));
  EXPECT_EQ(Last().at, At(seconds(0)));
}

TEST_F(SyncRunnerTest, RequestsWithinMinIntervalCoalesce) {
  Make({.min_interval = seconds(10), .max_interval = seconds(60)});
  RunAndSettle();
  ASSERT_EQ(Count(), 1u);
  for (int i = 0; i < 5; ++i) RunAndSettle();
  clock_->Advance(seconds(9));
  EXPECT_EQ(Count(), 1u);  // five requests, none allowed yet
  clock_->Advance(seconds(1));
  ASSERT_EQ(Count(), 2u);  // ... and one sync for all of them
  EXPECT_EQ(Last().trigger, SyncTrigger::kChanges);
  EXPECT_FALSE(IsFullSync(SyncTrigger::kChanges));
  EXPECT_EQ(Last().at, At(seconds(10)));
  clock_->Advance(seconds(10));
  EXPECT_EQ(Count(), 2u);  // nothing more was asked
}

TEST_F(SyncRunnerTest, MinIntervalCountsFromTheEndOfTheSync) {
  Make({.min_interval = seconds(10), .max_interval = seconds(60)});
  on_sync_ = [this] { clock_->Advance(seconds(3)); };  // every sync takes 3 s
  RunAndSettle();                                      // runs 0..3
  RunAndSettle();
  clock_->Advance(seconds(9));  // t=12: only 9 s after the end
  EXPECT_EQ(Count(), 1u);
  clock_->Advance(seconds(1));  // t=13
  ASSERT_EQ(Count(), 2u);
  EXPECT_EQ(Last().at, At(seconds(13)));
}

TEST_F(SyncRunnerTest, ZeroMinIntervalSyncsEveryRequestAndCoalescesDuringASync) {
  Make({.min_interval = seconds(0), .max_interval = seconds(60)});
  RunAndSettle();
  RunAndSettle();
  EXPECT_EQ(Count(), 2u);
  // Three requests while a sync runs make exactly one more sync.
  bool requested = false;
  on_sync_ = [this, &requested] {
    if (std::exchange(requested, true)) return;
    for (int i = 0; i < 3; ++i) runner_->Run();
  };
  RunAndSettle();
  std::vector<SyncRecord> s = Syncs();
  ASSERT_EQ(s.size(), 4u);
  for (size_t i = 1; i < s.size(); ++i) EXPECT_EQ(s[i].trigger, SyncTrigger::kChanges);
}

TEST_F(SyncRunnerTest, MaxIntervalForcesAPeriodicFullSync) {
  Make({.min_interval = seconds(1), .max_interval = seconds(30)});
  clock_->Advance(seconds(29));
  EXPECT_EQ(Count(), 0u);
  clock_->Advance(seconds(1));
  ASSERT_EQ(Count(), 1u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kFirst);
  clock_->Advance(seconds(30));
  ASSERT_EQ(Count(), 2u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kPeriodic);
  EXPECT_TRUE(IsFullSync(SyncTrigger::kPeriodic));
  // A change-driven sync restarts the period.
  clock_->Advance(seconds(20));
  RunAndSettle();
  ASSERT_EQ(Count(), 3u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kChanges);
  clock_->Advance(seconds(29));
  EXPECT_EQ(Count(), 3u);
  clock_->Advance(seconds(1));
  ASSERT_EQ(Count(), 4u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kPeriodic);
  EXPECT_EQ(Last().at, At(seconds(110)));
}

TEST_F(SyncRunnerTest, FailureRetriesWithCappedExponentialBackoff) {
  Make({.min_interval = seconds(0),
        .max_interval = seconds(30),
        .retry_initial = seconds(1),
        .retry_max = seconds(8)});
  results_ = {Result::kFail, Result::kThrow, Result::kFail, Result::kFail, Result::kFail};
  RunAndSettle();  // t=0 fails
  std::vector<int> gaps;
  for (int i = 0; i < 5; ++i) {
    size_t before = Count();
    int waited = 0;
    while (Count() == before) {
      clock_->Advance(seconds(1));
      ++waited;
    }
    EXPECT_EQ(Last().trigger, SyncTrigger::kRetry);
    gaps.push_back(waited);
  }
  EXPECT_EQ(gaps, (std::vector<int>{1, 2, 4, 8, 8}));
  // The sixth sync (t=23) succeeded: no retry, next sync is the periodic one 30 s later.
  clock_->Advance(seconds(29));
  EXPECT_EQ(Count(), 6u);
  clock_->Advance(seconds(1));
  ASSERT_EQ(Count(), 7u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kPeriodic);
}

TEST_F(SyncRunnerTest, BackoffDefaultsToTheSyncPeriodAndResetsAfterSuccess) {
  Make({.min_interval = seconds(0), .max_interval = seconds(4), .retry_initial = seconds(1)});
  results_ = {Result::kFail, Result::kFail, Result::kFail,
              Result::kFail, Result::kOk,   Result::kFail};
  RunAndSettle();               // t=0 fails, retry in 1
  clock_->Advance(seconds(1));  // t=1 fails, retry in 2
  clock_->Advance(seconds(2));  // t=3 fails, retry in 4 (= max_interval)
  clock_->Advance(seconds(4));  // t=7 fails, retry in 4 again (capped)
  clock_->Advance(seconds(4));  // t=11 succeeds
  EXPECT_EQ(Count(), 5u);
  RunAndSettle();  // t=11 fails: back to 1 s
  clock_->Advance(seconds(1));
  EXPECT_EQ(Count(), 7u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kRetry);
  EXPECT_EQ(Last().at, At(seconds(12)));
}

TEST_F(SyncRunnerTest, MinIntervalAlsoHoldsBackRetries) {
  Make({.min_interval = seconds(5), .max_interval = seconds(30), .retry_initial = seconds(1)});
  results_ = {Result::kFail};
  RunAndSettle();
  clock_->Advance(seconds(4));
  EXPECT_EQ(Count(), 1u);
  clock_->Advance(seconds(1));
  ASSERT_EQ(Count(), 2u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kRetry);
}

TEST_F(SyncRunnerTest, RunBeforeStartIsKept) {
  SyncRunner runner(
      {.name = "early", .min_interval = seconds(1), .max_interval = seconds(30)},
      [this](SyncTrigger t) {
        std::lock_guard lock(mu_);
        syncs_.push_back({t, clock_->Now()});
        return true;
      },
      clock_);
  runner.Run();
  runner.Start();
  clock_->AwaitWaits(1);  // it synced before its first wait
  ASSERT_EQ(Count(), 1u);
  EXPECT_EQ(Last().trigger, SyncTrigger::kFirst);
  EXPECT_THROW(runner.Start(), std::logic_error);
}

TEST_F(SyncRunnerTest, StopEndsTheLoop) {
  Make({.min_interval = seconds(1), .max_interval = seconds(30)});
  RunAndSettle();
  runner_->Stop();
  runner_->Stop();  // idempotent
  runner_->Run();   // nobody listens any more
  clock_->Advance(seconds(300));
  EXPECT_EQ(Count(), 1u);
  runner_.reset();
}

TEST_F(SyncRunnerTest, RejectsImpossibleIntervals) {
  auto ok = [](SyncTrigger) { return true; };
  EXPECT_THROW(SyncRunner({.min_interval = seconds(2), .max_interval = seconds(1)}, ok),
               std::invalid_argument);
  EXPECT_THROW(SyncRunner({.min_interval = seconds(0), .max_interval = seconds(0)}, ok),
               std::invalid_argument);
  EXPECT_THROW(SyncRunner({.retry_initial = seconds(0)}, ok), std::invalid_argument);
  EXPECT_THROW(SyncRunner({}, nullptr), std::invalid_argument);
}

TEST(SyncRunnerSteadyClockTest, SyncsOnRequestAndStopsPromptly) {
  // The real clock: a request is served without waiting for the period, and Stop wakes the
  // loop out of a 1-hour wait.
  std::mutex mu;
  std::condition_variable cv;
  int syncs = 0;
  SyncRunner runner({.min_interval = seconds(0), .max_interval = std::chrono::hours(1)},
                    [&](SyncTrigger) {
                      std::lock_guard lock(mu);
                      ++syncs;
                      cv.notify_all();
                      return true;
                    });
  runner.Start();
  runner.Run();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(30), [&] { return syncs == 1; }));
  }
  runner.Stop();
  EXPECT_EQ(syncs, 1);
}

}  // namespace
}  // namespace sluice::proxy
