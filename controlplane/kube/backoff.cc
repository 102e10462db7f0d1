#include "controlplane/kube/backoff.h"

#include <algorithm>

namespace sluice::kube {

Backoff::Backoff(BackoffPolicy policy, uint64_t seed)
    : policy_(policy), rng_(seed), base_ms_(static_cast<double>(policy.initial.count())) {}

std::chrono::milliseconds Backoff::Next(std::chrono::steady_clock::time_point now) {
  if (failed_before_ && now - last_failure_ >= policy_.reset_after) Reset();
  failed_before_ = true;
  last_failure_ = now;
  double cap = static_cast<double>(policy_.cap.count());
  double base = std::min(base_ms_, cap);
  double delay = base;
  if (policy_.jitter > 0) {
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    delay += unit(rng_) * policy_.jitter * base;
  }
  base_ms_ = std::min(base_ms_ * policy_.factor, cap);
  return std::chrono::milliseconds(static_cast<int64_t>(std::min(delay, cap)));
}

void Backoff::Reset() {
  base_ms_ = static_cast<double>(policy_.initial.count());
  failed_before_ = false;
}

}  // namespace sluice::kube
