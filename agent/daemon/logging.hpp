// Owns: the process's log output on stderr: plain text for a terminal, "<N>"-prefixed lines without
// timestamps for journald (JOURNAL_STREAM), or one JSON object per line (--log-format json, Kubernetes).
// Thread: call setup_logging once from main before any other thread starts; the sinks are thread-safe.
#pragma once

#include <string>

namespace sidecar::daemon {

enum class LogFormat { kText, kJson };

// Installs the default spdlog logger on stderr at `level`. kText becomes journal lines when JOURNAL_STREAM
// names this process's stderr. Returns the format in use: "text", "journal" or "json".
std::string setup_logging(LogFormat format, const std::string& level);

}  // namespace sidecar::daemon
