// Jittered exponential backoff between failed attempts, with client-go's reflector defaults:
// 800 ms doubling to a 30 s cap, each delay stretched by up to 100% at random, back to the start
// once things have gone well for two minutes (no failure in that time) or on Reset().
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace sluice::kube {

struct BackoffPolicy {
  std::chrono::milliseconds initial{800};
  std::chrono::milliseconds cap{30000};
  double factor = 2.0;
  double jitter = 1.0;  // a delay d becomes d + random[0, jitter*d), then at most cap
  std::chrono::milliseconds reset_after{120000};
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}, uint64_t seed = std::random_device{}());

  // The delay before the next attempt after a failure at `now`.
  std::chrono::milliseconds Next(
      std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // A success: the next failure waits the initial delay again.
  void Reset();

  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  double base_ms_;
  bool failed_before_ = false;
  std::chrono::steady_clock::time_point last_failure_{};
};

}  // namespace sluice::kube
