// Owns: the parsed service manifest (what the agent registers, discovers and mirrors) and its parser.
// Thread: pure; called from any thread, touches no global state except reading the environment it is given.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/core/selection.hpp"

namespace sidecar::core {

using Duration = std::chrono::milliseconds;

// Where a value came from, for error messages: "manifest.yaml:12:7: services[0].port: ...".
struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
};

struct ManifestError {
  SourceLocation where;
  std::string field;    // dotted path, e.g. "services[1].id"
  std::string message;  // e.g. "unknown key 'prot' (did you mean 'port'?)"
  // "<file>:<line>:<col>: <field>: <message>"
  std::string to_string() const;
};

enum class ValueFormat { kSidecarJson, kEtcdEndpoints };

enum class CheckType { kHttp, kTcp, kExec, kGrpc, kTtl };

// One health check of a service (`services[].checks[]`). Exactly one of http/tcp/exec/grpc/ttl is written.
// A ttl check has no probe: the app reports pass/warn/fail on the admin endpoint at least once per `ttl`.
struct CheckSpec {
  CheckType type = CheckType::kTcp;
  std::string name;                           // `name:`, default "<type> <target>" (log lines, status)
  std::string target;                         // http: the URL as written; tcp/grpc: host:port; exec: argv joined
  // http: http://host[:port][/path]; https is not supported (no TLS yet).
  std::string host;                           // http/tcp/grpc; IPv6 without brackets
  int port = 0;                               // http (default 80), tcp, grpc
  std::string path = "/";                     // http: path and query
  std::string expect_body;                    // http: the body must contain this (empty: any body)
  std::vector<std::pair<std::string, std::string>> headers;  // http: extra request headers, in order
  std::vector<std::string> argv;              // exec: run without a shell; exit 0 passes
  std::string grpc_service;                   // grpc: HealthCheckRequest.service ("" = the whole server)
  Duration interval{10000};                   // between the starts of two runs
  Duration timeout{2000};                     // < interval; default min(2s, interval/2)
  int rise = 2;                               // consecutive passes to become passing
  int fall = 3;                               // consecutive failures to become critical
  Duration ttl{0};                            // ttl: 1s..24h; critical when no report came within it
  SourceLocation where;
};

enum class InitialStatus { kCritical, kPassing };

struct ServiceSpec {
  std::string name;                           // required, [A-Za-z0-9._-]+
  std::string id;                             // required after ${} expansion, same charset
  std::string address = "127.0.0.1";          // default 127.0.0.1
  int port = 0;                               // required, 1..65535
  std::map<std::string, std::string> metadata;  // scalar values only, stringified
  std::map<std::string, int> ports;           // `ports: {grpc: 9090}` named ports, [a-z0-9-]{1,15} -> 1..65535
  std::vector<std::string> tags;              // `tags: [v2]`, [A-Za-z0-9._-]{1,64}, sorted and unique
  int weight = 1;                             // `weight:` 1..10000
  std::string zone;                           // optional, [A-Za-z0-9._-]{1,64}
  std::string region;                         // optional, same charset
  ValueFormat value_format = ValueFormat::kSidecarJson;
  std::vector<CheckSpec> checks;              // all must pass for the key to be published
  // critical: published only after every check has risen; passing: published at once, until checks fall.
  InitialStatus initial_status = InitialStatus::kCritical;
  SourceLocation where;                       // the list item, for runtime log lines
};

enum class OutputFormat { kJson, kLines, kTemplate };

struct DiscoverSpec {
  std::string service;                        // required, same charset as ServiceSpec::name
  std::string output;                         // required, absolute or relative file path
  OutputFormat format = OutputFormat::kJson;
  std::string template_path;                  // required iff format == kTemplate
  unsigned mode = 0644;                       // "0644" (octal string) or integer
  bool include_self = true;
  int min_instances = 0;                      // never write a smaller set
  Duration wait_min{0};                       // quiescence window
  Duration wait_max{1000};                    // upper bound on coalescing delay; wait_min <= wait_max
  std::optional<Duration> wait_holdoff;       // fixed spacing of writes (<= wait_max); unset: paced by cost
  std::string check_command;                  // optional; {{staged}} replaced by the staged path
  std::string on_change;                      // optional; run after each new file
  Duration command_timeout{30000};            // for check_command and on_change
  Selector select;                            // `select:` which instances the file lists
  SortOrder sort = SortOrder::kId;            // `sort: id|weight|random-stable`
  SourceLocation where;
};

struct ConfigSpec {
  std::string key;                            // exactly one of key / prefix
  std::string prefix;                         // must end with '/'
  std::string output;                         // required
  std::string format = "json";                // prefix only: "json" (object) or "dir" (one file per key)
  std::optional<std::string> default_value;   // `default:` for a missing key
  unsigned mode = 0644;
  std::string on_change;
  Duration command_timeout{30000};
  SourceLocation where;
};

