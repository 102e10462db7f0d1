#include "proxy/sync_runner.h"

#include <algorithm>
#include <stdexcept>

#include "common/log.h"

namespace sluice::proxy {
namespace {

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::string_view SyncTriggerName(SyncTrigger trigger) {
  switch (trigger) {
    case SyncTrigger::kFirst:
      return "first";
    case SyncTrigger::kChanges:
      return "changes";
    case SyncTrigger::kPeriodic:
      return "periodic";
    case SyncTrigger::kRetry:
      return "retry";
  }
  return "unknown";
}

SyncRunner::SyncRunner(SyncRunnerOptions options, SyncFunction sync,
                       std::shared_ptr<RunnerClock> clock)
    : options_(std::move(options)), sync_(std::move(sync)), clock_(std::move(clock)) {
  if (options_.min_interval.count() < 0 || options_.max_interval.count() <= 0 ||
      options_.max_interval < options_.min_interval) {
    throw std::invalid_argument(options_.name +
                                ": want 0 <= min_interval <= max_interval and max_interval > 0");
  }
  if (options_.retry_initial.count() <= 0 || options_.retry_max.count() < 0) {
    throw std::invalid_argument(options_.name + ": want retry_initial > 0 and retry_max >= 0");
  }
  if (!sync_ || !clock_) throw std::invalid_argument(options_.name + ": no sync function or clock");
}

SyncRunner::~SyncRunner() { Stop(); }

void SyncRunner::Start() {
  std::lock_guard lock(mu_);
  if (started_) throw std::logic_error(options_.name + ": started twice");
  started_ = true;
  thread_ = std::jthread([this](std::stop_token stop) { Loop(stop); });
}

void SyncRunner::Run() {
  std::lock_guard lock(mu_);
  requested_ = true;
  ++wakeups_;
  cv_.notify_all();
}

void SyncRunner::Stop() {
  std::jthread thread;
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    thread_.request_stop();
    ++wakeups_;
    cv_.notify_all();
    thread = std::move(thread_);
  }
  thread.join();
}

void SyncRunner::Loop(std::stop_token stop) {
  std::unique_lock lock(mu_);
  next_periodic_ = clock_->Now() + options_.max_interval;
  while (!stop.stop_requested()) {
    const TimePoint now = clock_->Now();
    // The earliest trigger, then no earlier than min_interval after the last sync ended.
    TimePoint due = requested_ ? now : next_periodic_;
    due = std::min(due, next_periodic_);
    if (retry_at_) due = std::min(due, *retry_at_);
    if (last_end_) due = std::max(due, *last_end_ + options_.min_interval);
    if (now < due) {
      const uint64_t seen = wakeups_;
      clock_->WaitUntil(lock, cv_, due, [&] { return wakeups_ != seen || stop.stop_requested(); });
      continue;
    }

    // A full sync covers any pending changes, so it names the trigger when both are due.
    SyncTrigger trigger = SyncTrigger::kChanges;
    if (!synced_once_) {
      trigger = SyncTrigger::kFirst;
    } else if (retry_at_ && now >= *retry_at_) {
      trigger = SyncTrigger::kRetry;
    } else if (now >= next_periodic_) {
      trigger = SyncTrigger::kPeriodic;
    }
    requested_ = false;  // requests from here on need another sync
    lock.unlock();
    const bool ok = Invoke(trigger);
    lock.lock();

    const TimePoint end = clock_->Now();
    synced_once_ = true;
    last_end_ = end;
    next_periodic_ = end + options_.max_interval;
    if (ok) {
      retry_at_.reset();
      retry_delay_ = std::chrono::nanoseconds(0);
    } else {
      std::chrono::nanoseconds delay = NextRetryDelay();
      retry_at_ = end + delay;
      SLOG_WARN << options_.name << ": " << SyncTriggerName(trigger) << " sync failed; retrying in "
                << Seconds(delay) << "s";
    }
  }
}

bool SyncRunner::Invoke(SyncTrigger trigger) {
  try {
    return sync_(trigger);
  } catch (const std::exception& e) {
    SLOG_ERROR << options_.name << ": " << SyncTriggerName(trigger) << " sync: " << e.what();
  } catch (...) {
    SLOG_ERROR << options_.name << ": " << SyncTriggerName(trigger) << " sync: unknown exception";
  }
  return false;
}

std::chrono::nanoseconds SyncRunner::NextRetryDelay() {
  const std::chrono::nanoseconds cap =
      options_.retry_max.count() > 0 ? options_.retry_max : options_.max_interval;
  retry_delay_ = retry_delay_.count() == 0 ? options_.retry_initial : retry_delay_ * 2;
  retry_delay_ = std::min(retry_delay_, cap);
  return retry_delay_;
}

}  // namespace sluice::proxy
