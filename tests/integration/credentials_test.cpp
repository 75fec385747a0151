// The etcd client's credential helpers, without a server: password sources, TLS file loading, and the
// translation of gRPC's TLS and auth failures into messages that name the setting to fix.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "agent/etcd/client.hpp"
#include "agent/etcd/credentials.hpp"
#include "tests/support/process.hpp"

namespace sidecar::etcd {
namespace {

TEST(Credentials, PasswordFileLosesItsTrailingNewlineAndIsReadEachTime) {
  test::TempDir dir("sidecar-cred");
  ASSERT_TRUE(test::write_file(dir / "pw", "first\n"));
  AuthOptions auth{"sidecar", (dir / "pw").string(), "", ""};
  std::string error;
  EXPECT_EQ(read_password(auth, &error).value_or("?"), "first");
  ASSERT_TRUE(test::write_file(dir / "pw", "second\r\n"));
  EXPECT_EQ(read_password(auth, &error).value_or("?"), "second");
}

TEST(Credentials, MissingPasswordSourcesNameTheSourceNotTheValue) {
  std::string error;
  AuthOptions file{"sidecar", "/nonexistent/pw", "", ""};
  EXPECT_FALSE(read_password(file, &error));
  EXPECT_NE(error.find("cannot read etcd.password_file /nonexistent/pw"), std::string::npos) << error;
  AuthOptions env{"sidecar", "", "SIDECAR_TEST_SURELY_UNSET_VAR", ""};
  EXPECT_FALSE(read_password(env, &error));
  EXPECT_NE(error.find("SIDECAR_TEST_SURELY_UNSET_VAR (etcd.password_env) is not set"), std::string::npos) << error;
  AuthOptions literal{"sidecar", "", "", "lit"};
  EXPECT_EQ(read_password(literal, &error).value_or("?"), "lit");
}

TEST(Credentials, TlsFilesMustExistAndBePem) {
  test::TempDir dir("sidecar-cred");
  ASSERT_TRUE(test::write_file(dir / "ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  ASSERT_TRUE(test::write_file(dir / "junk.pem", "not a certificate"));
  std::string error;
  EXPECT_TRUE(load_tls(TlsOptions{(dir / "ca.pem").string(), "", ""}, &error)) << error;
  EXPECT_FALSE(load_tls(TlsOptions{(dir / "junk.pem").string(), "", ""}, &error));
  EXPECT_NE(error.find("etcd.tls.ca " + (dir / "junk.pem").string() + " is not a PEM file"), std::string::npos) << error;
  EXPECT_FALSE(load_tls(TlsOptions{(dir / "ca.pem").string(), (dir / "none.pem").string(), (dir / "ca.pem").string()}, &error));
  EXPECT_NE(error.find("cannot read etcd.tls.cert"), std::string::npos) << error;
}

TEST(Credentials, RecognisesEtcdAuthAnswers) {
  EXPECT_TRUE(is_auth_token_error(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "etcdserver: invalid auth token")));
  EXPECT_TRUE(is_auth_token_error(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: revision of auth store is old")));
  EXPECT_FALSE(is_auth_token_error(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "etcdserver: permission denied")));
  EXPECT_TRUE(is_bad_credentials(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                              "etcdserver: authentication failed, invalid user ID or password")));
  EXPECT_TRUE(is_auth_not_enabled(
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: authentication is not enabled")));
}

TEST(Credentials, ExplainsTlsHandshakeFailuresByCause) {
  const TlsOptions ca_only{"/etc/s/ca.pem", "", ""};
  const TlsOptions mtls{"/etc/s/ca.pem", "/etc/s/c.pem", "/etc/s/k.pem"};
  const grpc::Status verify(grpc::StatusCode::UNAVAILABLE,
                            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Ssl handshake "
                            "failed: SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify failed");
  EXPECT_EQ(explain_tls_failure(verify, ca_only, true).value_or(""),
            "TLS handshake failed: the server's certificate is not signed by a CA in etcd.tls.ca (/etc/s/ca.pem)");
  const grpc::Status dropped(grpc::StatusCode::UNAVAILABLE,
                             "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: Endpoint read failed");
  EXPECT_NE(explain_tls_failure(dropped, ca_only, true).value_or("").find("requires a client certificate"),
            std::string::npos);
  // The same symptom on an endpoint that has answered before is a restart, not a TLS problem.
  EXPECT_FALSE(explain_tls_failure(dropped, ca_only, false));
  EXPECT_FALSE(explain_tls_failure(dropped, mtls, true));
  EXPECT_FALSE(explain_tls_failure(grpc::Status(grpc::StatusCode::UNAVAILABLE, "Connection refused"), ca_only, true));
  EXPECT_FALSE(explain_tls_failure(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "certificate verify failed"), ca_only, true));
}

TEST(Credentials, HttpsEndpointsParseWithTheirScheme) {
  std::string error;
  auto tls = parse_endpoint("https://etcd-0:2379/", &error);
  ASSERT_TRUE(tls);
  EXPECT_EQ(tls->target, "etcd-0:2379");
  EXPECT_TRUE(tls->tls);
  auto plain = parse_endpoint("127.0.0.1:2379", &error);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->tls);
  EXPECT_FALSE(parse_endpoint("unix:///x", &error));
}

}  // namespace
}  // namespace sidecar::etcd
