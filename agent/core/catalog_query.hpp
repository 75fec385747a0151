// Owns: what an HTTP catalog lookup asks for (/v1/catalog/services, /v1/catalog/service/<name>?tag=..&index=N
//       &wait=30s) and the rules of a blocking query: when it is answered and how long it may wait.
// Thread: pure; no state, never throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/selection.hpp"

namespace sidecar::core {

inline constexpr std::string_view kCatalogServicesPath = "/v1/catalog/services";
inline constexpr std::string_view kCatalogServicePrefix = "/v1/catalog/service/";

// A blocking query waits at most this long (Consul's bound); a longer wait= is cut to it.
inline constexpr std::chrono::milliseconds kMaxBlockingWait = std::chrono::minutes(10);
// index= without wait=: Consul's default.
inline constexpr std::chrono::milliseconds kDefaultBlockingWait = std::chrono::minutes(5);

struct CatalogQuery {
  enum class Kind { kServices, kService };
  Kind kind = Kind::kServices;
  std::string service;  // kService: the name, decoded
  Selector selector;
  SortOrder sort = SortOrder::kId;
  std::string selector_text;  // the selector parameters as written: equal texts select the same instances
  // index=N: a blocking query, answered once the service's index differs from N (see blocking_ready).
  std::optional<int64_t> index;
  std::chrono::milliseconds wait{0};  // with index: how long at most (before jitter)
  int status = 200;                   // 400 or 404 when the target is unusable; `error` says why
  std::string error;
  bool ok() const { return status == 200; }
};

// `target` is the request target ("/v1/catalog/service/order?tag=v2&index=41&wait=30s"). The selector
// parameters are parse_selector_query's; index= and wait= are the blocking query's. Unknown parameters,
// a bad name, index or wait are 400 with the parameter named; another path under /v1/catalog/ is 404.
CatalogQuery parse_catalog_query(std::string_view target);

// A blocking query is answered once the index moved: past N, or below it (etcd came back wiped and the
// revisions restarted; the client starts over from the index it is given).
inline bool blocking_ready(int64_t current_index, int64_t asked) { return current_index != asked; }

// The wait with jitter added (up to wait/16, as Consul does), so that many clients woken by one change and
// timing out together spread their next requests. `random01` in [0, 1).
std::chrono::milliseconds blocking_wait_with_jitter(std::chrono::milliseconds wait, double random01);

}  // namespace sidecar::core
