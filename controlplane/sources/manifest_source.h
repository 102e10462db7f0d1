// ManifestSource: the standalone source. Services, EndpointSlices and Nodes come from the manifest
// files of one directory (see manifest.h for one file), watched with inotify on the source's own
// thread; every change reaches ClusterState as the difference from what the files said before.
//
// Rules (README.md has them with the reasons): a file with broken syntax keeps its last good
// objects; an invalid object is dropped; of two copies of one object the first by (file name,
// document) wins and the other takes over when it goes; a removed file removes its objects; a
// directory that goes away keeps the state in force until it comes back.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/unique_fd.h"
#include "controlplane/api/object.h"
#include "controlplane/sources/manifest.h"
#include "controlplane/state/cluster_state.h"

namespace sluice::sources {

// The directory cannot be read or watched at start.
class ManifestSourceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ManifestSourceOptions {
  // The name the source registers with ClusterState.
  std::string source_name = "manifests";
  // Events arriving together (an editor's save, a ConfigMap swap, `cp *.yaml`) make one rescan: it
  // runs once no event came for `debounce`, and at the latest `max_delay` after the first one.
  std::chrono::milliseconds debounce{100};
  std::chrono::milliseconds max_delay{1000};
  // How often the directory itself is checked: back after it went away, or replaced by another.
  std::chrono::milliseconds recheck{2000};
  // Larger files are refused (their last good objects stay in force).
  size_t max_file_bytes = 16 << 20;
};

// Non-recursive; *.yaml, *.yml, *.json; never hidden files (".#web.yaml", "..data") or names not
// ending in those extensions (editor leftovers such as "web.yaml~", "web.yaml.swp").
bool IsManifestFileName(std::string_view name);

class ManifestSource {
 public:
  ManifestSource(std::string directory, state::ClusterState& state,
                 ManifestSourceOptions options = {});
  ~ManifestSource();  // Stop()
  ManifestSource(const ManifestSource&) = delete;
  ManifestSource& operator=(const ManifestSource&) = delete;

  // Registers the source with ClusterState, reads the directory, feeds ClusterState, marks the
  // source synced and starts watching. Throws ManifestSourceError when the directory is missing,
  // not a directory, or cannot be watched. Call once.
  void Start();
  // Stops the watcher thread; ClusterState keeps what it holds. Idempotent.
  void Stop();

  // Counters for metrics and tests. `scans` counts completed directory scans (the start included).
  struct Stats {
    uint64_t scans = 0;
    uint64_t upserts = 0;  // Upsert* calls made to ClusterState
    uint64_t deletes = 0;  // Delete* calls made to ClusterState
    uint64_t files_read = 0;
    uint64_t files_parsed = 0;
    uint64_t files_failed = 0;  // parse attempts refused (syntax, size, I/O)
    bool directory_present = false;
  };
  Stats stats() const;

  const std::string& directory() const { return directory_; }

 private:
  // What decides whether a file is read again.
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  // Size and SHA-512 prefix of a file's text: equal digests are equal texts.
  struct ContentDigest {
    size_t size = 0;
    std::array<uint8_t, 32> hash{};
    bool operator==(const ContentDigest&) const = default;
  };
  static ContentDigest Digest(std::string_view text);

  struct FileEntry {
    FileStamp stamp;
    // The file's content when last read (its digest: the text itself would double what a large
    // manifest directory costs), and when that was: a write in the same timestamp tick as our
    // read leaves the stamp equal, so a stamp that recent is not trusted.
    ContentDigest content;
    int64_t read_at_ns = 0;
    std::vector<ManifestObject> objects;  // the last good parse
    bool failed = false;                  // the current content was refused
  };
  using ObjectId = std::pair<api::Kind, std::string>;  // kind, "namespace/name" or node name

  enum class ReadOutcome { kUnchanged, kChanged, kGone };

  void Run(std::stop_token stop);
  bool AddWatch();  // false (logged) when the directory is not there
  void DirectoryLost(std::string_view why);
  void CheckDirectory();
  // Reads what changed and pushes the difference. Returns false when the directory is gone.
  bool Rescan();
  ReadOutcome Refresh(const std::string& name, FileEntry& entry, bool is_new);
  void Reconcile();

  const std::string directory_;
  state::ClusterState& state_;
  const ManifestSourceOptions options_;

  UniqueFd inotify_;
  UniqueFd wake_;  // eventfd: Stop() wakes the thread
  int wd_ = -1;    // the directory's watch; -1 while the directory is gone
  dev_t dir_dev_ = 0;
  ino_t dir_ino_ = 0;

  // Touched by Start() before the thread runs, then by the thread only.
  std::map<std::string, FileEntry> files_;  // by file name: the order duplicates are decided in
  std::map<ObjectId, ManifestObject> applied_;
  // Duplicates already logged: object -> (winner origin, loser origin) pairs.
  std::map<ObjectId, std::vector<std::pair<std::string, std::string>>> duplicates_;

  std::atomic<uint64_t> scans_{0}, upserts_{0}, deletes_{0}, files_read_{0}, files_parsed_{0},
      files_failed_{0};
  std::atomic<bool> present_{false};
  bool started_ = false;
  std::jthread thread_;
};

}  // namespace sluice::sources
