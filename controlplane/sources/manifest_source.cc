#include "controlplane/sources/manifest_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>

#include "common/log.h"
#include "common/sha512.h"

namespace sluice::sources {

ManifestSource::ContentDigest ManifestSource::Digest(std::string_view text) {
  ContentDigest d;
  d.size = text.size();
  const Sha512::Digest full = Sha512::Hash(text);
  std::copy_n(full.begin(), d.hash.size(), d.hash.begin());
  return d;
}

namespace {

using Clock = std::chrono::steady_clock;

// Filesystem timestamps are coarse (a jiffy on ext4, a second or two elsewhere): a write in the
// same tick as our read leaves size and mtime as they were. A file changed this recently before
// we read it is read again (and compared) at the next scan instead of being trusted.
constexpr int64_t kRacyWindowNs = 2'000'000'000;

constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_ONLYDIR;
constexpr uint32_t kGoneMask = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Editors' swap, backup and lock files: events on them never change what the directory holds.
bool IsEditorTemporary(std::string_view name) {
  return EndsWith(name, ".swp") || EndsWith(name, ".swx") || EndsWith(name, ".swo") ||
         EndsWith(name, "~") || name.starts_with(".#") || name == "4913";
}

int64_t Nanoseconds(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t RealtimeNowNs() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return Nanoseconds(ts);
}

std::string Errno(int err) { return std::strerror(err); }

std::string Plural(size_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using UniqueDir = std::unique_ptr<DIR, DirCloser>;

}  // namespace

bool IsManifestFileName(std::string_view name) {
  if (name.empty() || name[0] == '.' || IsEditorTemporary(name)) return false;
  return EndsWith(name, ".yaml") || EndsWith(name, ".yml") || EndsWith(name, ".json");
}

namespace {

std::string WithoutTrailingSlash(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

}  // namespace

ManifestSource::ManifestSource(std::string directory, state::ClusterState& state,
                               ManifestSourceOptions options)
    : directory_(WithoutTrailingSlash(std::move(directory))),
      state_(state),
      options_(std::move(options)) {}

ManifestSource::~ManifestSource() { Stop(); }

void ManifestSource::Start() {
  if (started_) return;
  struct stat st {};
  if (::stat(directory_.c_str(), &st) != 0) {
    int err = errno;
    throw ManifestSourceError("manifest directory " + directory_ + ": " +
                              (err == ENOENT ? "does not exist" : Errno(err)));
  }
  if (!S_ISDIR(st.st_mode)) {
    throw ManifestSourceError("manifest directory " + directory_ + ": not a directory");
  }
  inotify_.Reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_.valid()) {
    throw ManifestSourceError("manifest directory " + directory_ +
                              ": inotify_init1: " + Errno(errno));
  }
  wake_.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_.valid()) {
    throw ManifestSourceError("manifest directory " + directory_ + ": eventfd: " + Errno(errno));
  }
  // Watch before the first read, so nothing written in between is missed.
  if (!AddWatch()) {
    throw ManifestSourceError("manifest directory " + directory_ + ": cannot watch it");
  }
  state_.RegisterSource(options_.source_name);
  if (!Rescan()) {
    throw ManifestSourceError("manifest directory " + directory_ + ": went away while read");
  }
  size_t services = 0, slices = 0, nodes = 0;
  for (const auto& [id, object] : applied_) {
    services += id.first == api::Kind::kService;
    slices += id.first == api::Kind::kEndpointSlice;
    nodes += id.first == api::Kind::kNode;
  }
  state_.MarkSourceSynced(options_.source_name);
  SLOG_INFO << "manifest directory " << directory_ << ": " << Plural(files_.size(), "file") << ", "
            << Plural(services, "Service") << ", " << Plural(slices, "EndpointSlice") << ", "
            << Plural(nodes, "Node") << "; watching it";
  started_ = true;
  thread_ = std::jthread([this](std::stop_token stop) { Run(std::move(stop)); });
}

void ManifestSource::Stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  uint64_t one = 1;
  // A full counter (never in practice) still leaves the fd readable, which is all Run needs.
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  thread_.join();
}

