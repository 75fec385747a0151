// Black-box tests of `config:` against a real etcd: single keys mirrored raw, prefixes mirrored as JSON.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

// Suite name is what the tests are reported under: ConfigMirror.<Behaviour>.
class ConfigMirror : public EtcdAgentFixture {
 protected:
  ConfigMirror() { log_tail_bytes_ = 6 * 1024; }

  void TearDown() override {
    if (agent_) {
      EXPECT_TRUE(agent_->is_running()) << "the agent must survive everything these tests do to it";
    }
    EtcdAgentFixture::TearDown();
  }

  // `entries` is the body of the `config:` list, each item starting with "  - ".
  void start_agent(const std::string& entries) {
    agent_ = AgentProcess::start_in(dir_.path(), etcd_manifest_section(etcd_->client_url()) + "config:\n" + entries);
    ASSERT_NE(agent_, nullptr) << "cannot start " << SIDECAR_BINARY;
  }

  ::testing::AssertionResult wait_for_content(const fs::path& path, const std::string& expected,
                                              std::chrono::milliseconds timeout = 10s) {
    if (wait_until([&] { return read_file(path) == expected; }, timeout)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << path << " is '" << read_file(path).value_or("<missing>")
                                         << "', expected '" << expected << "'";
  }

  ::testing::AssertionResult wait_for_json(const fs::path& path, const json& expected,
                                           std::chrono::milliseconds timeout = 10s) {
    if (wait_until([&] { return read_json_file(path) == expected; }, timeout)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << path << " is '" << read_file(path).value_or("<missing>")
                                         << "', expected " << expected.dump();
  }

  TempDir dir_{"config-it"};
};

TEST_F(ConfigMirror, KeyIsMirroredRawAndKeptAfterDelete) {
  const fs::path out = dir_ / "app.yaml";
  start_agent("  - key: /config/app.yaml\n    output: " + out.string() + "\n");
  // A missing key without a default writes nothing; the agent says so.
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("config /config/app.yaml: key is missing") == 1; }, 10s));
  EXPECT_FALSE(fs::exists(out));

  ASSERT_GT(client_->put("/config/app.yaml", "log_level: info\n"), 0);
  ASSERT_TRUE(wait_for_content(out, "log_level: info\n"));
  // Raw bytes, not re-encoded: no trailing newline added, binary-ish content kept.
  const std::string raw = "a: \"quoted\"\nb: [1, 2]\n\tc: \x01\xff";
  ASSERT_GT(client_->put("/config/app.yaml", raw), 0);
  ASSERT_TRUE(wait_for_content(out, raw));
  ASSERT_GT(client_->put("/config/app.yaml.bak", "not mine"), 0);
  ASSERT_GT(client_->put("/config/app.yaml/child", "not mine"), 0);

  // Every write is logged (debug): the count shows whether the delete wrote anything, once a later write
  // proves the agent got past it.
  const std::string wrote = "config /config/app.yaml: wrote " + out.string();
  const std::size_t writes_before_delete = agent_->count_in_output(wrote);
  ASSERT_EQ(client_->del("/config/app.yaml"), 1);
  // The agent logs this where it decides not to write, so the file is final for the delete at this point.
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("config /config/app.yaml: key is missing") == 2; }, 10s))
      << "the delete reaches the agent";
  EXPECT_EQ(read_file(out), raw) << "a deleted key keeps the last value on disk";

  ASSERT_GT(client_->put("/config/app.yaml", "log_level: debug\n"), 0);
  ASSERT_TRUE(wait_for_content(out, "log_level: debug\n"));
  EXPECT_EQ(agent_->count_in_output(wrote), writes_before_delete + 1)
      << "the delete was followed by a write of its own";
}

