// Sections for the lookup views' targets (issues 13 and 14): put -> blocking query answered and put -> DNS
// answer changed against a raw watcher on the same etcd, 10,000 parked waiters (memory, put -> all answered), and the idle agent's RSS
// and CPU with the DNS and xDS servers on against the same agent without them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <thread>

#include "bench/proc_info.hpp"
#include "bench/scenario.hpp"
#include "tests/support/admin_client.hpp"
#include "tests/support/parked_requests.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::bench {
namespace {

constexpr size_t kWaiters = 10000;

struct LookupAgent {
  std::optional<Agent> agent;
  std::uint16_t admin_port = 0;
};

LookupAgent start_lookup_agent(BenchContext& ctx, const std::string& name, const std::string& extra_yaml) {
  LookupAgent a;
  const std::string manifest = etcd_section(ctx) + "discover:\n  - service: " + name + "\n    output: " +
                               (ctx.work_dir / (name + ".json")).string() + "\n" + extra_yaml;
  a.agent.emplace(Agent::start(ctx, name, manifest));
  const auto log = ctx.work_dir / (name + ".log");
  std::optional<std::uint16_t> port;
  if (!test::wait_until([&] { return (port = test::admin_port_from_log(test::read_file(log).value_or(""))).has_value(); },
                        10s)) {
    throw SectionFailed("the agent never logged its admin port; log:\n" + a.agent->log_tail());
  }
  a.admin_port = *port;
  return a;
}

int64_t header_index(const test::HttpResponse& r) {
  const std::string h = r.header("x-sidecar-index");
  return h.empty() ? -1 : std::stoll(h);
}

int64_t waiting(std::uint16_t port) {
  const test::HttpResponse r = test::http_request(port, "GET", "/v1/status");
  const auto at = r.body.find("\"waiting\":");
  return at == std::string::npos ? -1 : std::stoll(r.body.substr(at + 10));
}

// The service's current index once the agent has synced it (-1 after 10 s).
int64_t synced_index(std::uint16_t port, const std::string& service, int64_t at_least) {
  int64_t index = -1;
  test::wait_until(
      [&] {
        index = header_index(test::http_request(port, "GET", "/v1/catalog/service/" + service));
        return index >= at_least;
      },
      10s, 20ms);
  return index;
}

void put_to_blocking_answer(BenchContext& ctx, test::EtcdSyncClient& client) {
  const std::string service = "bench-lookup";
  const std::string prefix = "/services/" + service + "/";
  const auto raw_watch = watch_prefix(ctx, prefix);
  test::WatchRecorder& raw = *raw_watch;
  const int64_t first = client.put(prefix + "seed", R"({"address":"10.0.0.1","port":80})");
  LookupAgent a = start_lookup_agent(ctx, service, "");
  int64_t index = synced_index(a.admin_port, service, first);
  if (index < first) throw SectionFailed("the catalog did not sync " + service + "; log:\n" + a.agent->log_tail());

  const int iterations = ctx.options.quick ? 30 : 200;
  LatencyPlot samples{"put -> blocking query answered", {}, {}};
  for (int i = 0; i < iterations; ++i) {
    const std::string target =
        "/v1/catalog/service/" + service + "?index=" + std::to_string(index) + "&wait=30s";
    auto answer = std::async(std::launch::async, [&a, target] {
      test::HttpResponse r = test::http_request(a.admin_port, "GET", target, 35s);
      return std::pair{r, Clock::now()};
    });
    if (!test::wait_until([&] { return waiting(a.admin_port) == 1; }, 5s, 1ms)) {
      throw SectionFailed("the blocking query did not park; log:\n" + a.agent->log_tail());
    }
    const std::size_t raw_before = event_count(raw);
    const std::string key = prefix + numbered_id("h", i);
    const auto t0 = Clock::now();
    const int64_t revision = client.put(key, instance_value(service, numbered_id("h", i), i, 8080));
    const auto [response, answered_at] = answer.get();
    if (header_index(response) != revision) {
      throw SectionFailed("blocking query answered with index " + response.header("x-sidecar-index") + ", not " +
                          std::to_string(revision));
    }
    record_against_raw(raw, raw_before, key, t0, answered_at, *a.agent, samples);
    index = revision;
  }
  report_against_raw(ctx, "lookups", "put -> blocking query answered", samples, 1);
  ctx.plots.push_back(std::move(samples));
}

// The floor under "one change answers 10,000 waiters": a plain server holding the same 10,000 loopback
// connections sends each the same answer and closes it, as fast as the kernel lets it, while the same client
// reads them. It runs in a child process (the two ends need 20,000 descriptors, more than one process may
// hold here); what is left above it is the agent's own cost.
double fanout_floor_ms(const std::string& request, const std::string& answer) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int ready[2];
  int go[2];
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 4096) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || ::pipe2(ready, O_CLOEXEC) != 0 ||
      ::pipe2(go, O_CLOEXEC) != 0) {
    ::close(listener);
    throw SectionFailed("the fan-out floor's listener failed");
  }
  std::vector<int> accepted(kWaiters, -1);  // allocated before fork: the child only makes system calls
  const pid_t child = ::fork();
  if (child == 0) {
    size_t n = 0;
    while (n < kWaiters) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) ::_exit(1);
      accepted[n++] = fd;
    }
    char byte = 1;
    if (::write(ready[1], &byte, 1) != 1 || ::read(go[0], &byte, 1) != 1) ::_exit(1);
    for (const int fd : accepted) {
      ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
    ::_exit(0);
  }
  ::close(listener);
  test::ParkedRequests clients;
  bool opened = child > 0;
  for (size_t i = 0; opened && i < kWaiters; ++i) opened = clients.open(ntohs(addr.sin_port), request);
  char byte = 1;
  const bool accepted_all = opened && ::read(ready[0], &byte, 1) == 1;
  const auto t0 = Clock::now();
  const bool started = accepted_all && ::write(go[1], &byte, 1) == 1;
  const size_t open = started ? clients.drain_until_closed(30s) : kWaiters;
  const double ms = to_ms(Clock::now() - t0);
  for (const int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
  if (child > 0) {
    int status = 0;
    ::waitpid(child, &status, 0);
  }
  if (open != 0) throw SectionFailed("the fan-out floor did not answer 10,000 connections");
  return ms;
}

