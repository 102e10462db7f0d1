// ManifestSource against a real directory, real inotify and a real ClusterState. Every wait is
// for a condition, with a generous timeout; nothing assumes how fast the watcher is.
#include "controlplane/sources/manifest_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace sluice::sources {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kTimeout = 20s;

bool WaitFor(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

std::string ServiceYaml(std::string_view name, int port, std::string_view ip = "10.96.0.10") {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + std::string(name) +
         "\n  namespace: shop\nspec:\n  clusterIP: " + std::string(ip) +
         "\n  ports:\n  - port: " + std::to_string(port) + "\n";
}

std::string SliceYaml(std::string_view service, std::string_view ip) {
  return "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " +
         std::string(service) +
         "-1\n  namespace: shop\n  labels:\n"
         "    kubernetes.io/service-name: " +
         std::string(service) + "\naddressType: IPv4\nendpoints:\n- addresses: [\"" +
         std::string(ip) + "\"]\nports:\n- port: 8080\n";
}

std::string NodeYaml(std::string_view name) {
  return "apiVersion: v1\nkind: Node\nmetadata:\n  name: " + std::string(name) + "\n";
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sluice-manifests-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class ManifestSourceTest : public ::testing::Test {
 protected:
  ManifestSourceTest() : dir_(root_.path() / "manifests"), state_("node-1") {
    fs::create_directory(dir_);
  }

  ManifestSourceOptions Options() const {
    ManifestSourceOptions o;
    o.debounce = 20ms;
    o.max_delay = 200ms;
    o.recheck = 50ms;
    return o;
  }

  ManifestSource& Start() {
    source_ = std::make_unique<ManifestSource>(dir_.string(), state_, Options());
    source_->Start();
    state_.TakePendingChanges();
    return *source_;
  }

  // Written in place: created (or truncated), then written, as `cat > file` does.
  void WriteInPlace(const fs::path& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
  }
  // Written next to the file, then renamed over it, as most editors and `kubectl`-style tools do.
  void WriteAtomically(const std::string& name, std::string_view content) {
    fs::path tmp = dir_ / ("." + name + ".tmp");
    WriteInPlace(tmp, content);
    fs::rename(tmp, dir_ / name);
  }

  int PortOf(std::string_view key) {
    auto s = state_.GetService(key);
    return s && !s->spec.ports.empty() ? s->spec.ports[0].port : -1;
  }

  ManifestSource::Stats Stats() const { return source_->stats(); }

  TempDir root_;
  fs::path dir_;
  state::ClusterState state_;
  std::unique_ptr<ManifestSource> source_;
};

TEST_F(ManifestSourceTest, MissingDirectoryFailsAtStart) {
  ManifestSource source((root_.path() / "nope").string(), state_, Options());
  try {
    source.Start();
    FAIL() << "expected ManifestSourceError";
  } catch (const ManifestSourceError& e) {
    EXPECT_EQ(std::string(e.what()),
              "manifest directory " + (root_.path() / "nope").string() + ": does not exist");
  }
  WriteInPlace(root_.path() / "file", "x");
  ManifestSource not_dir((root_.path() / "file").string(), state_, Options());
  EXPECT_THROW(not_dir.Start(), ManifestSourceError);
}

TEST_F(ManifestSourceTest, StartReadsTheDirectoryThenMarksSynced) {
  WriteInPlace(dir_ / "web.yaml",
               ServiceYaml("web", 80) + "---\n" + SliceYaml("web", "10.244.0.5"));
  WriteInPlace(
      dir_ / "nodes.json",
      R"({"apiVersion": "v1", "kind": "NodeList", "items": [{"metadata": {"name": "node-1"}}]})");
  source_ = std::make_unique<ManifestSource>(dir_.string(), state_, Options());
  state_.RegisterSource("other");  // the sync loop waits for every source
  source_->Start();
  EXPECT_EQ(PortOf("shop/web"), 80);
  EXPECT_EQ(state_.SlicesOf("shop/web").size(), 1u);
  ASSERT_NE(state_.ThisNode(), nullptr);
  EXPECT_FALSE(state_.AllSourcesSynced());
  state_.MarkSourceSynced("other");
  EXPECT_TRUE(state_.AllSourcesSynced());
  EXPECT_EQ(Stats().scans, 1u);
  EXPECT_EQ(Stats().upserts, 3u);
  EXPECT_TRUE(Stats().directory_present);
}

TEST_F(ManifestSourceTest, WrittenChangedRemoved) {
  Start();
  EXPECT_EQ(state_.ServiceCount(), 0u);
  EXPECT_TRUE(state_.AllSourcesSynced());

  WriteInPlace(dir_ / "web.yaml",
               ServiceYaml("web", 80) + "---\n" + SliceYaml("web", "10.244.0.5"));
  ASSERT_TRUE(
      WaitFor([&] { return PortOf("shop/web") == 80 && state_.SlicesOf("shop/web").size() == 1; }));
  auto changes = state_.TakePendingChanges();
  EXPECT_TRUE(changes.services.contains("shop/web"));

  WriteInPlace(dir_ / "web.yaml",
               ServiceYaml("web", 81) + "---\n" + SliceYaml("web", "10.244.0.5"));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 81; }));
  changes = state_.TakePendingChanges();
  EXPECT_EQ(changes.services, (std::set<std::string, std::less<>>{"shop/web"}));

  fs::remove(dir_ / "web.yaml");
  ASSERT_TRUE(
      WaitFor([&] { return state_.ServiceCount() == 0 && state_.EndpointSliceCount() == 0; }));
}