TEST_F(ConfigMirror, MissingKeyWritesTheDefault) {
  const fs::path out = dir_ / "defaulted.yaml";
  start_agent("  - key: /config/defaulted.yaml\n    output: " + out.string() +
              "\n    default: |\n      log_level: warn\n");
  ASSERT_TRUE(wait_for_content(out, "log_level: warn\n"));
  ASSERT_GT(client_->put("/config/defaulted.yaml", "log_level: trace\n"), 0);
  ASSERT_TRUE(wait_for_content(out, "log_level: trace\n"));
  ASSERT_EQ(client_->del("/config/defaulted.yaml"), 1);
  ASSERT_TRUE(wait_for_content(out, "log_level: warn\n")) << "the default stands in whenever the key is missing";
}

TEST_F(ConfigMirror, ExistingKeyAtStartIsWrittenInsteadOfTheDefault) {
  const fs::path out = dir_ / "present.yaml";
  ASSERT_GT(client_->put("/config/present.yaml", "from: etcd\n"), 0);
  start_agent("  - key: /config/present.yaml\n    output: " + out.string() + "\n    default: \"from: default\"\n");
  ASSERT_TRUE(wait_for_content(out, "from: etcd\n"));
}

TEST_F(ConfigMirror, PrefixIsMirroredAsJsonObject) {
  const fs::path out = dir_ / "flags.json";
  // Before the agent starts (initial Range) ...
  ASSERT_GT(client_->put("/config/app/flags/a", "1"), 0);
  ASSERT_GT(client_->put("/config/app/flagsX", "outside"), 0);
  ASSERT_GT(client_->put("/config/app/flags", "outside"), 0);
  start_agent("  - prefix: /config/app/flags/\n    output: " + out.string() + "\n");
  ASSERT_TRUE(wait_for_json(out, json{{"a", "1"}}));

  // ... and after (watch events).
  ASSERT_GT(client_->put("/config/app/flags/b/c", "nested"), 0);
  ASSERT_GT(client_->put("/config/app/other", "outside"), 0);
  ASSERT_GT(client_->put("/config/app/flags-2/x", "outside"), 0);
  ASSERT_GT(client_->put("/config/app/flags/json", R"({"x":[1,2]})"), 0);
  ASSERT_TRUE(wait_for_json(out, json{{"a", "1"}, {"b/c", "nested"}, {"json", R"({"x":[1,2]})"}}))
      << "values are strings as stored, never parsed";

  ASSERT_GT(client_->put("/config/app/flags/a", "2"), 0);
  ASSERT_EQ(client_->del("/config/app/flags/b/c"), 1);
  ASSERT_TRUE(wait_for_json(out, json{{"a", "2"}, {"json", R"({"x":[1,2]})"}}));
  ASSERT_EQ(client_->del_prefix("/config/app/flags/"), 2);
  ASSERT_TRUE(wait_for_json(out, json::object())) << "an emptied prefix is an empty object";
}

TEST_F(ConfigMirror, PrefixIsMirroredAsDirectoryOfFiles) {
  const fs::path out = dir_ / "flags";
  ASSERT_GT(client_->put("/config/flags/a", "1"), 0);
  start_agent("  - prefix: /config/flags/\n    output: " + out.string() + "\n    format: dir\n");
  ASSERT_TRUE(wait_for_content(out / "a", "1"));

  // Nested keys become subdirectories; updates replace the file.
  ASSERT_GT(client_->put("/config/flags/b/c", "2"), 0);
  ASSERT_GT(client_->put("/config/flags/a", "3"), 0);
  ASSERT_TRUE(wait_for_content(out / "b" / "c", "2"));
  ASSERT_TRUE(wait_for_content(out / "a", "3"));

  // A key that would escape the directory is skipped and reported; it never reaches the disk.
  ASSERT_GT(client_->put("/config/flags/../escape", "x"), 0);
  ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("is not a safe file name") == 1; }, 10s));
  EXPECT_FALSE(fs::exists(dir_ / "escape"));

  // A deleted key removes its file; the others stay.
  ASSERT_EQ(client_->del("/config/flags/a"), 1);
  ASSERT_TRUE(wait_until([&] { return !fs::exists(out / "a"); }, 10s));
  EXPECT_EQ(read_file(out / "b" / "c"), "2");
}

}  // namespace
}  // namespace sidecar::test