struct EtcdSpec {
  std::vector<std::string> endpoints{"http://127.0.0.1:2379"};  // http:// or https://, host:port
  std::string prefix = "/services";            // no trailing slash after normalisation
  Duration dial_timeout{2000};                 // `dial_timeout:`
  Duration request_timeout{1000};              // `request_timeout:` deadline of every unary call
  // Authentication: `username:` plus exactly one password source. The password itself is read by the etcd
  // client at every Authenticate (never here, never logged); only a literal `password:` is held here.
  std::string username;                        // empty: no authentication
  std::string password_file;                   // `password_file:` e.g. /run/secrets/etcd-password
  std::string password_env;                    // `password_env:` name of an environment variable
  std::string password;                        // `password:` literal, accepted with a warning
  // `tls: {ca, cert, key}` for https:// endpoints; cert and key together (mTLS). Files, re-read on reconnect.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};

// `admin: {listen: "127.0.0.1:9464", enabled: true}`: the HTTP admin endpoint (health, metrics, status).
struct AdminSpec {
  bool enabled = true;                         // `enabled: false` or `listen: ""` switches it off
  std::string host = "127.0.0.1";              // an IP literal; loopback by default (it is unauthenticated)
  uint16_t port = 9464;                        // 0: any free port (the bound one is logged)
  // `token_file:` when set, every write route (check reports, maintenance, drain) needs
  // "Authorization: Bearer <the file's content>". The daemon reads it at start and at every reload.
  std::string token_file;
  SourceLocation where;
};

// `catalog: {idle_timeout: 10m, max_services: 1000}`: the watches lookups start on demand (services no
// discover entry names): stopped after idle_timeout without a lookup, at most max_services in all.
struct CatalogSpec {
  Duration idle_timeout{10 * 60 * 1000};       // >= 1s
  size_t max_services = 1000;                  // 1..100000
};

// `http: {max_waiters: 10000}`: the catalog lookups on the admin endpoint. Blocking queries and event
// streams hold their connection; at most max_waiters of them at once (the next is answered 429).
struct HttpSpec {
  size_t max_waiters = 10000;                  // 1..1000000
};

// `dns: {listen: "127.0.0.1:8600", domain: sidecar., ttl: 5s, max_stale: 0s}`: the DNS view of the catalog
// (UDP and TCP on one address). Off unless `listen:` is written.
struct DnsSpec {
  bool enabled = false;
  std::string host;
  uint16_t port = 0;                           // 0: any free port (the bound one is logged)
  std::string domain = "sidecar.";             // lower case, absolute
  Duration ttl{5000};                          // whole seconds; 0s allowed
  Duration max_stale{0};                       // 0: answer from the last good set for as long as etcd is away
  SourceLocation where;
  bool operator==(const DnsSpec& o) const {
    return enabled == o.enabled && host == o.host && port == o.port && domain == o.domain && ttl == o.ttl &&
           max_stale == o.max_stale;
  }
};

// A parsed "host:port" / "[v6]:port" listen address; `error` is set instead when the text is not one.
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
  std::string error;
};
ListenAddress parse_listen_address(std::string_view text);

// `xds: {listen, tls: {cert, key, ca}, select: {zone: local}}`: the xDS server (ADS) for proxyless gRPC and
// Envoy; off unless `listen` is set. Plaintext only on loopback: any other address needs tls (the
// manifest is refused otherwise). Read at start; a reload that changes it waits for a restart.
struct XdsSpec {
  bool enabled = false;
  std::string host;
  uint16_t port = 0;                           // 0: any free port (the bound one is logged)
  std::string tls_cert;                        // cert and key together; ca too for mTLS
  std::string tls_key;
  std::string tls_ca;
  bool local_zone_first = false;               // `select: {zone: local}`: agent.zone's endpoints at priority 0
  SourceLocation where;
};

// `agent: {zone, region}`: where this agent runs, for `select: {zone: local}`. When `zone:` is not written
// it is the zone every service of the manifest shares, if they all name one (else none).
struct AgentSpec {
  std::string zone;
  std::string region;
};

struct Manifest {
  std::string source;                          // file name the manifest was read from
  AgentSpec agent;
  EtcdSpec etcd;
  Duration lease_ttl{10000};                   // `lease: {ttl: 10s}`; >= 1s (etcd has second granularity), <= 1h
  std::vector<ServiceSpec> services;
  std::vector<DiscoverSpec> discover;
  std::vector<ConfigSpec> config;
  AdminSpec admin;
  CatalogSpec catalog;
  HttpSpec http;
  DnsSpec dns;
  XdsSpec xds;
  // `shutdown: {drain_delay: 0s}`: on SIGTERM, delete the keys, wait this long (the app finishes in-flight
  // requests while clients stop sending), then revoke the lease and exit.
  Duration drain_delay{0};

  // Key of a service: "<etcd.prefix>/<name>/<id>".
  std::string key_of(const ServiceSpec& s) const { return etcd.prefix + "/" + s.name + "/" + s.id; }
};

// Looks an environment variable up; returns nullopt when unset. Injected so tests control the environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

struct ParseResult {
  std::optional<Manifest> manifest;   // set iff errors is empty
  std::vector<ManifestError> errors;  // every error found, in document order (not just the first)
  std::vector<std::string> warnings;  // non-fatal, already formatted "<file>:<line>:<col>: ..."
  bool ok() const { return manifest.has_value(); }
};

// Parses manifest text. `source_name` is used in messages only.
ParseResult parse_manifest(std::string_view text, std::string_view source_name, const EnvLookup& env);
// Reads and parses a file; an unreadable file is a single error naming it.
ParseResult load_manifest(const std::string& path, const EnvLookup& env);

// "10s", "250ms", "1m", "1.5s" -> Duration. nullopt for anything else (negative, no unit, unknown unit).
std::optional<Duration> parse_duration(std::string_view text);

const char* to_string(CheckType type);

// Expands ${VAR} and ${VAR:-default}. "$$" is a literal '$'. Error text on an unterminated "${".
struct Expansion {
  std::string value;
  std::optional<std::string> error;
  std::vector<std::string> unset;  // variables referenced as ${VAR} (no default) that were not set, in order
};
Expansion expand_env(std::string_view text, const EnvLookup& env);

}  // namespace sidecar::core