TEST_F(ManifestSourceTest, OnlyChangedObjectsArePushed) {
  Start();
  WriteAtomically("app.yaml", ServiceYaml("a", 80, "10.96.0.1") + "---\n" +
                                  ServiceYaml("b", 80, "10.96.0.2") + "---\n" + NodeYaml("node-2"));
  ASSERT_TRUE(WaitFor([&] { return state_.ServiceCount() == 2 && state_.Nodes().size() == 1; }));
  state_.TakePendingChanges();
  uint64_t upserts = Stats().upserts;

  WriteAtomically("app.yaml", ServiceYaml("a", 80, "10.96.0.1") + "---\n" +
                                  ServiceYaml("b", 90, "10.96.0.2") + "---\n" + NodeYaml("node-2"));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/b") == 90; }));
  EXPECT_EQ(Stats().upserts, upserts + 1);  // b only
  EXPECT_EQ(state_.TakePendingChanges().services, (std::set<std::string, std::less<>>{"shop/b"}));
}

TEST_F(ManifestSourceTest, TouchedOrRewrittenUnchangedFileChangesNothing) {
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 80));
  Start();
  ASSERT_EQ(PortOf("shop/web"), 80);
  auto before = Stats();

  // touch: a new mtime, the same bytes. Read again (the stamp changed), not parsed, not pushed.
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir_ / "web.yaml").c_str(), nullptr, 0), 0);
  ASSERT_TRUE(WaitFor([&] { return Stats().files_read > before.files_read; }));
  // A whole new file (a new inode) with the same content.
  WriteAtomically("web.yaml", ServiceYaml("web", 80));
  ASSERT_TRUE(WaitFor([&] { return Stats().files_read > before.files_read + 1; }));

  auto after = Stats();
  EXPECT_EQ(after.files_parsed, before.files_parsed);
  EXPECT_EQ(after.upserts, before.upserts);
  EXPECT_EQ(after.deletes, before.deletes);
  EXPECT_TRUE(state_.TakePendingChanges().empty());
}