void ten_thousand_waiters(BenchContext& ctx, test::EtcdSyncClient& client) {
  if (test::raise_open_file_limit() < kWaiters + 256) {
    throw SectionFailed("RLIMIT_NOFILE's hard limit is below 10,256: the bench cannot hold 10,000 sockets");
  }
  const std::string service = "bench-waiters";
  const std::string prefix = "/services/" + service + "/";
  const int64_t first = client.put(prefix + "seed", R"({"address":"10.0.0.1","port":80})");
  LookupAgent a = start_lookup_agent(ctx, service, "");
  const int64_t index = synced_index(a.admin_port, service, first);
  if (index < first) throw SectionFailed("the catalog did not sync " + service);
  std::this_thread::sleep_for(3s);  // past the start-up page release (startup_pages.hpp), as in `idle`
  const auto before = read_memory(a.agent->pid());

  const std::string request = "GET /v1/catalog/service/" + service + "?index=" + std::to_string(index) +
                              "&wait=120s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
  test::ParkedRequests parked;
  for (size_t i = 0; i < kWaiters; ++i) {
    if (!parked.open(a.admin_port, request)) throw SectionFailed("connection " + std::to_string(i) + " failed");
  }
  if (!test::wait_until([&] { return waiting(a.admin_port) == static_cast<int64_t>(kWaiters); }, 60s, 50ms)) {
    throw SectionFailed("only " + std::to_string(waiting(a.admin_port)) + " of 10,000 waiters parked");
  }
  const auto during = read_memory(a.agent->pid());
  const auto t0 = Clock::now();
  const int64_t revision = client.put(prefix + "changed", R"({"address":"10.0.0.2","port":80})");
  const size_t open = parked.drain_until_closed(30s);
  const double all_ms = to_ms(Clock::now() - t0);
  size_t answered = 0;
  const std::string expected = "X-Sidecar-Index: " + std::to_string(revision) + "\r\n";
  for (const auto& r : parked.requests()) answered += r.received.find(expected) != std::string::npos ? 1 : 0;
  if (!before || !during) throw SectionFailed("cannot read the agent's smaps_rollup");
  const long extra_kb = during->rss_kb - before->rss_kb;
  ctx.report.add_check("lookups", "10,000 parked blocking queries: extra RSS", format_mb(extra_kb), "<= 20 MB",
                       extra_kb <= 20 * 1024);
  // The same answer bytes, from a plain server, as the reference.
  const auto sample = std::find_if(parked.requests().begin(), parked.requests().end(),
                                   [](const auto& r) { return !r.received.empty(); });
  const double floor_ms = fanout_floor_ms(request, sample == parked.requests().end() ? "" : sample->received);
  ctx.report.add_check("lookups", "one put -> all 10,000 answered",
                       format_ms(all_ms) + " (" + std::to_string(answered) + " answered, " + std::to_string(open) +
                           " still open); plain send+close floor " + format_ms(floor_ms),
                       "<= 100 ms, all", all_ms <= 100.0 && answered == kWaiters);
}

