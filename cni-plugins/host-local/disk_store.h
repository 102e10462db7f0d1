// host-local's on-disk reservation store, in the reference plugin's layout so a node can switch
// between the reference host-local and ours in either direction:
//   <dataDir>/<network>/<ip>                 content "<containerID>\r\n<ifname>" (old: "<containerID>")
//   <dataDir>/<network>/last_reserved_ip.<N> the last address handed out from range set N, no newline
//   <dataDir>/<network>/lock                 empty; flock()ed around every change
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "common/unique_fd.h"

namespace sluice::hostlocal {

struct Reservation {
  IpAddress ip;
  std::string container_id;  // empty when the file's content could not be read
  std::string ifname;        // empty for the pre-0.8.0 format that held the ID alone
  std::string file_name;
};

class DiskStore {
 public:
  // Creates <data_dir>/<network>/ if needed. Throws std::system_error naming the path.
  DiskStore(const std::string& data_dir, const std::string& network);

  // Exclusive lock over the whole store, held until the returned guard is destroyed.
  class Lock {
   public:
    explicit Lock(UniqueFd fd) : fd_(std::move(fd)) {}
   private:
    UniqueFd fd_;
  };
  Lock Acquire();

  // Claims `ip` for the attachment; false if some file already holds it. The file appears with its
  // full content at once (written aside, then linked into place), so a crash never leaves a
  // half-written claim.
  bool Reserve(const IpAddress& ip, const std::string& container_id, const std::string& ifname);
  void SetLastReserved(int range_set, const IpAddress& ip);
  std::optional<IpAddress> LastReserved(int range_set, IpFamily family) const;

  // Every reservation file (IP-named files only).
  std::vector<Reservation> List() const;
  // Addresses owned by the attachment (files in either content format).
  std::vector<IpAddress> FindOwned(const std::string& container_id, const std::string& ifname) const;
  // Deletes the attachment's reservations; returns how many went.
  int ReleaseOwned(const std::string& container_id, const std::string& ifname);
  void Release(const Reservation& r);
  // Removes temporary files a killed writer left behind.
  void RemoveStaleTemporaries();

  const std::string& dir() const { return dir_; }

 private:
  bool Owns(const Reservation& r, const std::string& container_id, const std::string& ifname) const;
  std::string dir_;
};

}  // namespace sluice::hostlocal