TEST_F(ManifestSourceTest, BrokenSyntaxKeepsTheLastGoodObjects) {
  WriteInPlace(dir_ / "web.yaml",
               ServiceYaml("web", 80) + "---\n" + SliceYaml("web", "10.244.0.5"));
  Start();
  auto before = Stats();

  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 81) + "---\nkind: [broken\n");
  ASSERT_TRUE(WaitFor([&] { return Stats().files_failed > before.files_failed; }));
  EXPECT_EQ(PortOf("shop/web"), 80);  // the good first document is not taken either
  EXPECT_EQ(state_.SlicesOf("shop/web").size(), 1u);
  EXPECT_EQ(Stats().upserts, before.upserts);
  EXPECT_EQ(Stats().deletes, before.deletes);
  EXPECT_TRUE(state_.TakePendingChanges().empty());

  // Fixed: read as it is now (the slice was left out of the fixed file).
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 82));
  ASSERT_TRUE(
      WaitFor([&] { return PortOf("shop/web") == 82 && state_.EndpointSliceCount() == 0; }));
}

TEST_F(ManifestSourceTest, BrokenNewFileAddsNothingAndHarmsNoOther) {
  WriteInPlace(dir_ / "a.yaml", ServiceYaml("a", 80));
  Start();
  auto before = Stats();
  WriteInPlace(dir_ / "b.json", "{\"kind\": \"Service\",");
  ASSERT_TRUE(WaitFor([&] { return Stats().files_failed > before.files_failed; }));
  EXPECT_EQ(state_.ServiceKeys(), std::vector<std::string>{"shop/a"});
}

TEST_F(ManifestSourceTest, InvalidObjectIsDroppedOthersStay) {
  WriteInPlace(dir_ / "app.yaml",
               ServiceYaml("a", 80, "10.96.0.1") + "---\n" + ServiceYaml("b", 80, "10.96.0.2"));
  Start();
  ASSERT_EQ(state_.ServiceCount(), 2u);
  auto before = Stats();

  // b becomes invalid: it is removed, as kube-proxy drops a Service it cannot read; a stays,
  // untouched.
  WriteInPlace(dir_ / "app.yaml",
               ServiceYaml("a", 80, "10.96.0.1") + "---\n" + ServiceYaml("b", 70000, "10.96.0.2"));
  ASSERT_TRUE(WaitFor([&] { return state_.GetService("shop/b") == nullptr; }));
  EXPECT_EQ(PortOf("shop/a"), 80);
  EXPECT_EQ(Stats().upserts, before.upserts);
  EXPECT_EQ(Stats().deletes, before.deletes + 1);
  EXPECT_EQ(state_.TakePendingChanges().services, (std::set<std::string, std::less<>>{"shop/b"}));

  WriteInPlace(dir_ / "app.yaml",
               ServiceYaml("a", 80, "10.96.0.1") + "---\n" + ServiceYaml("b", 8080, "10.96.0.2"));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/b") == 8080; }));
}

TEST_F(ManifestSourceTest, DuplicatesFirstFileWinsAndTheOtherTakesOver) {
  WriteInPlace(dir_ / "b.yaml", ServiceYaml("web", 81));
  WriteInPlace(dir_ / "a.yaml", ServiceYaml("web", 80));
  Start();
  EXPECT_EQ(PortOf("shop/web"), 80);  // a.yaml sorts first

  fs::remove(dir_ / "a.yaml");
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 81; }));
  EXPECT_EQ(state_.ServiceCount(), 1u);

  WriteInPlace(dir_ / "a.yaml", ServiceYaml("web", 80));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 80; }));

  // The winner becomes invalid: the other copy takes over.
  WriteInPlace(dir_ / "a.yaml", ServiceYaml("web", 0));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 81; }));

  // Both gone: the object goes.
  fs::remove(dir_ / "a.yaml");
  fs::remove(dir_ / "b.yaml");
  ASSERT_TRUE(WaitFor([&] { return state_.ServiceCount() == 0; }));
}

TEST_F(ManifestSourceTest, DuplicateInOneFileFirstDocumentWins) {
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 80) + "---\n" + ServiceYaml("web", 81));
  Start();
  EXPECT_EQ(PortOf("shop/web"), 80);
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 81));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 81; }));
}

