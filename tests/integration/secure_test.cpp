// The agent against an etcd with authentication on, and against etcd over TLS and mTLS: it works as the
// restricted `sidecar` user across token expiries and restarts, says clearly what is wrong with bad
// credentials, a wrong CA or a missing client certificate, never shows its password, and picks up
// certificates replaced on disk at the next reconnect.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/secure_etcd.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPassword = "Sidecar-Pw-51c3a9";

// A manifest registering one service and discovering `peer`, with extra lines for the etcd section.
std::string manifest(const std::string& url, const std::string& etcd_extra, const std::filesystem::path& out,
                     const std::string& ttl = "4s") {
  return "etcd:\n  endpoints: [\"" + url + "\"]\n" + etcd_extra + "lease:\n  ttl: " + ttl +
         "\nservices:\n  - {name: app, id: one, port: 8080}\ndiscover:\n  - {service: peer, output: \"" + out.string() +
         "\", format: lines}\n";
}


// utime + stime of a process, in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return utime + stime;
}

std::string cmdline_of(pid_t pid) { return read_file("/proc/" + std::to_string(pid) + "/cmdline").value_or(""); }

bool file_has(const std::filesystem::path& path, const std::string& text) {
  const auto content = read_file(path);
  return content && content->find(text) != std::string::npos;
}

size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// ------------------------------------------------------------------------------------------------ auth

class EtcdAuth : public EtcdAgentFixture {
 protected:
  void SetUp() override {
    // Simple tokens that expire after 2 s idle: the agent must renew them again and again.
    ASSERT_NO_FATAL_FAILURE(start_etcd({"--auth-token=simple", "--auth-token-ttl=2"}));
    std::string error;
    ASSERT_TRUE(enable_auth(etcd_->client_url(), kPassword, &error)) << error;
    // client_ acts as root here.
    ASSERT_TRUE(client_->authenticate("root", kRootPassword)) << client_->last_error();
    ASSERT_TRUE(write_file(dir_ / "password", std::string(kPassword) + "\n"));
  }

  // Root's token expires too; take a fresh one before each check.
  EtcdSyncClient& root() {
    client_->authenticate("root", kRootPassword);
    return *client_;
  }

  std::string auth_lines() { return "  username: sidecar\n  password_file: " + (dir_ / "password").string() + "\n"; }

  TempDir dir_{"sidecar-auth"};
};

TEST_F(EtcdAuth, RestrictedUserRegistersAndDiscoversAcrossTokenExpiriesAndRestart) {
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), auth_lines(), out));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(wait_until([&] { return root().get("/services/app/one").has_value(); }, 10s)) << agent->output();
  ASSERT_GT(root().put("/services/peer/a", R"({"address":"10.0.0.1","port":1})"), 0) << client_->last_error();
  ASSERT_TRUE(wait_until([&] { return file_has(out, "10.0.0.1:1"); }, 10s)) << agent->output();

  // Twice: let the token expire (2 s TTL, checked by etcd once a second), then make the agent write
  // (restore a deleted key).
  for (int round = 0; round < 2; ++round) {
    std::this_thread::sleep_for(3500ms);  // the token's TTL is the thing under test: nothing to wait on
    ASSERT_EQ(root().del("/services/app/one"), 1) << client_->last_error() << "\n" << agent->output();
    ASSERT_TRUE(wait_until([&] { return root().get("/services/app/one").has_value(); }, 10s))
        << "round " << round << "\n" << agent->output();
  }
  EXPECT_GE(count_of(agent->output(), "etcd rejected the auth token of user sidecar; authenticating again"), 2u)
      << agent->output();

  // A restarted etcd forgets every simple token: every stream reopens and must carry a new one.
  ASSERT_TRUE(etcd_->restart());
  ASSERT_GT(root().put("/services/peer/b", R"({"address":"10.0.0.2","port":2})"), 0) << client_->last_error();
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.2:2"); }, 15s)) << agent->output();
  ASSERT_EQ(root().del("/services/app/one"), 1);
  EXPECT_TRUE(wait_until([&] { return root().get("/services/app/one").has_value(); }, 10s)) << agent->output();

  // The password is in neither the log nor the command line.
  EXPECT_EQ(agent->output().find(kPassword), std::string::npos);
  EXPECT_EQ(cmdline_of(agent->pid()).find(kPassword), std::string::npos);
  EXPECT_TRUE(agent->output_contains("authenticated to etcd as user sidecar")) << agent->output();
}

