// Accept: text/event-stream on /v1/catalog/service/<name>: one server-sent event per change, each the whole
// selected set (the discover file's JSON) with its index as the event id.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>

#include "agent/frontend/freshness.hpp"
#include "agent/frontend/http/catalog_http.hpp"

namespace sidecar::frontend {

namespace http = boost::beast::http;
using asio::use_awaitable;

namespace {

// "id: 41\ndata: {...}\n\n". The rendered JSON is one line (compact, no newline inside but the final one).
std::string event_text(int64_t index, std::string_view json, bool stale) {
  std::string out;
  out.reserve(json.size() + 64);
  out += "id: ";
  out += std::to_string(index);
  out += '\n';
  if (stale) out += "event: stale\n";
  out += "data: ";
  while (!json.empty() && json.back() == '\n') json.remove_suffix(1);
  out += json;
  out += "\n\n";
  return out;
}

// The stream's own hold on the service: between two waits (while it writes) no waiter may be holding it.
class Holder final : public runtime::CatalogListener {
 public:
  void on_catalog_change(const runtime::CatalogService&, const runtime::CatalogChange&) override {}
};

std::optional<int64_t> parse_index(std::string_view text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace

asio::awaitable<bool> CatalogHttp::stream_service(runtime::AdminConnection& connection,
                                                  runtime::AdminHttpRequest request, core::CatalogQuery query) {
  Unanswerable why = co_await look_up(query.service);
  if (why.status == 200 && !connection.park()) {
    // The same bound as blocking queries.
    why.status = 429;
    why.error = "http.max_waiters requests are waiting already; retry later";
  }
  if (why.status != 200) {
    request.keep_alive = false;
    co_await respond_error(connection, request, why);
    co_return false;
  }
  Holder holder;
  runtime::Catalog::Subscription held = catalog_.subscribe(query.service, holder);
  ++stats_.streams_total;
  ++streams_open_;
  auto& stream = connection.stream();
  boost::system::error_code ec;
  {
    http::response<http::empty_body> head{http::status::ok, request.version};
    head.set(http::field::server, "etcd-sidecar");
    head.set(http::field::content_type, "text/event-stream");
    head.set(http::field::cache_control, "no-store");
    head.keep_alive(false);  // the body ends when the stream does
    http::response_serializer<http::empty_body> serializer(head);
    stream.expires_never();
    co_await http::async_write_header(stream, serializer, asio::redirect_error(use_awaitable, ec));
  }
  // Where the client is: ?index=N or the browser's Last-Event-ID resumes; otherwise it gets the set at once.
  std::optional<int64_t> sent = query.index;
  if (!sent && !request.last_event_id.empty()) sent = parse_index(request.last_event_id);
  bool was_stale = false;
  while (!ec && !stopping_ && !connection.stopping()) {
    const runtime::CatalogService* service = &held.service();
    const Freshness f = freshness(*service);
    std::string text;
    if (!sent || core::blocking_ready(service->index(), *sent) || f.stale != was_stale) {
      text = event_text(service->index(), render(*service, query), f.stale);
      sent = service->index();
      was_stale = f.stale;
      ++stats_.events_total;
      if (f.stale) ++stats_.stale_answers_total;
    }
    if (!text.empty()) {
      stream.expires_after(std::chrono::seconds(30));  // a client that stops reading is dropped
      co_await asio::async_write(stream.socket(), asio::buffer(text), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    const ServiceWaiters::Woken woken = co_await waiters_.wait(query.service, *sent, options_.heartbeat);
    if (woken == ServiceWaiters::Woken::kStopping) break;
    if (woken == ServiceWaiters::Woken::kTimedOut) {
      const Freshness now = freshness(held.service());
      if (now.stale != was_stale) continue;  // say it with an event, not a comment
      static constexpr std::string_view kHeartbeat = ": keepalive\n\n";
      co_await asio::async_write(stream.socket(), asio::buffer(kHeartbeat), asio::redirect_error(use_awaitable, ec));
    }
  }
  --streams_open_;
  co_return false;
}

}  // namespace sidecar::frontend
