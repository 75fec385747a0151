// What the agent reads from the environment systemd gives it: the watchdog interval and the journal stream.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/core/systemd_env.hpp"

namespace sidecar::core {
namespace {

using std::chrono::microseconds;

TEST(WatchdogInterval, IsHalfOfWatchdogUsec) {
  EXPECT_EQ(watchdog_ping_interval("30000000", std::nullopt, 42), microseconds(15000000));
  EXPECT_EQ(watchdog_ping_interval("30000000", "42", 42), microseconds(15000000));
}

TEST(WatchdogInterval, OffWhenUnsetZeroOrGarbage) {
  EXPECT_EQ(watchdog_ping_interval(std::nullopt, std::nullopt, 42), std::nullopt);
  EXPECT_EQ(watchdog_ping_interval("0", std::nullopt, 42), std::nullopt);
  EXPECT_EQ(watchdog_ping_interval("30s", std::nullopt, 42), std::nullopt);
  EXPECT_EQ(watchdog_ping_interval("", std::nullopt, 42), std::nullopt);
}

TEST(WatchdogInterval, OffWhenWatchdogPidNamesAnotherProcess) {
  // Inherited from a parent service: the watchdog is the parent's, not ours.
  EXPECT_EQ(watchdog_ping_interval("30000000", "41", 42), std::nullopt);
  EXPECT_EQ(watchdog_ping_interval("30000000", "x", 42), std::nullopt);
}

TEST(JournalStream, MatchesOnlyTheSameDeviceAndInode) {
  EXPECT_TRUE(journal_stream_matches("8:12345", 8, 12345));
  EXPECT_FALSE(journal_stream_matches("8:12345", 8, 12346));
  EXPECT_FALSE(journal_stream_matches("9:12345", 8, 12345));
  EXPECT_FALSE(journal_stream_matches("812345", 8, 12345));
  EXPECT_FALSE(journal_stream_matches("8:", 8, 0));
}

TEST(SyslogPriority, MapsLevelsToJournalPriorities) {
  EXPECT_EQ(syslog_priority("critical"), 2);
  EXPECT_EQ(syslog_priority("error"), 3);
  EXPECT_EQ(syslog_priority("warning"), 4);
  EXPECT_EQ(syslog_priority("info"), 6);
  EXPECT_EQ(syslog_priority("debug"), 7);
  EXPECT_EQ(syslog_priority("trace"), 7);
}

TEST(JsonLogLine, IsOneParsableObjectEvenWithQuotesNewlinesAndBadUtf8) {
  const std::string line = json_log_line("2026-01-01T00:00:00.000Z", "warn", "a \"quoted\"\nline \xff end");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["ts"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(j["msg"].get<std::string>().substr(0, 19), "a \"quoted\"\nline \xEF\xBF\xBD");
}

}  // namespace
}  // namespace sidecar::core
