// Owns: the lease state file on disk (one per manifest) through which a restarted agent adopts its lease.
// Thread: read once at start on the main thread; written on the writer pool; removed on the io thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sidecar::daemon {

// $STATE_DIRECTORY (systemd's StateDirectory=; the first entry if it lists several), else
// /var/lib/etcd-sidecar.
std::string default_state_dir();

class LeaseStateFile {
 public:
  // `manifest_path` is made absolute: the file name is derived from it (core::lease_record_file_name).
  LeaseStateFile(const std::string& state_dir, const std::string& manifest_path, std::vector<std::string> endpoints);

  const std::string& path() const { return path_; }
  // The lease a previous process recorded, or nullopt (no file: a first start or a clean stop before).
  // An unreadable or malformed file is reported once and ignored: it must never keep the agent from
  // registering.
  std::optional<int64_t> read_previous() const;
  // Blocking (fsync): call it on the writer pool. False (and one warning per failure streak) when the
  // directory is not writable; the agent runs on without a gap-free restart.
  bool record(int64_t lease);
  // After a clean deregistration: a successor must not try to adopt a revoked lease.
  void remove() const;

 private:
  std::string dir_;
  std::string path_;
  std::string manifest_;
  std::vector<std::string> endpoints_;
  bool failing_ = false;
};

}  // namespace sidecar::daemon
