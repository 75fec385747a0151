// Black-box tests of the etcd-sidecar command line: flags, exit codes (0 ok, 64 usage, 78 config error) and
// the manifest checker's messages. None of these start etcd: --check must never need it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

constexpr int kExitOk = 0;
constexpr int kExitUsage = 64;
constexpr int kExitConfig = 78;

CaptureResult run_agent(std::vector<std::string> args, EnvVars env = {}) {
  args.insert(args.begin(), SIDECAR_BINARY);
  return run_and_capture(args, 10s, std::move(env));
}

// The VERSION in the top-level project() call: what --version must report.
std::optional<std::string> project_version() {
  std::ifstream in(SIDECAR_SOURCE_DIR "/CMakeLists.txt");
  std::stringstream text;
  text << in.rdbuf();
  const std::string cmake = text.str();
  std::smatch match;
  if (!std::regex_search(cmake, match, std::regex(R"(project\(\s*etcd-sidecar\s+VERSION\s+([0-9][0-9.]*))"))) {
    return std::nullopt;
  }
  return match[1].str();
}

// A loopback TCP listener nobody is expected to connect to: proof that a run did not dial etcd.
class Tripwire {
 public:
  Tripwire() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && ::listen(fd_, 16) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~Tripwire() {
    if (fd_ >= 0) ::close(fd_);
  }
  Tripwire(const Tripwire&) = delete;
  Tripwire& operator=(const Tripwire&) = delete;

  int port() const { return port_; }
  // The kernel completes handshakes into the backlog without accept(): a pending one means someone dialled.
  bool touched() {
    const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn >= 0) {
      ::close(conn);
      return true;
    }
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }

  // Self-test: a connection of our own must trip it, or a passing touched() proves nothing.
  bool dial_self_and_check() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    const bool connected = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    const bool tripped = connected && touched();
    if (fd >= 0) ::close(fd);
    return tripped;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// ------------------------------------------------------------------------------------------------ flags

