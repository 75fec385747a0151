#include "agent/daemon/lease_state_file.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/core/lease_record.hpp"
#include "agent/core/registration.hpp"
#include "agent/output/atomic_file.hpp"

namespace sidecar::daemon {

namespace fs = std::filesystem;

std::string default_state_dir() {
  if (const char* env = std::getenv("STATE_DIRECTORY"); env != nullptr && *env != '\0') {
    std::string dirs(env);
    return dirs.substr(0, dirs.find(':'));
  }
  return "/var/lib/etcd-sidecar";
}

LeaseStateFile::LeaseStateFile(const std::string& state_dir, const std::string& manifest_path,
                               std::vector<std::string> endpoints)
    : dir_(state_dir), endpoints_(std::move(endpoints)) {
  std::error_code ec;
  fs::path absolute = fs::absolute(manifest_path, ec);
  manifest_ = ec ? manifest_path : absolute.lexically_normal().string();
  path_ = (fs::path(dir_) / core::lease_record_file_name(manifest_)).string();
}

std::optional<int64_t> LeaseStateFile::read_previous() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  std::string error;
  auto record = core::decode_lease_record(text.str(), &error);
  if (!record) {
    spdlog::warn("{}: ignoring the lease state file: {}", path_, error);
    return std::nullopt;
  }
  spdlog::info("{}: previous process (pid {}) held lease {}; adopting it if etcd still has it", path_, record->pid,
               core::lease_to_hex(record->lease));
  return record->lease;
}

bool LeaseStateFile::record(int64_t lease) {
  core::LeaseRecord rec{.lease = lease, .pid = ::getpid(), .manifest = manifest_, .endpoints = endpoints_};
  std::string error;
  if (auto err = output::make_directories(dir_)) {
    error = *err;
  } else {
    auto r = output::write_file_atomic(path_, core::encode_lease_record(rec), 0600, false);
    if (!r.ok()) error = r.error;
  }
  if (!error.empty()) {
    if (!failing_) {
      spdlog::warn("cannot record lease {} in {}: {}; a restarted agent will register on a new lease",
                   core::lease_to_hex(lease), path_, error);
    }
    failing_ = true;
    return false;
  }
  if (failing_) spdlog::info("lease {} recorded in {} again", core::lease_to_hex(lease), path_);
  failing_ = false;
  return true;
}

void LeaseStateFile::remove() const {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("cannot remove {}: {}", path_, std::strerror(errno));
  }
}

}  // namespace sidecar::daemon