ManifestSource::Stats ManifestSource::stats() const {
  Stats s;
  s.scans = scans_.load();
  s.upserts = upserts_.load();
  s.deletes = deletes_.load();
  s.files_read = files_read_.load();
  s.files_parsed = files_parsed_.load();
  s.files_failed = files_failed_.load();
  s.directory_present = present_.load();
  return s;
}

bool ManifestSource::AddWatch() {
  int wd = ::inotify_add_watch(inotify_.get(), directory_.c_str(), kWatchMask);
  if (wd < 0) {
    int err = errno;
    if (err != ENOENT && err != ENOTDIR) {
      SLOG_ERROR << "manifest directory " << directory_ << ": inotify_add_watch: " << Errno(err);
    }
    return false;
  }
  struct stat st {};
  if (::stat(directory_.c_str(), &st) != 0) {
    ::inotify_rm_watch(inotify_.get(), wd);
    return false;
  }
  wd_ = wd;
  dir_dev_ = st.st_dev;
  dir_ino_ = st.st_ino;
  present_ = true;
  return true;
}

void ManifestSource::DirectoryLost(std::string_view why) {
  if (wd_ >= 0) ::inotify_rm_watch(inotify_.get(), wd_);  // fails harmlessly if already gone
  wd_ = -1;
  present_ = false;
  size_t n = applied_.size();
  SLOG_ERROR << "manifest directory " << directory_ << ": " << why << "; its "
             << Plural(n, "object") << (n == 1 ? " stays" : " stay")
             << " in force until it is back (checked every " << options_.recheck.count() << " ms)";
}

