#include "agent/etcd/credentials.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sidecar::etcd {

namespace {

bool contains(const std::string& text, const char* needle) { return text.find(needle) != std::string::npos; }

std::optional<std::string> read_whole(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (error) *error = std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool read_pem(const std::string& path, const char* field, std::string* into, std::string* error) {
  std::string why;
  auto text = read_whole(path, &why);
  if (!text) {
    if (error) *error = "cannot read " + std::string(field) + " " + path + ": " + why;
    return false;
  }
  // A half-written file (being replaced right now) or the wrong file: better said here than as a handshake
  // error later.
  if (!contains(*text, "-----BEGIN ")) {
    if (error) *error = std::string(field) + " " + path + " is not a PEM file";
    return false;
  }
  *into = std::move(*text);
  return true;
}

}  // namespace

std::optional<TlsMaterial> load_tls(const TlsOptions& tls, std::string* error) {
  TlsMaterial m;
  if (!tls.ca_file.empty() && !read_pem(tls.ca_file, "etcd.tls.ca", &m.ssl.pem_root_certs, error)) return std::nullopt;
  if (!tls.cert_file.empty() && !read_pem(tls.cert_file, "etcd.tls.cert", &m.ssl.pem_cert_chain, error)) {
    return std::nullopt;
  }
  if (!tls.key_file.empty() && !read_pem(tls.key_file, "etcd.tls.key", &m.ssl.pem_private_key, error)) {
    return std::nullopt;
  }
  m.fingerprint = m.ssl.pem_root_certs + '\0' + m.ssl.pem_cert_chain + '\0' + m.ssl.pem_private_key;
  return m;
}

std::optional<std::string> read_password(const AuthOptions& auth, std::string* error) {
  if (!auth.password_file.empty()) {
    std::string why;
    auto text = read_whole(auth.password_file, &why);
    if (!text) {
      if (error) *error = "cannot read etcd.password_file " + auth.password_file + ": " + why;
      return std::nullopt;
    }
    // `echo secret > file` leaves a newline that is not part of the password.
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
    return text;
  }
  if (!auth.password_env.empty()) {
    const char* value = std::getenv(auth.password_env.c_str());
    if (value == nullptr) {
      if (error) *error = "environment variable " + auth.password_env + " (etcd.password_env) is not set";
      return std::nullopt;
    }
    return std::string(value);
  }
  return auth.password;
}

bool is_auth_token_error(const grpc::Status& status) {
  const std::string& m = status.error_message();
  return contains(m, "invalid auth token") || contains(m, "revision of auth store is old") ||
         contains(m, "user name is empty");
}

bool is_bad_credentials(const grpc::Status& status) {
  return contains(status.error_message(), "authentication failed");
}

bool is_auth_not_enabled(const grpc::Status& status) {
  return contains(status.error_message(), "authentication is not enabled");
}

std::optional<std::string> explain_tls_failure(const grpc::Status& status, const TlsOptions& tls,
                                               bool never_answered) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return std::nullopt;
  const std::string& m = status.error_message();
  const std::string ca = tls.ca_file.empty() ? "the system's CA roots (set etcd.tls.ca)" : "etcd.tls.ca (" + tls.ca_file + ")";
  if (contains(m, "CERTIFICATE_VERIFY_FAILED") || contains(m, "certificate verify failed")) {
    return "TLS handshake failed: the server's certificate is not signed by a CA in " + ca;
  }
  if (contains(m, "CERTIFICATE_REQUIRED") || contains(m, "certificate required") ||
      contains(m, "HANDSHAKE_FAILURE") || contains(m, "handshake failure") || contains(m, "BAD_CERTIFICATE") ||
      contains(m, "bad certificate") || contains(m, "UNKNOWN_CA") || contains(m, "unknown ca")) {
    if (!tls.client_cert()) {
      return "TLS handshake failed: the server requires a client certificate; set etcd.tls.cert and etcd.tls.key";
    }
    return "TLS handshake failed: the server rejected the client certificate etcd.tls.cert (" + tls.cert_file +
           "); is it signed by a CA the server trusts?";
  }
  if (contains(m, "WRONG_VERSION_NUMBER") || contains(m, "wrong version number")) {
    return "TLS handshake failed: the server does not speak TLS (use http:// for this endpoint?)";
  }
  if (never_answered && !tls.client_cert() &&
      (contains(m, "Endpoint read failed") || contains(m, "Socket closed") || contains(m, "Connection reset"))) {
    return "TLS connection closed by the server right after the handshake: it most likely requires a client "
           "certificate; set etcd.tls.cert and etcd.tls.key";
  }
  if (contains(m, "Handshake failed") || contains(m, "handshake failed") || contains(m, "Ssl")) {
    return "TLS handshake failed (" + m + "); check etcd.tls.ca" +
           std::string(tls.client_cert() ? ", etcd.tls.cert and etcd.tls.key" : " and whether the server requires a client certificate");
  }
  return std::nullopt;
}

}  // namespace sidecar::etcd