TEST_F(ManifestSourceTest, TakeoverOfAnEqualCopyPushesNothing) {
  WriteInPlace(dir_ / "a.yaml", ServiceYaml("web", 80));
  WriteInPlace(dir_ / "b.yaml", ServiceYaml("web", 80));
  Start();
  auto before = Stats();
  fs::remove(dir_ / "a.yaml");
  ASSERT_TRUE(WaitFor([&] { return Stats().scans > before.scans; }));
  // The rescan that saw the removal may not be the first one after it: wait until a.yaml's
  // absence was surely handled by writing an unrelated file and seeing it arrive.
  WriteInPlace(dir_ / "z.yaml", NodeYaml("node-9"));
  ASSERT_TRUE(WaitFor([&] { return state_.GetNode("node-9") != nullptr; }));
  EXPECT_EQ(PortOf("shop/web"), 80);
  EXPECT_EQ(Stats().deletes, before.deletes);
  EXPECT_EQ(Stats().upserts, before.upserts + 1);  // node-9 only
}

TEST_F(ManifestSourceTest, RenamedIntoTheDirectory) {
  Start();
  fs::path outside = root_.path() / "web.yaml";
  WriteInPlace(outside, ServiceYaml("web", 80));
  fs::rename(outside, dir_ / "web.yaml");
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 80; }));

  // Renamed out: gone.
  fs::rename(dir_ / "web.yaml", outside);
  ASSERT_TRUE(WaitFor([&] { return state_.ServiceCount() == 0; }));

  // An editor's save: a temporary next to the file, renamed over it.
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 80));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 80; }));
  WriteAtomically("web.yaml", ServiceYaml("web", 81));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 81; }));
}

TEST_F(ManifestSourceTest, HiddenAndEditorFilesAreNotRead) {
  Start();
  for (std::string name : {".web.yaml", "web.yaml~", "web.yaml.swp", ".#web.yaml", "web.txt",
                           "#web.yaml#", "web.yaml.bak"}) {
    WriteInPlace(dir_ / name, ServiceYaml("hidden", 80));
  }
  fs::create_directory(dir_ / "sub.yaml");
  WriteInPlace(dir_ / "sub.yaml" / "x.yaml", ServiceYaml("nested", 80));
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 80));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 80; }));
  EXPECT_EQ(state_.ServiceKeys(), std::vector<std::string>{"shop/web"});

  EXPECT_TRUE(IsManifestFileName("a.yml"));
  EXPECT_TRUE(IsManifestFileName("a.json"));
  EXPECT_FALSE(IsManifestFileName("..data"));
  EXPECT_FALSE(IsManifestFileName("a.yaml.swx"));
  EXPECT_FALSE(IsManifestFileName("a.YAML"));
}

// A ConfigMap volume as the kubelet writes it: the files are symlinks through `..data`, itself a
// symlink to a timestamped directory; an update writes a new directory and renames a new `..data`
// symlink over the old one.
TEST_F(ManifestSourceTest, ConfigMapVolumeDataSwap) {
  auto write_version = [&](const std::string& version,
                           const std::vector<std::pair<std::string, std::string>>& files) {
    fs::create_directory(dir_ / version);
    for (const auto& [name, content] : files) WriteInPlace(dir_ / version / name, content);
    fs::create_symlink(version, dir_ / "..data_tmp");
    fs::rename(dir_ / "..data_tmp", dir_ / "..data");  // the atomic swap
  };
  write_version("..2024_05_01_10_00_00.1", {{"web.yaml", ServiceYaml("web", 80)},
                                            {"db.yaml", ServiceYaml("db", 5432, "10.96.0.20")}});
  fs::create_symlink("..data/web.yaml", dir_ / "web.yaml");
  fs::create_symlink("..data/db.yaml", dir_ / "db.yaml");
  Start();
  ASSERT_EQ(PortOf("shop/web"), 80);
  ASSERT_EQ(PortOf("shop/db"), 5432);

  // An update that changes web.yaml and drops db.yaml (its symlink dangles until the kubelet
  // removes it).
  write_version("..2024_05_01_10_05_00.2", {{"web.yaml", ServiceYaml("web", 81)}});
  fs::remove_all(dir_ / "..2024_05_01_10_00_00.1");
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 81 && !state_.GetService("shop/db"); }));
  fs::remove(dir_ / "db.yaml");

  // A key added: the new file and its symlink.
  write_version("..2024_05_01_10_10_00.3",
                {{"web.yaml", ServiceYaml("web", 81)}, {"node.yaml", NodeYaml("node-1")}});
  fs::create_symlink("..data/node.yaml", dir_ / "node.yaml");
  fs::remove_all(dir_ / "..2024_05_01_10_05_00.2");
  ASSERT_TRUE(WaitFor([&] { return state_.ThisNode() != nullptr; }));
  EXPECT_EQ(PortOf("shop/web"), 81);
}

