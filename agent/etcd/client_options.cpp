#include "agent/etcd/client.hpp"

namespace sidecar::etcd {

ClientOptions client_options_from(const core::EtcdSpec& spec) {
  ClientOptions options;
  options.endpoints = spec.endpoints;
  options.request_timeout = spec.request_timeout;
  options.auth.username = spec.username;
  options.auth.password_file = spec.password_file;
  options.auth.password_env = spec.password_env;
  options.auth.password = spec.password;
  options.tls.ca_file = spec.tls_ca;
  options.tls.cert_file = spec.tls_cert;
  options.tls.key_file = spec.tls_key;
  return options;
}

}  // namespace sidecar::etcd
