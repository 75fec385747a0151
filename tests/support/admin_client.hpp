// Owns: the test side of the agent's admin endpoint: finding its port in the log, plain HTTP/1.1 requests
// over a blocking socket, and a strict parser of the Prometheus text format.
// Thread: any; no shared state.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar::test {

// Agents started by the test helpers listen on an ephemeral port ("--admin-listen 127.0.0.1:0"), so tests
// running in parallel never fight over 9464. Adds the flag unless the caller passed --admin-listen or the
// manifest has its own admin: section.
void add_admin_listen_default(std::vector<std::string>& argv, std::string_view manifest_yaml);

// The port from the agent's "admin endpoint listening on http://HOST:PORT" log line.
std::optional<std::uint16_t> admin_port_from_log(std::string_view log);
// The port from the agent's "dns: answering for DOMAIN on HOST:PORT" log line.
std::optional<std::uint16_t> dns_port_from_log(std::string_view log);

struct HttpResponse {
  int status = 0;                              // 0: no (complete) response; see `error`
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;
  // The header's value, "" when absent; `name` in lower case.
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One request with "Connection: close", read to EOF. `raw` (when set) is sent as-is instead.
HttpResponse http_request(std::uint16_t port, std::string_view method, std::string_view path,
                          std::chrono::milliseconds timeout = std::chrono::seconds(5));
HttpResponse http_raw(std::uint16_t port, std::string_view raw,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

// ---- Prometheus text format 0.0.4
struct PromSample {
  std::string name;                             // as written, e.g. foo_bucket
  std::map<std::string, std::string> labels;
  double value = 0;
};
struct PromFamily {
  std::string help;
  std::string type;  // counter | gauge | histogram | summary | untyped
  std::vector<PromSample> samples;
};
struct PromParse {
  std::map<std::string, PromFamily> families;
  std::vector<std::string> errors;  // "line N: why"; empty when the text is well-formed

  // The value of the sample `name` with exactly these labels; nullopt when absent.
  std::optional<double> value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
};
// Checks: HELP/TYPE before the family's samples, one TYPE per family, names/label names valid, label values
// correctly escaped, values parse as floats, sample names belong to the declared family (histogram
// _bucket/_sum/_count), every histogram has a +Inf bucket equal to _count, counters end in _total.
PromParse parse_prometheus(std::string_view text);

}  // namespace sidecar::test