TEST_F(ManifestSourceTest, DirectoryGoneKeepsStateAndComesBack) {
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 80));
  Start();
  auto before = Stats();

  // Moved away: nothing changes in ClusterState.
  fs::path moved = root_.path() / "moved";
  fs::rename(dir_, moved);
  ASSERT_TRUE(WaitFor([&] { return !Stats().directory_present; }));
  EXPECT_EQ(PortOf("shop/web"), 80);
  EXPECT_EQ(Stats().deletes, before.deletes);

  // Back, with different content: read again and reconciled.
  fs::remove_all(moved);
  fs::create_directory(dir_);
  WriteInPlace(dir_ / "db.yaml", ServiceYaml("db", 5432, "10.96.0.20"));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/db") == 5432 && !state_.GetService("shop/web"); }));
  ASSERT_TRUE(WaitFor([&] { return Stats().directory_present; }));

  // Watched again: later changes arrive.
  WriteInPlace(dir_ / "db.yaml", ServiceYaml("db", 5433, "10.96.0.20"));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/db") == 5433; }));

  // Moved away and deleted: the state stays. (`rm -rf` on the directory itself deletes its files
  // first, which the watcher may see as the files going; README.md says so.)
  fs::path gone = root_.path() / "gone";
  fs::rename(dir_, gone);
  fs::remove_all(gone);
  ASSERT_TRUE(WaitFor([&] { return !Stats().directory_present; }));
  EXPECT_EQ(PortOf("shop/db"), 5433);
}

// The directory path is a symlink that is repointed to another directory: no event says so in the
// old one; the periodic check notices and reads the new one.
TEST_F(ManifestSourceTest, SymlinkedDirectoryRepointed) {
  fs::path v1 = root_.path() / "v1", v2 = root_.path() / "v2", link = root_.path() / "current";
  fs::create_directory(v1);
  fs::create_directory(v2);
  WriteInPlace(v1 / "web.yaml", ServiceYaml("web", 80));
  WriteInPlace(v2 / "web.yaml", ServiceYaml("web", 81));
  fs::create_directory_symlink(v1, link);
  source_ = std::make_unique<ManifestSource>(link.string(), state_, Options());
  source_->Start();
  ASSERT_EQ(PortOf("shop/web"), 80);

  fs::create_directory_symlink(v2, root_.path() / "current.tmp");
  fs::rename(root_.path() / "current.tmp", link);
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 81; }));
  // And the new directory is the one watched.
  WriteInPlace(v2 / "web.yaml", ServiceYaml("web", 82));
  ASSERT_TRUE(WaitFor([&] { return PortOf("shop/web") == 82; }));
}

TEST_F(ManifestSourceTest, StopIsPromptAndIdempotent) {
  Start();
  source_->Stop();
  source_->Stop();
  // After Stop, changes are no longer followed.
  WriteInPlace(dir_ / "web.yaml", ServiceYaml("web", 80));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(state_.ServiceCount(), 0u);
}

}  // namespace
}  // namespace sluice::sources
