#include "agent/core/catalog_policy.hpp"

#include <cassert>

namespace sidecar::core {

CatalogPolicy::Admit CatalogPolicy::subscribe(std::string_view service, TimePoint) {
  auto it = entries_.find(service);
  if (it != entries_.end()) {
    ++it->second.holders;
    return Admit::kExisting;
  }
  entries_.emplace(std::string(service), Entry{.holders = 1, .last_lookup = std::nullopt});
  return Admit::kStart;
}

bool CatalogPolicy::unsubscribe(std::string_view service, TimePoint now) {
  auto it = entries_.find(service);
  assert(it != entries_.end() && it->second.holders > 0);
  if (it == entries_.end() || it->second.holders == 0) return false;
  if (--it->second.holders > 0) return false;
  if (!idle(it->second, now)) return false;  // a lookup read it lately: kept for the next one
  entries_.erase(it);
  return true;
}

CatalogPolicy::Admit CatalogPolicy::lookup(std::string_view service, TimePoint now) {
  auto it = entries_.find(service);
  if (it != entries_.end()) {
    it->second.last_lookup = now;
    return Admit::kExisting;
  }
  if (entries_.size() >= limits_.max_services) {
    ++refused_total_;
    return Admit::kRefused;
  }
  entries_.emplace(std::string(service), Entry{.holders = 0, .last_lookup = now});
  return Admit::kStart;
}

bool CatalogPolicy::idle(const Entry& e, TimePoint now) const {
  return e.holders == 0 && (!e.last_lookup || now - *e.last_lookup >= limits_.idle_timeout);
}

std::vector<std::string> CatalogPolicy::expire(TimePoint now) {
  std::vector<std::string> out;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (idle(it->second, now)) {
      out.push_back(it->first);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::optional<CatalogPolicy::TimePoint> CatalogPolicy::next_expiry() const {
  std::optional<TimePoint> next;
  for (const auto& [name, e] : entries_) {
    if (e.holders > 0 || !e.last_lookup) continue;
    const auto at = *e.last_lookup + limits_.idle_timeout;
    if (!next || at < *next) next = at;
  }
  return next;
}

size_t CatalogPolicy::on_demand() const {
  size_t n = 0;
  for (const auto& [name, e] : entries_) n += e.holders == 0 ? 1 : 0;
  return n;
}

size_t CatalogPolicy::holders(std::string_view service) const {
  auto it = entries_.find(service);
  return it == entries_.end() ? 0 : it->second.holders;
}

}  // namespace sidecar::core
