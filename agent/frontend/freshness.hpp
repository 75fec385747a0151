// Owns: how a lookup view (DNS, HTTP, xDS) tells whether a catalog service's set is current or the last good
//       set kept through an etcd outage, and for how long it has been that.
// Thread: io_context thread (reads a CatalogService).
#pragma once

#include <chrono>
#include <cstdint>

#include "agent/runtime/catalog_service.hpp"

namespace sidecar::frontend {

struct Freshness {
  // The watch has lost etcd: the set is the last one read, kept, not a failure.
  bool stale = false;
  // Seconds since the watch last heard from etcd; 0 while current.
  int64_t seconds_since_contact = 0;
};

Freshness freshness(const runtime::CatalogService& service);

// Whether a view may still answer from a stale set: max_stale 0 means for as long as etcd stays away.
bool within_max_stale(const Freshness& f, std::chrono::seconds max_stale);

}  // namespace sidecar::frontend