TEST_F(EtcdAuth, TheRestrictedUserCannotWriteOutsideItsPrefixes) {
  // The fixture's role really is restricted, so the test above proves the agent needs no more than it.
  EtcdSyncClient as_sidecar(etcd_->endpoint());
  ASSERT_TRUE(as_sidecar.authenticate(kSidecarUser, kPassword)) << as_sidecar.last_error();
  EXPECT_GT(as_sidecar.put("/services/x/y", "v"), 0) << as_sidecar.last_error();
  EXPECT_EQ(as_sidecar.put("/other/x", "v"), 0);
  EXPECT_NE(as_sidecar.last_error().find("permission denied"), std::string::npos) << as_sidecar.last_error();
}

TEST_F(EtcdAuth, BadPasswordIsAClearErrorRetriedWithBackoffAndAFixedFileIsPickedUp) {
  ASSERT_TRUE(write_file(dir_ / "password", "wrong-password-xyz\n"));
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), auth_lines(), out));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(agent->wait_for_output("authentication failed for user sidecar", 10s)) << agent->output();
  // etcd logs every refused password: the agent's attempts, seen from the server.
  auto refusals = [&] { return count_of(read_file(etcd_->log_path()).value_or(""), "\"invalid password\""); };
  const long cpu_before = cpu_ticks(agent->pid());
  std::this_thread::sleep_for(2500ms);  // the measured window itself: CPU over a fixed time
  const long cpu_used = cpu_ticks(agent->pid()) - cpu_before;
  // No tight loop: a few retries in 2.5 s cost well under 0.3 s of CPU (ticks are 10 ms).
  EXPECT_LT(cpu_used, 30) << "CPU ticks while refused: " << cpu_used;
  // The agent did retry (the first attempt and at least one more, 1 s later by the backoff)...
  ASSERT_TRUE(wait_until([&] { return refusals() >= 2; }, 5s))
      << "etcd saw " << refusals() << " refused password(s): the agent never retried\n" << etcd_->log_tail();
  // ...and said so once per state change, not once per retry.
  EXPECT_EQ(count_of(agent->output(), "retrying with backoff (up to 30 s)"), 1u) << agent->output()
      << etcd_->log_tail();
  EXPECT_FALSE(root().get("/services/app/one").has_value());
  EXPECT_EQ(agent->output().find("wrong-password-xyz"), std::string::npos);
  EXPECT_TRUE(agent->is_running()) << "keeps retrying, like etcd's own clients";

  // The secret is fixed in place (a rotated Kubernetes secret): read again at the next attempt.
  ASSERT_TRUE(write_file_atomic(dir_ / "password", kPassword));
  EXPECT_TRUE(wait_until([&] { return root().get("/services/app/one").has_value(); }, 20s)) << agent->output();
  EXPECT_TRUE(agent->wait_for_output("authenticated to etcd as user sidecar", 5s));
}

TEST_F(EtcdAuth, PasswordFromTheEnvironmentIsNeverPrinted) {
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(
      manifest(etcd_->client_url(), "  username: sidecar\n  password_env: SIDECAR_TEST_ETCD_PW\n", out), {},
      {{"SIDECAR_TEST_ETCD_PW", kPassword}});
  ASSERT_TRUE(agent);
  ASSERT_TRUE(wait_until([&] { return root().get("/services/app/one").has_value(); }, 10s)) << agent->output();
  EXPECT_EQ(agent->output().find(kPassword), std::string::npos);
  EXPECT_EQ(cmdline_of(agent->pid()).find(kPassword), std::string::npos);
}

TEST_F(EtcdAuth, LiteralPasswordWorksWithAWarningAndIsNotPrinted) {
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(
      manifest(etcd_->client_url(), std::string("  username: sidecar\n  password: \"") + kPassword + "\"\n", out));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(wait_until([&] { return root().get("/services/app/one").has_value(); }, 10s)) << agent->output();
  EXPECT_TRUE(agent->output_contains("etcd.password: a literal password")) << agent->output();
  EXPECT_EQ(agent->output().find(kPassword), std::string::npos);
  const CaptureResult check = run_and_capture({SIDECAR_BINARY, "--manifest", agent->manifest_path().string(), "--check"});
  EXPECT_EQ(check.output.find(kPassword), std::string::npos) << check.output;
}

