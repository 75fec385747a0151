// Owns: answering one DNS message from the catalog, sockets aside: the parse, the plan, the cache of
//       prepared answers per (service, type, selector) invalidated by the service's index, the staleness
//       rule, and the counters the metrics show.
// Thread: io_context thread (reads the catalog).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/core/dns_query.hpp"
#include "agent/core/metrics.hpp"
#include "agent/frontend/dns/dns_codec.hpp"
#include "agent/runtime/catalog.hpp"

namespace sidecar::frontend::dns {

namespace asio = boost::asio;

struct DnsOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8600;
  std::string domain = "sidecar.";
  std::chrono::seconds ttl{5};
  std::chrono::seconds max_stale{0};  // 0: answer from the last good set for as long as etcd is away
  std::string local_zone;             // the agent's zone, for "local.zone"
  // The first query of a service waits this long for its watch to sync; then SERVFAIL.
  std::chrono::milliseconds lookup_timeout{500};
  size_t max_pending_lookups = 256;  // UDP queries waiting for a first sync; beyond: SERVFAIL at once
  size_t max_cache_entries = 10000;  // prepared answers; the cache is emptied when it grows past this
  // TCP bounds, as the admin endpoint's: connections, time without a whole message, messages per connection.
  size_t max_tcp_connections = 64;
  std::chrono::milliseconds tcp_timeout{5000};
  unsigned max_tcp_messages = 1000;
};

struct DnsStats {
  static constexpr size_t kTypes = 7;   // A, AAAA, SRV, SOA, ANY, CNAME, other
  static constexpr size_t kRcodes = 6;  // NOERROR..REFUSED
  std::array<std::array<uint64_t, kRcodes>, kTypes> queries{};
  uint64_t truncated = 0;
  uint64_t dropped = 0;            // malformed packets (never answered)
  uint64_t stale = 0;              // answered from a set kept through an etcd outage
  uint64_t lookups_refused = 0;    // SERVFAIL: max_services, a sync that did not come, or too many waiting
  uint64_t tcp_refused = 0;        // TCP connections closed at once: max_tcp_connections
  core::Histogram latency{{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1, 0.5, 1}};
};

class DnsResponder {
 public:
  // One message being answered. Holds pointers into the caller's bytes, which must outlive it.
  struct Exchange {
    Query query;
    core::dns::Name name;
    bool tcp = false;
    bool lookup_failed = false;
    std::chrono::steady_clock::time_point received;
  };

  DnsResponder(runtime::Catalog& catalog, DnsOptions options);

  // nullopt: malformed, dropped (and counted).
  std::optional<Exchange> begin(const uint8_t* wire, size_t size, bool tcp);
  // The service is not watched or not synced yet: answering needs catalog.lookup(), which may wait.
  bool needs_sync(const Exchange& ex) const;
  // A lookup is due to keep the service's on-demand watch from expiring (once per quarter idle_timeout);
  // for a synced service it completes without waiting.
  bool refresh_due(const Exchange& ex) const;
  asio::awaitable<void> lookup(Exchange& ex);
  // Encodes the answer into `out` (at least kMaxTcpMessage bytes); returns its size (0: nothing to send).
  size_t finish(Exchange& ex, uint8_t* out);
  // A SERVFAIL for a message that cannot wait (too many lookups pending).
  size_t refuse(Exchange& ex, uint8_t* out);

  const DnsStats& stats() const { return stats_; }
  DnsStats& stats() { return stats_; }
  size_t cache_size() const { return cache_.size(); }
  const DnsOptions& options() const { return options_; }

  void collect_metrics(std::vector<core::MetricFamily>& out) const;
  nlohmann::json status() const;

 private:
  struct CacheEntry {
    const runtime::CatalogService* service = nullptr;
    int64_t index = -1;
    size_t instances = 0;
    uint64_t queries = 0;  // the rotation's counter
    std::unique_ptr<PreparedAnswer> answer;
  };
  CacheEntry& prepared(const runtime::CatalogService& service, const Exchange& ex);
  size_t encode(Exchange& ex, core::dns::Rcode rcode, const PreparedAnswer* answer, size_t start, uint8_t* out);

  runtime::Catalog& catalog_;
  DnsOptions options_;
  std::vector<std::string> domain_labels_;
  std::string domain_;
  Zone zone_;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::unordered_map<std::string, runtime::RuntimeClock::time_point> last_lookup_;
  std::string key_;  // reused for cache keys
  DnsStats stats_;
};

}  // namespace sidecar::frontend::dns
