#include "agent/daemon/logging.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "agent/core/systemd_env.hpp"

namespace sidecar::daemon {

namespace {

// "2026-01-02T03:04:05.678Z"
std::string utc_timestamp(spdlog::log_clock::time_point tp) {
  const auto since = tp.time_since_epoch();
  const std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since).count();
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(millis));
  return buf;
}

// Writes whole lines with one write(2) each, so lines from several threads never interleave mid-line.
class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit LineSink(bool json) : json_(json) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    const auto level_view = spdlog::level::to_string_view(msg.level);
    const std::string_view level(level_view.data(), level_view.size());
    std::string line;
    if (json_) {
      line = core::json_log_line(utc_timestamp(msg.time), level == "warning" ? "warn" : level, text);
    } else {
      // journald stamps the time itself and reads the priority from the prefix.
      line = "<" + std::to_string(core::syslog_priority(level)) + ">" + std::string(text);
    }
    line += '\n';
    size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
      if (n <= 0) break;  // nowhere to report a failing stderr
      done += static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 private:
  bool json_;
};

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return core::journal_stream_matches(stream, static_cast<unsigned long long>(st.st_dev),
                                      static_cast<unsigned long long>(st.st_ino));
}

}  // namespace

std::string setup_logging(LogFormat format, const std::string& level) {
  std::string used;
  std::shared_ptr<spdlog::logger> logger;
  if (format == LogFormat::kJson) {
    logger = std::make_shared<spdlog::logger>("etcd-sidecar", std::make_shared<LineSink>(true));
    used = "json";
  } else if (stderr_is_journal()) {
    logger = std::make_shared<spdlog::logger>("etcd-sidecar", std::make_shared<LineSink>(false));
    used = "journal";
  } else {
    logger = spdlog::stderr_color_mt("etcd-sidecar");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
    used = "text";
  }
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  return used;
}

}  // namespace sidecar::daemon
