// Owns: the health state file on disk (one per manifest, next to the lease record): the app's last TTL
//       reports and the maintenance of each service, so that both survive a restart of the agent.
// Thread: load() on the main thread at start; save() on the writer pool (blocking, fsync).
#pragma once

#include <string>

#include "agent/core/health_state.hpp"

namespace sidecar::daemon {

// The admin token from admin.token_file: the file's content without surrounding whitespace. False with
// `*error` naming the file ("<manifest>: admin.token_file: cannot read /x: No such file or directory")
// when it cannot be read or is empty.
bool read_admin_token(const std::string& manifest_source, const std::string& token_file, std::string* token,
                      std::string* error);

class HealthStateFile {
 public:
  // `manifest_path` is made absolute: the file name is derived from it (core::health_state_file_name).
  HealthStateFile(const std::string& state_dir, const std::string& manifest_path);

  const std::string& path() const { return path_; }
  // What a previous process kept; empty when there is no file. A corrupt or unreadable file is a warning
  // naming it, and the agent starts afresh: it must never keep the agent from starting.
  core::HealthState load() const;
  // Atomic replace (write, fsync, rename). False (one warning per failure streak) when it cannot be written.
  bool save(const std::string& bytes);
  // Nothing to keep (no reports, no maintenance): no file, so a clean state directory stays empty.
  void remove() const;

 private:
  std::string dir_;
  std::string path_;
  bool failing_ = false;
};

}  // namespace sidecar::daemon
