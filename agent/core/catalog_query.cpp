#include "agent/core/catalog_query.hpp"

#include <charconv>
#include <vector>

#include "agent/core/manifest.hpp"
#include "agent/core/manifest/text.hpp"
#include "agent/core/percent_decode.hpp"

namespace sidecar::core {

namespace {

CatalogQuery fail(int status, std::string error) {
  CatalogQuery q;
  q.status = status;
  q.error = std::move(error);
  return q;
}

// Splits off index= and wait= (which parse_selector_query would refuse as unknown); the rest stays a
// selector query.
struct SplitQuery {
  std::optional<std::string> index;
  std::optional<std::string> wait;
  std::string selector;
};

SplitQuery split_query(std::string_view query) {
  SplitQuery out;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (name == "index") {
      out.index = std::string(value);
    } else if (name == "wait") {
      out.wait = std::string(value);
    } else {
      if (!out.selector.empty()) out.selector += '&';
      out.selector += pair;
    }
  }
  return out;
}

}  // namespace

CatalogQuery parse_catalog_query(std::string_view target) {
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  CatalogQuery out;
  if (path == kCatalogServicesPath) {
    out.kind = CatalogQuery::Kind::kServices;
    if (!query.empty()) return fail(400, "/v1/catalog/services takes no parameters");
    return out;
  }
  if (!path.starts_with(kCatalogServicePrefix)) return fail(404, "no such catalog path: " + std::string(path));
  out.kind = CatalogQuery::Kind::kService;
  const auto name = percent_decode(path.substr(kCatalogServicePrefix.size()), BadEscape::kFail);
  if (!name) return fail(400, "service name: bad percent-encoding");
  if (name->empty()) return fail(404, "name a service: /v1/catalog/service/<name>");
  if (const auto problem = manifest::identifier_problem(*name)) return fail(400, "service name: " + *problem);
  out.service = *name;

  SplitQuery split = split_query(query);
  const SelectorQuery selector = parse_selector_query(split.selector);
  if (!selector.ok()) return fail(400, selector.error);
  out.selector = selector.selector;
  out.selector_text = std::move(split.selector);
  if (selector.sort) out.sort = *selector.sort;
  if (split.index) {
    int64_t index = 0;
    const std::string& text = *split.index;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), index);
    if (ec != std::errc{} || end != text.data() + text.size() || index < 0) {
      return fail(400, "index: '" + text + "' is not a non-negative integer (the X-Sidecar-Index of an answer)");
    }
    out.index = index;
    out.wait = kDefaultBlockingWait;
  }
  if (split.wait) {
    if (!split.index) return fail(400, "wait: only with index= (a blocking query waits for a change past it)");
    const auto wait = parse_duration(*split.wait);
    if (!wait) return fail(400, "wait: '" + *split.wait + "' is not a duration (e.g. 30s, 5m)");
    out.wait = std::min<std::chrono::milliseconds>(*wait, kMaxBlockingWait);
  }
  return out;
}

std::chrono::milliseconds blocking_wait_with_jitter(std::chrono::milliseconds wait, double random01) {
  if (random01 < 0) random01 = 0;
  if (random01 >= 1) random01 = 0.999999;
  const auto jitter = std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(wait.count() / 16) * random01));
  return wait + jitter;
}

}  // namespace sidecar::core