// A UDP socket asking one A question of the agent's DNS view, as fast as it answers.
class DnsAsker {
 public:
  DnsAsker(std::uint16_t port, const std::string& name) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    timeval tv{0, 200000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    // Header: id 0x5eed, no flags (no recursion wanted), one question; then the name, type A, class IN.
    query_ = {'\x5e', '\xed', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t start = 0;
    while (start < name.size()) {
      const size_t dot = name.find('.', start);
      const size_t end = dot == std::string::npos ? name.size() : dot;
      query_.push_back(static_cast<char>(end - start));
      query_.append(name, start, end - start);
      start = end + 1;
    }
    query_ += std::string("\0\0\1\0\1", 5);
  }
  ~DnsAsker() { ::close(fd_); }
  DnsAsker(const DnsAsker&) = delete;
  DnsAsker& operator=(const DnsAsker&) = delete;

  // Whether the answer holds the IPv4 address `a.b.c.d` (its four bytes anywhere past the question).
  bool answer_has(std::uint32_t address_host_order) {
    if (::send(fd_, query_.data(), query_.size(), 0) < 0) return false;
    char buf[1500];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= static_cast<ssize_t>(query_.size())) return false;
    const std::uint32_t net = htonl(address_host_order);
    return std::string_view(buf + query_.size(), static_cast<size_t>(n) - query_.size())
               .find(std::string_view(reinterpret_cast<const char*>(&net), 4)) != std::string_view::npos;
  }

 private:
  int fd_;
  std::string query_;
};

// put -> the DNS answer holds the new address: one key moved to a new address each time, asked in a loop.
void put_to_dns_answer(BenchContext& ctx, test::EtcdSyncClient& client) {
  const std::string service = "bench-dns";
  const std::string prefix = "/services/" + service + "/";
  const std::string key = prefix + "moving";
  const auto raw_watch = watch_prefix(ctx, prefix);
  test::WatchRecorder& raw = *raw_watch;
  const auto value = [&](int n) { return instance_value(service, "moving", n, 8080); };
  // instance_value's address for n: 10.(n>>16).(n>>8).(n&255).
  const auto address = [](int n) { return (10u << 24) | static_cast<std::uint32_t>(n & 0xffffff); };
  const int64_t first = client.put(key, value(1));
  const std::uint16_t dns_port = test::free_port();
  LookupAgent a = start_lookup_agent(ctx, service, "dns:\n  listen: \"127.0.0.1:" + std::to_string(dns_port) + "\"\n");
  if (synced_index(a.admin_port, service, first) < first) throw SectionFailed("the catalog did not sync " + service);
  DnsAsker asker(dns_port, service + ".service.sidecar");
  if (!test::wait_until([&] { return asker.answer_has(address(1)); }, 5s, 1ms)) {
    throw SectionFailed("the DNS view never answered " + service + "; log:\n" + a.agent->log_tail());
  }
  const int iterations = ctx.options.quick ? 30 : 200;
  LatencyPlot samples{"put -> DNS answer changed", {}, {}};
  for (int i = 2; i < iterations + 2; ++i) {
    const std::size_t raw_before = event_count(raw);
    const auto t0 = Clock::now();
    client.put(key, value(i));
    Clock::time_point answered{};
    while (Clock::now() - t0 < 5s) {
      if (asker.answer_has(address(i))) {
        answered = Clock::now();
        break;
      }
    }
    if (answered == Clock::time_point{}) throw SectionFailed("the DNS answer did not change within 5 s");
    record_against_raw(raw, raw_before, key, t0, answered, *a.agent, samples);
    std::this_thread::sleep_for(20ms);  // each put meets a quiet agent, as in the discovery section
  }
  report_against_raw(ctx, "lookups", "put -> DNS answer changed", samples, 1);
}

