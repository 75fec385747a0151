#include "agent/daemon/health_state_file.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/output/atomic_file.hpp"

namespace sidecar::daemon {

namespace fs = std::filesystem;

bool read_admin_token(const std::string& manifest_source, const std::string& token_file, std::string* token,
                      std::string* error) {
  const std::string where = manifest_source + ": admin.token_file: ";
  std::ifstream in(token_file, std::ios::binary);
  if (!in) {
    *error = where + "cannot read " + token_file + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string t = text.str();
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!t.empty() && space(t.back())) t.pop_back();
  size_t first = 0;
  while (first < t.size() && space(t[first])) ++first;
  t.erase(0, first);
  if (t.empty()) {
    *error = where + token_file + " is empty";
    return false;
  }
  if (t.find_first_of(" \t\r\n") != std::string::npos) {
    *error = where + token_file + " must hold one token (no spaces or line breaks inside it)";
    return false;
  }
  *token = std::move(t);
  return true;
}

HealthStateFile::HealthStateFile(const std::string& state_dir, const std::string& manifest_path) : dir_(state_dir) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(manifest_path, ec);
  const std::string manifest = ec ? manifest_path : absolute.lexically_normal().string();
  path_ = (fs::path(dir_) / core::health_state_file_name(manifest)).string();
}

core::HealthState HealthStateFile::load() const {
  std::error_code ec;
  if (!fs::exists(path_, ec)) return {};
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    spdlog::warn("{}: cannot read the health state file ({}); starting without the last check reports and "
                 "maintenance", path_, std::strerror(errno));
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string error;
  auto state = core::decode_health_state(text.str(), &error);
  if (!state) {
    spdlog::warn("{}: ignoring the health state file: {}; starting without the last check reports and "
                 "maintenance", path_, error);
    return {};
  }
  return std::move(*state);
}

bool HealthStateFile::save(const std::string& bytes) {
  std::string error;
  if (auto err = output::make_directories(dir_)) {
    error = *err;
  } else {
    auto r = output::write_file_atomic(path_, bytes, 0600, false);
    if (!r.ok()) error = r.error;
  }
  if (!error.empty()) {
    if (!failing_) {
      spdlog::warn("cannot write the health state file {}: {}; a restarted agent will not know the last check "
                   "reports and maintenance", path_, error);
    }
    failing_ = true;
    return false;
  }
  if (failing_) spdlog::info("health state file {} written again", path_);
  failing_ = false;
  return true;
}

void HealthStateFile::remove() const {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) spdlog::warn("cannot remove {}: {}", path_, std::strerror(errno));
}

}  // namespace sidecar::daemon
