#include "agent/output/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace sidecar::output {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string failure(std::string_view op, std::string_view path, int err) {
  std::string out(op);
  out += ' ';
  out += path;
  out += ": ";
  out += errno_text(err);
  return out;
}

struct SplitPath {
  std::string dir;   // "." when the path has no '/'
  std::string base;  // empty when the path ends in '/'
};

SplitPath split_path(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

bool write_all(int fd, std::string_view bytes, int& err) {
  size_t off = 0;
  while (off < bytes.size()) {
    size_t chunk = std::min<size_t>(bytes.size() - off, size_t{1} << 30);
    ssize_t n = ::write(fd, bytes.data() + off, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return false;
    }
    if (n == 0) {  // no progress and no errno: the only sensible reading is a full device
      err = ENOSPC;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// Empty on success, else the warning text. EINVAL: the filesystem cannot fsync directories (some FUSE
// and network filesystems); the rename is done, there is nothing better to do.
std::string sync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failure("open directory", dir, errno);
  std::string warning;
  if (::fsync(fd) != 0 && errno != EINVAL) warning = failure("fsync directory", dir, errno);
  ::close(fd);
  return warning;
}

}  // namespace

std::optional<std::string> make_directories(const std::string& dir) {
  if (dir.empty()) return std::nullopt;
  struct stat st{};
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return std::nullopt;
    return failure("mkdir", dir, ENOTDIR);
  }
  // Walk every prefix ending before a '/', then the whole path.
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    if (dir[pos - 1] == '/') continue;  // "a//b"
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) == 0) continue;
    int err = errno;
    if (err == EEXIST) {
      if (::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
      return failure("mkdir", prefix, ENOTDIR);
    }
    return failure("mkdir", prefix, err);
  }
  return std::nullopt;
}

bool same_content(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st{};
  bool same = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) == bytes.size();
  size_t off = 0;
  char buf[65536];
  while (same && off < bytes.size()) {
    ssize_t n = ::read(fd, buf, std::min(sizeof(buf), bytes.size() - off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || std::memcmp(buf, bytes.data() + off, static_cast<size_t>(n)) != 0) {
      same = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (same) {  // the file may have grown since fstat
    ssize_t n;
    do {
      n = ::read(fd, buf, 1);
    } while (n < 0 && errno == EINTR);
    same = n == 0;
  }
  ::close(fd);
  return same;
}

StageResult stage_file(const std::string& path, std::string_view bytes, unsigned mode) {
  StageResult result;
  SplitPath parts = split_path(path);
  if (parts.base.empty() || parts.base == "." || parts.base == "..") {
    result.error = failure("write", path, EISDIR);
    return result;
  }
  if (auto err = make_directories(parts.dir)) {
    result.error = *err;
    return result;
  }
  std::string tmp = parts.dir + "/." + parts.base + ".tmp.XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    result.error = failure("create temp file for", path, errno);
    return result;
  }
  auto fail = [&](std::string_view op, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    result.error = failure(op, path, err);
    return std::move(result);
  };
  if (::fchmod(fd, static_cast<mode_t>(mode & 07777)) != 0) return fail("chmod", errno);
  int err = 0;
  if (!write_all(fd, bytes, err)) return fail("write", err);
  if (::fsync(fd) != 0) return fail("fsync", errno);
  // close() can report deferred write errors (NFS); a file we cannot vouch for is not committed.
  if (::close(fd) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    result.error = failure("close", path, err);
    return result;
  }
  result.staged_path = std::move(tmp);
  return result;
}

WriteResult commit_staged(const std::string& staged, const std::string& path) {
  WriteResult result;
  if (::rename(staged.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(staged.c_str());
    result.error = failure("rename", path, err);
    return result;
  }
  result.status = WriteResult::Status::kWritten;
  result.warning = sync_directory(split_path(path).dir);
  return result;
}

void discard_staged(const std::string& staged) { ::unlink(staged.c_str()); }

WriteResult write_file_atomic(const std::string& path, std::string_view bytes, unsigned mode, bool skip_if_same) {
  if (skip_if_same) {
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 07777) == (mode & 07777) && same_content(path, bytes)) {
      WriteResult unchanged;
      unchanged.status = WriteResult::Status::kUnchanged;
      return unchanged;
    }
  }
  StageResult staged = stage_file(path, bytes, mode);
  if (!staged.ok()) {
    WriteResult failed;
    failed.error = std::move(staged.error);
    return failed;
  }
  return commit_staged(*staged.staged_path, path);
}

}  // namespace sidecar::output