// ------------------------------------------------------------------------------------------------ TLS

class EtcdTls : public EtcdAgentFixture {
 protected:
  void SetUp() override {
    auto certs = make_certs(dir_.path() / "pki", "a");
    ASSERT_TRUE(certs);
    certs_ = *certs;
  }

  // Not in SetUp: each test picks plain TLS or mTLS.
  void start_etcd(bool mtls) { start_etcd_tls(certs_.server_tls(mtls), certs_.client_tls(true)); }

  // The agent's own copies: the test replaces them on disk like a certificate manager would.
  std::string tls_lines(bool with_cert, const std::filesystem::path& ca = {}) {
    const auto agent_ca = dir_ / "agent-ca.pem";
    std::filesystem::copy_file(ca.empty() ? certs_.ca : ca, agent_ca, std::filesystem::copy_options::overwrite_existing);
    std::string lines = "  tls:\n    ca: " + agent_ca.string() + "\n";
    if (with_cert) {
      std::filesystem::copy_file(certs_.client, dir_ / "agent-cert.pem", std::filesystem::copy_options::overwrite_existing);
      std::filesystem::copy_file(certs_.client_key, dir_ / "agent-key.pem", std::filesystem::copy_options::overwrite_existing);
      lines += "    cert: " + (dir_ / "agent-cert.pem").string() + "\n    key: " + (dir_ / "agent-key.pem").string() + "\n";
    }
    return lines;
  }

  TempDir dir_{"sidecar-tls"};
  CertSet certs_;
};

TEST_F(EtcdTls, RegistersAndDiscoversOverTlsWithACa) {
  start_etcd(false);
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), tls_lines(false), out));
  ASSERT_TRUE(agent);
  EXPECT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  ASSERT_GT(client_->put("/services/peer/a", R"({"address":"10.0.0.1","port":1})"), 0) << client_->last_error();
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.1:1"); }, 10s)) << agent->output();
}

TEST_F(EtcdTls, RegistersAndDiscoversOverMutualTls) {
  start_etcd(true);
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), tls_lines(true), out));
  ASSERT_TRUE(agent);
  EXPECT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  ASSERT_GT(client_->put("/services/peer/a", R"({"address":"10.0.0.1","port":1})"), 0) << client_->last_error();
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.1:1"); }, 10s)) << agent->output();
}

TEST_F(EtcdTls, WrongCaFailsWithAClearMessage) {
  start_etcd(false);
  auto other = make_certs(dir_.path() / "other", "other");
  ASSERT_TRUE(other);
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), tls_lines(false, other->ca), dir_ / "peer.txt"));
  ASSERT_TRUE(agent);
  EXPECT_TRUE(agent->wait_for_output("TLS handshake failed: the server's certificate is not signed by a CA in etcd.tls.ca", 10s))
      << agent->output();
  EXPECT_FALSE(client_->get("/services/app/one").has_value());
}

TEST_F(EtcdTls, MissingClientCertificateFailsWithAClearMessage) {
  start_etcd(true);
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), tls_lines(false), dir_ / "peer.txt"));
  ASSERT_TRUE(agent);
  EXPECT_TRUE(agent->wait_for_output("requires a client certificate; set etcd.tls.cert and etcd.tls.key", 10s))
      << agent->output();
  EXPECT_FALSE(client_->get("/services/app/one").has_value());
}

TEST_F(EtcdTls, UnreadableCertificateFileIsAConfigErrorAtStart) {
  const std::string yaml = "etcd:\n  endpoints: [\"https://127.0.0.1:1\"]\n  tls: {ca: " + (dir_ / "nope.pem").string() +
                           "}\nservices:\n  - {name: app, id: one, port: 8080}\n";
  ASSERT_TRUE(write_file(dir_ / "m.yaml", yaml));
  const CaptureResult r = run_and_capture({SIDECAR_BINARY, "--manifest", (dir_ / "m.yaml").string()}, 10s);
  EXPECT_EQ(r.exit_code, 78) << r.output;
  EXPECT_NE(r.output.find("cannot read etcd.tls.ca " + (dir_ / "nope.pem").string()), std::string::npos) << r.output;
}