TEST(Cli, VersionPrintsProjectVersionAndExitsZero) {
  const auto version = project_version();
  ASSERT_TRUE(version.has_value()) << "no project(etcd-sidecar VERSION ...) in CMakeLists.txt";
  const auto result = run_agent({"--version"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.output;
  // BUG (reported to the lead, agent/CMake not ours to edit): SIDECAR_VERSION is a PRIVATE definition of
  // sidecar_daemon, but main.cpp is compiled into the etcd-sidecar target, so it prints the "0.0.0"
  // fallback. This test fails until the definition reaches main.cpp.
  EXPECT_EQ(result.output, "etcd-sidecar " + *version + "\n");
}

TEST(Cli, HelpListsOptionsAndExitsZero) {
  const auto result = run_agent({"--help"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.output;
  EXPECT_NE(result.output.find("--manifest"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("--check"), std::string::npos) << result.output;
}

TEST(Cli, UnknownFlagIsUsageError64) {
  const auto result = run_agent({"--no-such-flag"});
  EXPECT_EQ(result.exit_code, kExitUsage) << result.output;
  EXPECT_NE(result.output.find("--no-such-flag"), std::string::npos) << result.output;
}

TEST(Cli, MissingManifestFlagIsUsageError64) {
  const auto result = run_agent({});
  EXPECT_EQ(result.exit_code, kExitUsage) << result.output;
  EXPECT_NE(result.output.find("--manifest"), std::string::npos) << result.output;
}

TEST(Cli, InvalidLogLevelIsUsageError64) {
  const auto result = run_agent({"--manifest", SIDECAR_SOURCE_DIR "/config/example.yaml", "--log-level", "loud"});
  EXPECT_EQ(result.exit_code, kExitUsage) << result.output;
}

TEST(Cli, UnreadableManifestIsConfigError78NamingTheFile) {
  TempDir dir("sidecar-cli");
  const std::string missing = (dir / "absent.yaml").string();
  const auto result = run_agent({"--check", "--manifest", missing});
  EXPECT_EQ(result.exit_code, kExitConfig) << result.output;
  EXPECT_NE(result.output.find(missing + ": cannot read manifest"), std::string::npos) << result.output;
}

// ------------------------------------------------------------------------------------------------ --check

TEST(ManifestCheck, ValidManifestPassesWithoutContactingEtcd) {
  Tripwire etcd;  // the manifest's only endpoint; nothing else listens there
  ASSERT_NE(etcd.port(), 0);
  TempDir dir("sidecar-cli");
  const auto path = dir / "manifest.yaml";
  ASSERT_TRUE(write_file(path, "etcd:\n  endpoints: [\"http://127.0.0.1:" + std::to_string(etcd.port()) +
                                   "\"]\nservices:\n  - name: web\n    id: a\n    port: 8080\n"));
  const auto result = run_agent({"--check", "--manifest", path.string()});
  EXPECT_EQ(result.exit_code, kExitOk) << result.output;
  EXPECT_NE(result.output.find("OK"), std::string::npos) << result.output;
  EXPECT_FALSE(etcd.touched()) << "--check dialled the etcd endpoint";
  EXPECT_TRUE(etcd.dial_self_and_check()) << "the tripwire itself does not detect connections";
}

TEST(ManifestCheck, InvalidManifestWithoutCheckFlagExits78BeforeContactingEtcd) {
  Tripwire etcd;
  ASSERT_NE(etcd.port(), 0);
  TempDir dir("sidecar-cli");
  const auto path = dir / "manifest.yaml";
  ASSERT_TRUE(write_file(path, "etcd:\n  endpoints: [\"http://127.0.0.1:" + std::to_string(etcd.port()) +
                                   "\"]\nservices:\n  - name: web\n    id: a\n    port: 0\n"));
  const auto result = run_agent({"--manifest", path.string()});
  EXPECT_EQ(result.exit_code, kExitConfig) << result.output;
  EXPECT_FALSE(etcd.touched()) << "an invalid manifest must be refused before any connection";
}

TEST(ManifestCheck, ExampleManifestPasses) {
  const auto result = run_agent({"--check", "--manifest", SIDECAR_SOURCE_DIR "/config/example.yaml"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.output;
}

TEST(ManifestCheck, ReferenceManifestPasses) {
  // The reference documents itself as a valid manifest; keep that true.
  const auto result = run_agent({"--check", "--manifest", SIDECAR_SOURCE_DIR "/config/manifest.reference.yaml"});
  EXPECT_EQ(result.exit_code, kExitOk) << result.output;
}

TEST(ManifestCheck, ReportsEveryErrorNotOnlyTheFirst) {
  TempDir dir("sidecar-cli");
  const auto path = dir / "manifest.yaml";
  ASSERT_TRUE(write_file(path, "lease:\n  ttl: 10\nservices:\n  - name: web\n    id: a\n    port: 70000\n"));
  const auto result = run_agent({"--check", "--manifest", path.string()});
  EXPECT_EQ(result.exit_code, kExitConfig) << result.output;
  EXPECT_NE(result.output.find(path.string() + ":2:8: lease.ttl: "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find(path.string() + ":6:11: services[0].port: "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("2 error(s)"), std::string::npos) << result.output;
}

struct InvalidCase {
  const char* name;
  const char* manifest;
  // "<line>:<col>: <field>: <message start>", appended to "<path>:" to form the expected error line.
  const char* expected;
};

class InvalidManifest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidManifest, CheckExits78AndNamesFileLineColumnAndField) {
  const InvalidCase& c = GetParam();
  // Must really be unset: the empty-expansion case relies on it, and the child inherits our environment.
  ASSERT_EQ(std::getenv("SIDECAR_TEST_SURELY_UNSET"), nullptr);
  TempDir dir("sidecar-cli");
  const auto path = dir / "manifest.yaml";
  ASSERT_TRUE(write_file(path, c.manifest));
  const auto result = run_agent({"--check", "--manifest", path.string()});
  EXPECT_EQ(result.exit_code, kExitConfig) << result.output;
  const std::string expected = path.string() + ":" + c.expected;
  EXPECT_NE(result.output.find(expected), std::string::npos) << "expected: " << expected << "\ngot:\n"
                                                             << result.output;
}

// Line numbers count from the first manifest line; columns are 1-based, pointing at the offending node.
const InvalidCase kInvalidCases[] = {
    {"UnknownKeyWithSuggestion",
     "services:\n"
     "  - name: web\n"
     "    id: a\n"
     "    port: 8080\n"
     "    adress: 10.0.0.1\n",
     "5:5: services[0].adress: unknown key 'adress' (did you mean 'address'?)"},
    {"UnknownTopLevelKey",
     "etcd:\n"
     "  endpoints: [\"http://127.0.0.1:2379\"]\n"
     "servces:\n"
     "  - name: web\n",
     "3:1: servces: unknown key 'servces' (did you mean 'services'?)"},
    {"WrongTypeScalarForInteger",
     "services:\n"
     "  - name: web\n"
     "    id: a\n"
     "    port: eighty\n",
     "4:11: services[0].port: expected an integer, got 'eighty'"},
    {"WrongTypeListForMap",
     "services:\n"
     "  - name: web\n"
     "    id: a\n"
     "    port: 8080\n"
     "    metadata: [a, b]\n",
     "5:15: services[0].metadata: expected a map of strings, got a list"},
    {"MissingRequiredField",
     "services:\n"
     "  - name: web\n"
     "    port: 8080\n",
     "2:5: services[0].id: is required"},
    {"DuplicateNameAndId",
     "services:\n"
     "  - name: web\n"
     "    id: a\n"
     "    port: 8080\n"
     "  - name: web\n"
     "    id: a\n"
     "    port: 8081\n",
     "5:5: services[1]: duplicate service web/a, first defined at line 2"},
    {"DurationWithoutUnit",
     "lease:\n"
     "  ttl: 10\n",
     "2:8: lease.ttl: invalid duration '10': missing unit"},
    {"DurationWithUnknownUnit",
     "etcd:\n"
     "  request_timeout: 3 seconds\n",
     "2:20: etcd.request_timeout: invalid duration '3 seconds'"},
    {"PortAboveRange",
     "services:\n"
     "  - name: web\n"
     "    id: a\n"
     "    port: 70000\n",
     "4:11: services[0].port: out of range: must be between 1 and 65535, got 70000"},
    {"PortZero",
     "services:\n"
     "  - name: web\n"
     "    id: a\n"
     "    port: 0\n",
     "4:11: services[0].port: out of range: must be between 1 and 65535, got 0"},
    {"RequiredFieldEmptyAfterExpansion",
     "services:\n"
     "  - name: web\n"
     "    id: ${SIDECAR_TEST_SURELY_UNSET}\n"
     "    port: 8080\n",
     "3:9: services[0].id: is empty after expanding '${SIDECAR_TEST_SURELY_UNSET}'"},
};

INSTANTIATE_TEST_SUITE_P(ManifestCheck, InvalidManifest, ::testing::ValuesIn(kInvalidCases),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) { return info.param.name; });

}  // namespace
}  // namespace sidecar::test
