// Owns: replacing an output file so readers see either the old bytes or the new ones, never a mix.
// Thread: blocking file I/O on the caller's thread (run it off the event loop); no shared state.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sidecar::output {

struct WriteResult {
  enum class Status {
    kWritten,    // new bytes are in place (and durable, unless `warning` says the directory fsync failed)
    kUnchanged,  // skip_if_same and the file already held these bytes with this mode; nothing touched
    kFailed,     // nothing changed on disk: the old file (if any) is intact and no temp file is left
  };
  Status status = Status::kFailed;
  std::string error;    // kFailed: "<op> <path>: <strerror>", e.g. "write /run/x.json: No space left on device"
  std::string warning;  // kWritten but the directory fsync failed: the rename may not survive a crash
  bool ok() const { return status != Status::kFailed; }
};

// mkdir -p the parent, write a temp file ".<name>.tmp.XXXXXX" in the SAME directory (rename is only atomic
// within a filesystem), fchmod to `mode` (umask does not apply), write all, fsync, rename over `path`,
// fsync the directory. On failure the temp file is removed and the target left as it was.
// `skip_if_same`: compare with the file on disk first (for the first write after startup; afterwards the
// caller compares with the bytes it last wrote, which is cheaper than reading the file back).
WriteResult write_file_atomic(const std::string& path, std::string_view bytes, unsigned mode,
                              bool skip_if_same = false);

// True iff `path` is a regular file whose content is exactly `bytes` (false on any error).
bool same_content(const std::string& path, std::string_view bytes);

// Two-phase write for check_command validation ("nginx -t -c {{staged}}"): the staged file is complete,
// fsynced and has its final mode, but is not yet visible under `path`.
struct StageResult {
  std::optional<std::string> staged_path;  // set on success; same directory as the target
  std::string error;                       // set on failure (nothing left behind)
  bool ok() const { return staged_path.has_value(); }
};
StageResult stage_file(const std::string& path, std::string_view bytes, unsigned mode);
// rename(staged, path) + directory fsync. On failure the staged file is removed.
WriteResult commit_staged(const std::string& staged, const std::string& path);
// Removes a staged file that failed validation. Best effort; a missing file is not an error.
void discard_staged(const std::string& staged);

// mkdir -p with mode 0755 for new directories. nullopt on success, else "mkdir <dir>: <strerror>".
std::optional<std::string> make_directories(const std::string& dir);

}  // namespace sidecar::output