TEST_F(EtcdTls, CertificatesReplacedOnDiskArePickedUpAtTheNextReconnect) {
  start_etcd(true);
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), tls_lines(true), out, "10s"));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  const auto lease = client_->get("/services/app/one")->lease;

  // Rotation to a whole new CA. First the agent's files (its open connection is unaffected), then the
  // server's, with a restart: the agent's next connection must use the new files.
  auto rotated = make_certs(dir_.path() / "pki2", "b");
  ASSERT_TRUE(rotated);
  ASSERT_TRUE(write_file_atomic(dir_ / "agent-ca.pem", *read_file(rotated->ca)));
  ASSERT_TRUE(write_file_atomic(dir_ / "agent-cert.pem", *read_file(rotated->client)));
  ASSERT_TRUE(write_file_atomic(dir_ / "agent-key.pem", *read_file(rotated->client_key)));
  for (const auto& [from, to] : {std::pair{rotated->ca, certs_.ca}, std::pair{rotated->server, certs_.server},
                                 std::pair{rotated->server_key, certs_.server_key},
                                 std::pair{rotated->client, certs_.client},
                                 std::pair{rotated->client_key, certs_.client_key}}) {
    ASSERT_TRUE(write_file_atomic(to, *read_file(from)));
  }
  ASSERT_TRUE(etcd_->restart());
  client_ = std::make_unique<EtcdSyncClient>(etcd_->endpoint(), certs_.client_tls(true));

  EXPECT_TRUE(agent->wait_for_output("etcd TLS files changed on disk", 10s)) << agent->output();
  // Same lease (kept alive through the rotation), and discovery works on the new connection.
  ASSERT_GT(client_->put("/services/peer/a", R"({"address":"10.0.0.1","port":1})"), 0) << client_->last_error();
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.1:1"); }, 10s)) << agent->output();
  const auto kv = client_->get("/services/app/one");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, lease);
  EXPECT_GT(client_->lease_ttl(lease).ttl, 0);
}

TEST_F(EtcdTls, MutualTlsAndAuthTogetherAsInTheIssueExample) {
  start_etcd(true);
  std::string error;
  ASSERT_TRUE(enable_auth(etcd_->client_url(), kPassword, &error, etcdctl_tls_args(certs_, true))) << error;
  ASSERT_TRUE(write_file(dir_ / "password", kPassword));
  ASSERT_TRUE(client_->authenticate("root", kRootPassword)) << client_->last_error();
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(
      etcd_->client_url(), "  username: sidecar\n  password_file: " + (dir_ / "password").string() + "\n" + tls_lines(true), out));
  ASSERT_TRUE(agent);
  EXPECT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  ASSERT_GT(client_->put("/services/peer/a", R"({"address":"10.0.0.1","port":1})"), 0) << client_->last_error();
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.1:1"); }, 10s)) << agent->output();
  EXPECT_TRUE(agent->output_contains("authenticated to etcd as user sidecar")) << agent->output();
  EXPECT_EQ(agent->output().find(kPassword), std::string::npos);
}

TEST_F(EtcdTls, SighupRereadsCertificateFilesForNewConnections) {
  start_etcd(true);
  auto agent = AgentProcess::start(manifest(etcd_->client_url(), tls_lines(true), dir_ / "peer.txt"));
  ASSERT_TRUE(agent);
  ASSERT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  // Same CA, re-issued bundle (here: the CA file with a trailing comment line, still valid PEM).
  ASSERT_TRUE(write_file_atomic(dir_ / "agent-ca.pem", *read_file(certs_.ca) + "\n"));
  ASSERT_TRUE(agent->signal(SIGHUP));
  EXPECT_TRUE(agent->wait_for_output("etcd TLS files changed on disk", 5s)) << agent->output();
  // Requests now go out on the new channel: a deleted key is restored through it.
  ASSERT_EQ(client_->del("/services/app/one"), 1);
  EXPECT_TRUE(wait_until([&] { return client_->get("/services/app/one").has_value(); }, 10s)) << agent->output();
  EXPECT_TRUE(agent->is_running());
}

}  // namespace
}  // namespace sidecar::test
