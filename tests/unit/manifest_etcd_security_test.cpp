// The manifest's etcd authentication and TLS settings: what they become, and every bad combination
// reported at load time where it was written. Passwords never appear in any message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using namespace manifest_testing;

TEST(ManifestEtcdSecurity, ParsesUsernamePasswordFileAndTls) {
  const ParseResult r = parse(R"(
etcd:
  endpoints: ["https://etcd-0:2379", "https://etcd-1:2379"]
  username: sidecar
  password_file: /run/secrets/etcd-password
  tls: {ca: /etc/s/ca.pem, cert: /etc/s/client.pem, key: /etc/s/client-key.pem}
services: [{name: a, id: b, port: 1}]
)");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  const EtcdSpec& e = r.manifest->etcd;
  EXPECT_EQ(e.username, "sidecar");
  EXPECT_EQ(e.password_file, "/run/secrets/etcd-password");
  EXPECT_EQ(e.password_env, "");
  EXPECT_EQ(e.password, "");
  EXPECT_EQ(e.tls_ca, "/etc/s/ca.pem");
  EXPECT_EQ(e.tls_cert, "/etc/s/client.pem");
  EXPECT_EQ(e.tls_key, "/etc/s/client-key.pem");
  EXPECT_THAT(r.warnings, IsEmpty());
}

TEST(ManifestEtcdSecurity, AcceptsPasswordEnvAndCaOnlyTls) {
  const ParseResult r = parse(R"(
etcd:
  endpoints: ["https://etcd:2379"]
  username: sidecar
  password_env: ETCD_PASSWORD
  tls: {ca: /etc/s/ca.pem}
services: [{name: a, id: b, port: 1}]
)",
                              fixed_env({{"ETCD_PASSWORD", "hunter2"}}));
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.manifest->etcd.password_env, "ETCD_PASSWORD");
  EXPECT_EQ(r.manifest->etcd.tls_cert, "");
  EXPECT_THAT(r.warnings, IsEmpty());
}

TEST(ManifestEtcdSecurity, WarnsWhenPasswordEnvIsNotSetYet) {
  const ParseResult r = parse(R"(
etcd: {username: sidecar, password_env: ETCD_PASSWORD}
services: [{name: a, id: b, port: 1}]
)");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_THAT(r.warnings, ElementsAre(HasSubstr("ETCD_PASSWORD is not set")));
}

TEST(ManifestEtcdSecurity, AcceptsLiteralPasswordWithAWarningThatDoesNotQuoteIt) {
  const ParseResult r = parse(R"(
etcd:
  username: sidecar
  password: "s3cr3t-literal"
services: [{name: a, id: b, port: 1}]
)");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.manifest->etcd.password, "s3cr3t-literal");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_THAT(r.warnings[0], HasSubstr("m.yaml:3:3: etcd.password: a literal password"));
  EXPECT_THAT(r.warnings[0], Not(HasSubstr("s3cr3t-literal")));
}

TEST(ManifestEtcdSecurity, PasswordFromAVariableIsNotALiteral) {
  const ParseResult r = parse(R"(
etcd: {username: sidecar, password: "${ETCD_PW}"}
services: [{name: a, id: b, port: 1}]
)",
                              fixed_env({{"ETCD_PW", "x"}}));
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.manifest->etcd.password, "x");
  EXPECT_THAT(r.warnings, IsEmpty());
}

TEST(ManifestEtcdSecurity, RejectsTwoPasswordSources) {
  const ParseResult r = parse(R"(
etcd:
  username: sidecar
  password_file: /run/secrets/pw
  password_env: ETCD_PASSWORD
  password: literal-one
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 3, "etcd.password_env", "only one password source"),
                                    ErrorAt(5, 3, "etcd.password", "only one password source")));
  EXPECT_THAT(all_errors(r), Not(HasSubstr("literal-one")));
}

TEST(ManifestEtcdSecurity, RejectsPasswordWithoutUsernameAndUsernameWithoutPassword) {
  const ParseResult no_user = parse(R"(
etcd:
  password_file: /run/secrets/pw
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(no_user.errors, ElementsAre(ErrorAt(2, 3, "etcd.password_file", "needs etcd.username")));
  const ParseResult no_password = parse(R"(
etcd:
  username: sidecar
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(no_password.errors, ElementsAre(ErrorAt(2, 3, "etcd.username", "needs a password")));
}

TEST(ManifestEtcdSecurity, RejectsEmptyPasswordAndInvalidVariableName) {
  const ParseResult r = parse(R"(
etcd:
  username: sidecar
  password_env: "ETCD-PASSWORD"
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(3, 17, "etcd.password_env", "must be the name of an environment variable")));
  const ParseResult empty = parse(R"(
etcd: {username: sidecar, password: ""}
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(empty.errors, ElementsAre(ErrorAt(1, 37, "etcd.password", "must not be empty")));
}

TEST(ManifestEtcdSecurity, RejectsClientCertWithoutKeyAndKeyWithoutCert) {
  const ParseResult r = parse(R"(
etcd:
  endpoints: ["https://etcd:2379"]
  tls:
    cert: /etc/s/client.pem
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 5, "etcd.tls.cert", "needs etcd.tls.key")));
  const ParseResult key_only = parse(R"(
etcd:
  endpoints: ["https://etcd:2379"]
  tls: {ca: /ca.pem, key: /k.pem}
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(key_only.errors, ElementsAre(ErrorAt(3, 22, "etcd.tls.key", "needs etcd.tls.cert")));
}

TEST(ManifestEtcdSecurity, RejectsTlsWithoutAnHttpsEndpointAndUnknownTlsKeys) {
  const ParseResult r = parse(R"(
etcd:
  endpoints: ["http://etcd:2379"]
  tls: {ca: /ca.pem}
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(3, 3, "etcd.tls", "no endpoint uses https://")));
  const ParseResult typo = parse(R"(
etcd:
  endpoints: ["https://etcd:2379"]
  tls: {cacert: /ca.pem}
services: [{name: a, id: b, port: 1}]
)");
  EXPECT_THAT(typo.errors, ElementsAre(ErrorAt(3, 9, "etcd.tls.cacert", "unknown key 'cacert'")));
}

}  // namespace
}  // namespace sidecar::core