struct IdleFigures {
  long rss_kb = 0;
  double cpu_percent = 0;
};

IdleFigures measure_idle(BenchContext& ctx, const std::string& name, const std::string& extra_yaml) {
  LookupAgent a = start_lookup_agent(ctx, name, extra_yaml);
  if (synced_index(a.admin_port, name, 0) < 0) throw SectionFailed(name + " did not sync");
  std::this_thread::sleep_for(5s);  // past start-up page release
  a.agent->require_running("while idle");
  const auto memory = read_memory(a.agent->pid());
  const auto before = read_cpu_times(a.agent->pid());
  const auto t_before = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(ctx.options.idle_seconds));
  const auto after = read_cpu_times(a.agent->pid());
  const double wall_ns = to_ms(Clock::now() - t_before) * 1e6;
  if (!memory || !before || !after) throw SectionFailed("cannot read /proc of the " + name + " agent");
  return {memory->rss_kb, 100.0 * static_cast<double>(after->run_ns - before->run_ns) / wall_ns};
}

void idle_with_views(BenchContext& ctx) {
  const IdleFigures plain = measure_idle(ctx, "idle-plain", "");
  const std::string dns = "dns:\n  listen: \"127.0.0.1:" + std::to_string(test::free_port()) + "\"\n";
  const IdleFigures with_dns = measure_idle(ctx, "idle-dns", dns);
  const std::string xds = "xds:\n  listen: \"127.0.0.1:" + std::to_string(test::free_port()) + "\"\n";
  const IdleFigures with_xds = measure_idle(ctx, "idle-xds", xds);
  const auto cell = [&](const IdleFigures& f) {
    char text[128];
    std::snprintf(text, sizeof text, "RSS %s (%+.1f MB), CPU %.3f%% (plain %.3f%%)", format_mb(f.rss_kb).c_str(),
                  static_cast<double>(f.rss_kb - plain.rss_kb) / 1024.0, f.cpu_percent, plain.cpu_percent);
    return std::string(text);
  };
  // "Unchanged" idle CPU: within 0.05 percentage points of the plain agent, the noise of one idle window.
  const auto met = [&](const IdleFigures& f) {
    return f.rss_kb - plain.rss_kb <= 2 * 1024 && f.cpu_percent <= plain.cpu_percent + 0.05;
  };
  ctx.report.add_info("lookups", "idle, discover + admin (HTTP lookups)", cell(plain));
  ctx.report.add_check("lookups", "idle, + dns", cell(with_dns), "RSS +<= 2 MB, CPU +<= 0.05%", met(with_dns));
  ctx.report.add_check("lookups", "idle, + xds", cell(with_xds), "RSS +<= 2 MB, CPU +<= 0.05%", met(with_xds));
}

}  // namespace

void run_lookups(BenchContext& ctx) {
  test::EtcdSyncClient client(ctx.etcd.endpoint());
  put_to_blocking_answer(ctx, client);
  put_to_dns_answer(ctx, client);
  ten_thousand_waiters(ctx, client);
  idle_with_views(ctx);
}

}  // namespace sidecar::bench
