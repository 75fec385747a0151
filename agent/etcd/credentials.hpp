// Owns: how the etcd client proves who it is: TLS material read from files, the auth user's password
// source, and the translation of gRPC's TLS/auth failures into messages that name the setting to fix.
// Thread: pure functions plus file reads; called on the io_context thread.
#pragma once

#include <grpcpp/security/credentials.h>

#include <optional>
#include <string>

namespace sidecar::etcd {

// `tls:` in the manifest. Files, not contents: they are read again for every new channel, so certificates
// replaced on disk (cert-manager, Vault agent) are used from the next reconnect on.
struct TlsOptions {
  std::string ca_file;    // PEM roots to trust; empty: the system's roots
  std::string cert_file;  // client certificate chain for mTLS; set together with key_file
  std::string key_file;
  bool client_cert() const { return !cert_file.empty(); }
};

// etcd's user/password authentication. The password is looked up again at every Authenticate, so a
// rotated secret file is picked up without a restart. It is never logged, printed, or put in argv.
struct AuthOptions {
  std::string username;       // empty: no authentication
  std::string password_file;  // whole file, trailing newlines stripped
  std::string password_env;   // name of an environment variable
  std::string password;       // literal from the manifest (accepted with a warning)
  bool enabled() const { return !username.empty(); }
};

// The TLS files read into memory. `fingerprint` changes whenever any file's content changes.
struct TlsMaterial {
  grpc::SslCredentialsOptions ssl;
  std::string fingerprint;
};

// Reads every configured file; nullopt and `error` ("cannot read etcd.tls.ca /x/ca.pem: No such file")
// when one cannot be read or does not look like PEM.
std::optional<TlsMaterial> load_tls(const TlsOptions& tls, std::string* error);

// The password from the configured source; nullopt and `error` naming the source (never the value).
std::optional<std::string> read_password(const AuthOptions& auth, std::string* error);

// True for etcd's answers that mean "authenticate again": an expired or unknown token, a token issued
// before the auth store changed, or no token at all while auth is on.
bool is_auth_token_error(const grpc::Status& status);
// Authenticate refused the user name or password.
bool is_bad_credentials(const grpc::Status& status);
// etcd answered Authenticate with "authentication is not enabled".
bool is_auth_not_enabled(const grpc::Status& status);

// A one-line explanation of a failed TLS handshake with the setting to check, e.g. "the server's
// certificate is not signed by a CA in etcd.tls.ca (/x/ca.pem)"; nullopt when `status` is not a TLS failure.
// With TLS 1.3 a server that wants a client certificate accepts the handshake and then drops the
// connection ("Endpoint read failed"), so that case is recognised only on an endpoint that never answered.
std::optional<std::string> explain_tls_failure(const grpc::Status& status, const TlsOptions& tls,
                                               bool never_answered);

}  // namespace sidecar::etcd
