#include "controlplane/kube/backoff.h"

#include <gtest/gtest.h>

namespace sluice::kube {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesWithJitterUpToTheCap) {
  Backoff b({}, 42);
  auto t = std::chrono::steady_clock::now();
  double base = 800;
  for (int i = 0; i < 12; ++i) {
    milliseconds d = b.Next(t);
    double lo = std::min(base, 30000.0), hi = std::min(2 * base, 30000.0);
    EXPECT_GE(d.count(), static_cast<int64_t>(lo)) << i;
    EXPECT_LE(d.count(), static_cast<int64_t>(hi)) << i;
    base *= 2;
    t += std::chrono::seconds(1);
  }
  EXPECT_EQ(b.Next(t).count(), 30000);  // capped, jitter included
}

TEST(BackoffTest, NoJitterIsExact) {
  Backoff b({.initial = milliseconds(100), .cap = milliseconds(1000), .jitter = 0});
  auto t = std::chrono::steady_clock::now();
  EXPECT_EQ(b.Next(t).count(), 100);
  EXPECT_EQ(b.Next(t).count(), 200);
  EXPECT_EQ(b.Next(t).count(), 400);
  EXPECT_EQ(b.Next(t).count(), 800);
  EXPECT_EQ(b.Next(t).count(), 1000);
  EXPECT_EQ(b.Next(t).count(), 1000);
}

TEST(BackoffTest, ResetsAfterAQuietPeriodOrOnReset) {
  Backoff b({.initial = milliseconds(100),
             .cap = milliseconds(10000),
             .jitter = 0,
             .reset_after = milliseconds(120000)});
  auto t = std::chrono::steady_clock::now();
  b.Next(t);
  b.Next(t);
  EXPECT_EQ(b.Next(t + std::chrono::seconds(60)).count(), 400);   // not quiet long enough
  EXPECT_EQ(b.Next(t + std::chrono::seconds(181)).count(), 100);  // two minutes without failure
  b.Next(t + std::chrono::seconds(182));
  b.Reset();
  EXPECT_EQ(b.Next(t + std::chrono::seconds(183)).count(), 100);
}

}  // namespace
}  // namespace sluice::kube