void ManifestSource::CheckDirectory() {
  struct stat st {};
  bool there = ::stat(directory_.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  bool was_watching = wd_ >= 0;
  if (was_watching) {
    if (!there) {
      DirectoryLost("deleted or moved away");
      return;
    }
    if (st.st_dev == dir_dev_ && st.st_ino == dir_ino_) return;
    // Another directory under the same path (a symlink repointed, a directory renamed over it):
    // its files are what the path holds now.
    ::inotify_rm_watch(inotify_.get(), wd_);
    wd_ = -1;
    SLOG_INFO << "manifest directory " << directory_
              << ": replaced by another directory; reading it";
  }
  if (!there || !AddWatch()) return;
  if (!was_watching) {
    SLOG_INFO << "manifest directory " << directory_ << ": back; watching it again";
  }
  if (!Rescan()) DirectoryLost("deleted or moved away");
}

void ManifestSource::Run(std::stop_token stop) {
  // The burst of events not yet acted on: when its first and its latest event came.
  bool pending = false;
  Clock::time_point first_event, last_event;
  auto next_check = Clock::now() + options_.recheck;
  alignas(struct inotify_event) char buf[64 * 1024];
  while (!stop.stop_requested()) {
    auto now = Clock::now();
    auto deadline = next_check;
    if (pending) {
      deadline =
          std::min({deadline, last_event + options_.debounce, first_event + options_.max_delay});
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    struct pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(std::clamp<int64_t>(wait + 1, 0, 60'000)));
    if (n < 0 && errno != EINTR) {
      SLOG_ERROR << "manifest directory " << directory_ << ": poll: " << Errno(errno);
      return;
    }
    if (stop.stop_requested()) return;
    bool lost = false;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      for (;;) {
        ssize_t len = ::read(inotify_.get(), buf, sizeof(buf));
        if (len <= 0) break;  // EAGAIN: drained
        for (ssize_t off = 0; off < len;) {
          const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
          off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
          if (ev->mask & IN_Q_OVERFLOW) {
            // Events were dropped: the rescan reads everything's stamp anyway.
          } else if (ev->wd != wd_) {
            continue;  // a watch we removed
          } else if (ev->mask & kGoneMask) {
            lost = true;
          } else if (ev->len > 0 && IsEditorTemporary(ev->name)) {
            continue;
          }
          now = Clock::now();
          if (!pending) first_event = now;
          pending = true;
          last_event = now;
        }
      }
    }
    now = Clock::now();
    if (lost) {
      pending = false;
      DirectoryLost("deleted or moved away");
      next_check = now + options_.recheck;
      continue;
    }
    if (wd_ < 0) pending = false;  // nothing to rescan until the directory is back
    if (pending &&
        (now >= last_event + options_.debounce || now >= first_event + options_.max_delay)) {
      pending = false;
      if (!Rescan()) DirectoryLost("deleted or moved away");
    }
    if (now >= next_check) {
      CheckDirectory();
      next_check = Clock::now() + options_.recheck;
    }
  }
}

bool ManifestSource::Rescan() {
  UniqueDir dir(::opendir(directory_.c_str()));
  if (!dir) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return false;
    SLOG_ERROR << "manifest directory " << directory_ << ": " << Errno(err)
               << "; what it held stays in force";
    ++scans_;
    return true;
  }
  std::set<std::string> names;
  errno = 0;
  while (const struct dirent* e = ::readdir(dir.get())) {
    if (IsManifestFileName(e->d_name)) names.insert(e->d_name);
  }
  dir.reset();

  bool changed = false;
  for (auto it = files_.begin(); it != files_.end();) {
    if (names.contains(it->first)) {
      ++it;
      continue;
    }
    SLOG_INFO << "manifest " << directory_ << "/" << it->first << ": removed";
    changed |= !it->second.objects.empty();
    it = files_.erase(it);
  }
  for (const auto& name : names) {
    auto [it, is_new] = files_.try_emplace(name);
    switch (Refresh(name, it->second, is_new)) {
      case ReadOutcome::kUnchanged:
        break;
      case ReadOutcome::kChanged:
        changed = true;
        break;
      case ReadOutcome::kGone:
        // Listed but not readable as a file (deleted meanwhile, a dangling symlink, a directory).
        if (!is_new) SLOG_INFO << "manifest " << directory_ << "/" << name << ": removed";
        changed |= !it->second.objects.empty();
        files_.erase(it);
        break;
    }
  }
  if (changed) Reconcile();
  ++scans_;
  return true;
}

ManifestSource::ReadOutcome ManifestSource::Refresh(const std::string& name, FileEntry& entry,
                                                    bool is_new) {
  const std::string path = directory_ + "/" + name;
  auto keep_last_good = [&] {
    if (entry.objects.empty()) {
      SLOG_WARN << "manifest " << path << ": nothing from it is in force";
    } else {
      size_t n = entry.objects.size();
      SLOG_WARN << "manifest " << path << ": its " << Plural(n, "object")
                << " from the last good read " << (n == 1 ? "stays" : "stay") << " in force";
    }
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR || err == ELOOP) return ReadOutcome::kGone;
    SLOG_ERROR << "manifest " << path << ": " << Errno(err);
    return ReadOutcome::kUnchanged;
  }
  if (!S_ISREG(st.st_mode)) return ReadOutcome::kGone;
  auto stamp_of = [](const struct stat& s) {
    return FileStamp{s.st_dev, s.st_ino, s.st_size, Nanoseconds(s.st_mtim), Nanoseconds(s.st_ctim)};
  };
  FileStamp stamp = stamp_of(st);
  bool racy = std::max(stamp.mtime_ns, stamp.ctime_ns) + kRacyWindowNs >= entry.read_at_ns;
  if (!is_new && stamp == entry.stamp && !racy) return ReadOutcome::kUnchanged;

  // O_NONBLOCK: a FIFO swapped in after the stat must not block the watcher.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR || err == ELOOP) return ReadOutcome::kGone;
    ++files_failed_;
    entry.stamp = stamp;  // retried when the file (or its permissions) change
    SLOG_ERROR << "manifest " << path << ": " << Errno(err);
    keep_last_good();
    return ReadOutcome::kUnchanged;
  }
  if (!S_ISREG(st.st_mode)) return ReadOutcome::kGone;
  stamp = stamp_of(st);
  int64_t read_at = RealtimeNowNs();
  std::string content;
  if (static_cast<uint64_t>(st.st_size) <= options_.max_file_bytes) {
    content.reserve(static_cast<size_t>(st.st_size));
  }
  char buf[64 * 1024];
  int read_error = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      read_error = errno;
      break;
    }
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > options_.max_file_bytes) break;
  }
  fd.Reset();
  ++files_read_;
  entry.stamp = stamp;
  if (read_error != 0 || content.size() > options_.max_file_bytes) {
    ++files_failed_;
    if (read_error != 0) {
      SLOG_ERROR << "manifest " << path << ": read: " << Errno(read_error);
    } else {
      SLOG_ERROR << "manifest " << path << ": larger than " << options_.max_file_bytes
                 << " bytes; not read";
    }
    keep_last_good();
    return ReadOutcome::kUnchanged;
  }
  entry.read_at_ns = read_at;
  const ContentDigest digest = Digest(content);
  if (!is_new && digest == entry.content) return ReadOutcome::kUnchanged;
  entry.content = digest;

  ManifestFile parsed = ParseManifest(content, path, /*trim_for_proxy=*/true);
  ++files_parsed_;
  if (parsed.failed()) {
    ++files_failed_;
    entry.failed = true;
    SLOG_ERROR << "manifest " << path << ": " << *parsed.syntax_error;
    keep_last_good();
    return ReadOutcome::kUnchanged;
  }
  if (entry.failed) SLOG_INFO << "manifest " << path << ": readable again";
  entry.failed = false;
  for (const auto& note : parsed.notes) {
    switch (note.level) {
      case ManifestNote::Level::kInfo:
        SLOG_INFO << note.ToString();
        break;
      case ManifestNote::Level::kWarning:
        SLOG_WARN << note.ToString();
        break;
      case ManifestNote::Level::kError:
        SLOG_ERROR << note.ToString() << "; skipped";
        break;
    }
  }
  entry.objects = std::move(parsed.objects);
  return ReadOutcome::kChanged;
}

