#include "cni-plugins/host-local/disk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>

namespace sluice::hostlocal {
namespace {

constexpr std::string_view kTempPrefix = ".sluice-tmp-";
constexpr std::string_view kLastReservedPrefix = "last_reserved_ip.";

[[noreturn]] void Fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void MakeDirs(const std::string& path) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      Fail("failed to create IPAM store directory " + partial);
    }
  }
}

std::optional<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  std::string content;
  char buf[512];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > 4096) break;  // not ours: a reservation is a few dozen bytes
  }
  return content;
}

void WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Fail("failed to write " + path);
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

}  // namespace

DiskStore::DiskStore(const std::string& data_dir, const std::string& network)
    : dir_(data_dir + "/" + network) {
  MakeDirs(dir_);
}

DiskStore::Lock DiskStore::Acquire() {
  std::string path = dir_ + "/lock";
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) Fail("failed to open IPAM lock " + path);
  while (flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) Fail("failed to lock " + path);
  }
  return Lock(std::move(fd));
}

bool DiskStore::Reserve(const IpAddress& ip, const std::string& container_id,
                        const std::string& ifname) {
  std::string final_path = dir_ + "/" + ip.ToString();
  // Cheap pre-check: most probes of a busy range hit a taken address.
  if (access(final_path.c_str(), F_OK) == 0) return false;
  std::string tmp_path = dir_ + "/" + std::string(kTempPrefix) + std::to_string(getpid());
  {
    UniqueFd fd(open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) Fail("failed to create " + tmp_path);
    WriteAll(fd.get(), container_id + "\r\n" + ifname, tmp_path);
  }
  int rc = link(tmp_path.c_str(), final_path.c_str());
  int saved = errno;
  unlink(tmp_path.c_str());
  if (rc == 0) return true;
  if (saved == EEXIST) return false;
  errno = saved;
  Fail("failed to reserve " + final_path);
}

void DiskStore::SetLastReserved(int range_set, const IpAddress& ip) {
  std::string path = dir_ + "/" + std::string(kLastReservedPrefix) + std::to_string(range_set);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) Fail("failed to write " + path);
  WriteAll(fd.get(), ip.ToString(), path);
}

std::optional<IpAddress> DiskStore::LastReserved(int range_set, IpFamily family) const {
  auto content = ReadSmallFile(dir_ + "/" + std::string(kLastReservedPrefix) +
                               std::to_string(range_set));
  if (!content) return std::nullopt;
  auto ip = IpAddress::Parse(Trim(*content));
  if (!ip || ip->family() != family) return std::nullopt;
  return ip;
}

std::vector<Reservation> DiskStore::List() const {
  std::vector<Reservation> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir_.c_str()), closedir);
  if (!d) Fail("failed to read IPAM store " + dir_);
  while (dirent* e = readdir(d.get())) {
    std::string name = e->d_name;
    // File names are addresses; Windows hosts write IPv6 with '_' for ':'.
    std::string as_ip = name;
    for (char& c : as_ip) {
      if (c == '_') c = ':';
    }
    auto ip = IpAddress::Parse(as_ip);
    if (!ip) continue;
    Reservation r{*ip, "", "", name};
    if (auto content = ReadSmallFile(dir_ + "/" + name)) {
      auto sep = content->find("\r\n");
      if (sep == std::string::npos) {
        r.container_id = Trim(*content);
      } else {
        r.container_id = Trim(content->substr(0, sep));
        r.ifname = Trim(content->substr(sep + 2));
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

bool DiskStore::Owns(const Reservation& r, const std::string& container_id,
                     const std::string& ifname) const {
  if (r.container_id != container_id) return false;
  return r.ifname.empty() || r.ifname == ifname;
}

std::vector<IpAddress> DiskStore::FindOwned(const std::string& container_id,
                                            const std::string& ifname) const {
  std::vector<IpAddress> out;
  for (const auto& r : List()) {
    if (Owns(r, container_id, ifname)) out.push_back(r.ip);
  }
  return out;
}

int DiskStore::ReleaseOwned(const std::string& container_id, const std::string& ifname) {
  int n = 0;
  for (const auto& r : List()) {
    if (Owns(r, container_id, ifname)) {
      Release(r);
      ++n;
    }
  }
  return n;
}

void DiskStore::Release(const Reservation& r) {
  std::string path = dir_ + "/" + r.file_name;
  if (unlink(path.c_str()) != 0 && errno != ENOENT) Fail("failed to release " + path);
}

void DiskStore::RemoveStaleTemporaries() {
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir_.c_str()), closedir);
  if (!d) return;
  while (dirent* e = readdir(d.get())) {
    std::string_view name = e->d_name;
    if (name.starts_with(kTempPrefix)) unlink((dir_ + "/" + std::string(name)).c_str());
  }
}

}  // namespace sluice::hostlocal
