#include "agent/frontend/dns/dns_responder.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "agent/frontend/freshness.hpp"

namespace sidecar::frontend::dns {

namespace cdns = core::dns;

namespace {

size_t type_slot(uint16_t qtype) {
  switch (qtype) {
    case cdns::kTypeA: return 0;
    case cdns::kTypeAaaa: return 1;
    case cdns::kTypeSrv: return 2;
    case cdns::kTypeSoa: return 3;
    case cdns::kTypeAny: return 4;
    case cdns::kTypeCname: return 5;
    default: return 6;
  }
}

constexpr uint16_t kSlotTypes[DnsStats::kTypes] = {cdns::kTypeA,   cdns::kTypeAaaa,  cdns::kTypeSrv, cdns::kTypeSoa,
                                                   cdns::kTypeAny, cdns::kTypeCname, 0};

bool names_service(const cdns::Name& name) {
  return name.kind == cdns::Name::Kind::kService || name.kind == cdns::Name::Kind::kInstance;
}

}  // namespace

DnsResponder::DnsResponder(runtime::Catalog& catalog, DnsOptions options)
    : catalog_(catalog),
      options_(std::move(options)),
      domain_labels_(cdns::domain_labels(options_.domain)),
      domain_(cdns::domain_text(domain_labels_)),
      zone_(Zone::make(domain_, static_cast<uint32_t>(options_.ttl.count()))) {}

std::optional<DnsResponder::Exchange> DnsResponder::begin(const uint8_t* wire, size_t size, bool tcp) {
  Exchange ex{Query::parse(wire, size), {}, tcp, false, std::chrono::steady_clock::now()};
  if (ex.query.status() == Query::Status::kDrop) {
    ++stats_.dropped;
    return std::nullopt;
  }
  if (ex.query.status() == Query::Status::kOk) ex.name = cdns::parse_name(ex.query.labels(), domain_labels_);
  return ex;
}

bool DnsResponder::needs_sync(const Exchange& ex) const {
  if (ex.query.status() != Query::Status::kOk || !names_service(ex.name)) return false;
  const runtime::CatalogService* s = catalog_.find(ex.name.service);
  return s == nullptr || !s->synced();
}

bool DnsResponder::refresh_due(const Exchange& ex) const {
  if (ex.query.status() != Query::Status::kOk || !names_service(ex.name)) return false;
  const auto it = last_lookup_.find(ex.name.service);
  return it == last_lookup_.end() ||
         runtime::RuntimeClock::now() - it->second >= catalog_.policy().limits().idle_timeout / 4;
}

asio::awaitable<void> DnsResponder::lookup(Exchange& ex) {
  const std::string service = ex.name.service;
  const runtime::Catalog::Lookup result = co_await catalog_.lookup(service, options_.lookup_timeout);
  if (result.status != runtime::Catalog::Lookup::Status::kOk) {
    ex.lookup_failed = true;
    ++stats_.lookups_refused;
    spdlog::debug("dns: {}: {}", service, result.error);
    co_return;
  }
  if (last_lookup_.size() >= options_.max_cache_entries) last_lookup_.clear();
  last_lookup_[service] = runtime::RuntimeClock::now();
}

DnsResponder::CacheEntry& DnsResponder::prepared(const runtime::CatalogService& service, const Exchange& ex) {
  const cdns::Name& n = ex.name;
  key_.clear();
  key_.append(n.service).push_back('\x1f');
  key_.append(n.tag).push_back('\x1f');
  key_.append(n.zone).push_back('\x1f');
  key_.append(n.port_name).push_back('\x1f');
  key_.append(n.id).push_back('\x1f');
  key_.push_back(n.kind == cdns::Name::Kind::kInstance ? 'i' : 's');
  key_.append(std::to_string(ex.query.qtype()));
  auto it = cache_.find(key_);
  if (it == cache_.end()) {
    // Clients choose the names (any tag, any id): past the bound everything is dropped and rebuilt on demand.
    if (cache_.size() >= options_.max_cache_entries) cache_.clear();
    it = cache_.emplace(key_, CacheEntry{}).first;
  }
  CacheEntry& e = it->second;
  const core::EndpointSet& set = service.set();
  // The index moves with every change (and follows a wiped etcd down), so != is the test, not <.
  if (e.answer == nullptr || e.service != &service || e.index != service.index() || e.instances != set.size()) {
    const cdns::PlanContext ctx{domain_, options_.local_zone};
    e.answer = std::make_unique<PreparedAnswer>(cdns::plan_answers(n, ex.query.qtype(), set.sorted(), ctx),
                                                static_cast<uint32_t>(options_.ttl.count()));
    e.service = &service;
    e.index = service.index();
    e.instances = set.size();
  }
  return e;
}

size_t DnsResponder::encode(Exchange& ex, cdns::Rcode rcode, const PreparedAnswer* answer, size_t start, uint8_t* out) {
  bool truncated = false;
  const size_t limit = ex.tcp ? kMaxTcpMessage : ex.query.udp_limit();
  const size_t size = encode_answer(ex.query, rcode, answer, start, zone_, out, limit, &truncated);
  if (truncated) ++stats_.truncated;
  ++stats_.queries[type_slot(ex.query.qtype())][static_cast<size_t>(rcode)];
  const auto took = std::chrono::steady_clock::now() - ex.received;
  stats_.latency.observe(std::chrono::duration<double>(took).count());
  return size;
}

size_t DnsResponder::refuse(Exchange& ex, uint8_t* out) {
  ++stats_.lookups_refused;
  return encode(ex, cdns::Rcode::kServFail, nullptr, 0, out);
}

size_t DnsResponder::finish(Exchange& ex, uint8_t* out) {
  switch (ex.query.status()) {
    case Query::Status::kDrop: return 0;
    case Query::Status::kNotImp: return encode(ex, cdns::Rcode::kNotImp, nullptr, 0, out);
    case Query::Status::kRefused: return encode(ex, cdns::Rcode::kRefused, nullptr, 0, out);
    case Query::Status::kOk: break;
  }
  if (ex.name.kind == cdns::Name::Kind::kOutside) return encode(ex, cdns::Rcode::kRefused, nullptr, 0, out);
  if (!names_service(ex.name)) {
    const cdns::PlanContext ctx{domain_, options_.local_zone};
    const PreparedAnswer answer(cdns::plan_answers(ex.name, ex.query.qtype(), {}, ctx),
                                static_cast<uint32_t>(options_.ttl.count()));
    return encode(ex, answer.set().rcode, &answer, 0, out);
  }
  const runtime::CatalogService* service = catalog_.find(ex.name.service);
  if (ex.lookup_failed || service == nullptr || !service->synced()) {
    return encode(ex, cdns::Rcode::kServFail, nullptr, 0, out);
  }
  const Freshness fresh = freshness(*service);
  if (!within_max_stale(fresh, options_.max_stale)) return encode(ex, cdns::Rcode::kServFail, nullptr, 0, out);
  if (fresh.stale) ++stats_.stale;
  CacheEntry& e = prepared(*service, ex);
  const size_t start = cdns::rotation_start(e.answer->set(), e.queries++);
  return encode(ex, e.answer->set().rcode, e.answer.get(), start, out);
}

void DnsResponder::collect_metrics(std::vector<core::MetricFamily>& out) const {
  core::MetricFamily queries{"etcd_sidecar_dns_queries_total", "DNS queries answered, by query type and rcode",
                             core::MetricType::kCounter, {}, {}};
  for (size_t t = 0; t < DnsStats::kTypes; ++t) {
    for (size_t r = 0; r < DnsStats::kRcodes; ++r) {
      if (stats_.queries[t][r] == 0) continue;
      queries.samples.push_back({{{"type", std::string(cdns::type_label(kSlotTypes[t]))},
                                  {"rcode", std::string(cdns::to_string(static_cast<cdns::Rcode>(r)))}},
                                 static_cast<double>(stats_.queries[t][r])});
    }
  }
  out.push_back(std::move(queries));
  out.push_back({"etcd_sidecar_dns_answer_seconds", "Time from receiving a DNS query to its answer being ready",
                 core::MetricType::kHistogram, {}, {stats_.latency.sample()}});
  const auto counter = [&out](const char* name, const char* help, uint64_t value) {
    out.push_back({name, help, core::MetricType::kCounter, {{{}, static_cast<double>(value)}}, {}});
  };
  counter("etcd_sidecar_dns_truncated_total", "UDP answers truncated (TC set): the client should ask again over TCP",
          stats_.truncated);
  counter("etcd_sidecar_dns_dropped_total", "Malformed DNS packets dropped without an answer", stats_.dropped);
  counter("etcd_sidecar_dns_stale_answers_total",
          "DNS answers given from the last good set while etcd was unreachable (within dns.max_stale)", stats_.stale);
  counter("etcd_sidecar_dns_lookups_failed_total",
          "DNS queries answered SERVFAIL because the service could not be watched or synced in time",
          stats_.lookups_refused);
  counter("etcd_sidecar_dns_tcp_refused_total", "DNS TCP connections closed at once (too many open)",
          stats_.tcp_refused);
}

nlohmann::json DnsResponder::status() const {
  uint64_t total = 0;
  for (const auto& row : stats_.queries) {
    for (uint64_t v : row) total += v;
  }
  return {{"domain", domain_},
          {"ttl_s", options_.ttl.count()},
          {"max_stale_s", options_.max_stale.count()},
          {"queries", total},
          {"truncated", stats_.truncated},
          {"dropped", stats_.dropped},
          {"stale_answers", stats_.stale},
          {"lookups_failed", stats_.lookups_refused},
          {"cached_answers", cache_.size()}};
}

}  // namespace sidecar::frontend::dns