void ManifestSource::Reconcile() {
  // What the files say now: the first copy of each object by (file name, document) wins.
  std::map<ObjectId, const ManifestObject*> desired;
  std::map<ObjectId, std::vector<std::pair<std::string, std::string>>> duplicates;
  for (const auto& [name, entry] : files_) {
    for (const auto& object : entry.objects) {
      ObjectId id{object.kind(), object.metadata().Key()};
      auto [it, inserted] = desired.emplace(id, &object);
      if (!inserted) {
        duplicates[id].emplace_back(it->second->origin.ToString(), object.origin.ToString());
      }
    }
  }
  for (const auto& [id, pairs] : duplicates) {
    const auto& seen = duplicates_[id];
    for (const auto& [winner, loser] : pairs) {
      if (std::find(seen.begin(), seen.end(), std::pair(winner, loser)) != seen.end()) continue;
      SLOG_WARN << api::ToString(id.first) << " " << id.second << ": defined again in " << loser
                << ", ignored; " << winner << " is in force";
    }
  }
  duplicates_ = std::move(duplicates);

  // Deletes first: an object that moved from one key to another is never in ClusterState twice.
  for (auto it = applied_.begin(); it != applied_.end();) {
    if (desired.contains(it->first)) {
      ++it;
      continue;
    }
    const ObjectId& id = it->first;
    SLOG_INFO << api::ToString(id.first) << " " << id.second << ": removed (was from "
              << it->second.origin.ToString() << ")";
    switch (id.first) {
      case api::Kind::kService:
        state_.DeleteService(id.second);
        break;
      case api::Kind::kEndpointSlice:
        state_.DeleteEndpointSlice(id.second);
        break;
      case api::Kind::kNode:
        state_.DeleteNode(id.second);
        break;
    }
    ++deletes_;
    it = applied_.erase(it);
  }
  for (const auto& [id, object] : desired) {
    auto it = applied_.find(id);
    if (it != applied_.end() && it->second.SameValue(*object)) {
      if (!(it->second.origin == object->origin)) {
        if (it->second.origin.file != object->origin.file) {
          SLOG_INFO << object->Identity() << ": now from " << object->origin.ToString() << " (was "
                    << it->second.origin.ToString() << "), unchanged";
        }
        it->second.origin = object->origin;
      }
      continue;  // an unchanged object is not upserted again
    }
    SLOG_INFO << object->Identity() << ": " << (it == applied_.end() ? "added" : "updated")
              << " from " << object->origin.ToString();
    std::visit(
        [this](const auto& p) {
          using T = std::decay_t<decltype(p)>;
          if constexpr (std::is_same_v<T, ServicePtr>) {
            state_.UpsertService(p);
          } else if constexpr (std::is_same_v<T, EndpointSlicePtr>) {
            state_.UpsertEndpointSlice(p);
          } else {
            state_.UpsertNode(p);
          }
        },
        object->value);
    ++upserts_;
    applied_.insert_or_assign(id, *object);
  }
}

}  // namespace sluice::sources
