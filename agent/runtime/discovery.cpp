#include "agent/runtime/discovery.hpp"

#include <spdlog/spdlog.h>

#include "agent/core/selection.hpp"
#include "agent/output/render.hpp"

namespace sidecar::runtime {

Discovery::Discovery(asio::io_context& io, Catalog& catalog, asio::thread_pool& writer,
                     const core::DiscoverSpec& spec, std::string template_text, std::set<std::string> self_ids,
                     std::string local_zone, std::string seed)
    : catalog_(catalog),
      spec_(spec),
      template_text_(std::move(template_text)),
      self_ids_(std::move(self_ids)),
      local_zone_(std::move(local_zone)),
      seed_(std::move(seed)),
      output_(io, writer,
              FileOutputOptions{.name = "discover " + spec.service,
                                .path = spec.output,
                                .mode = spec.mode,
                                .wait_min = spec.wait_min,
                                .wait_max = spec.wait_max,
                                .wait_holdoff = spec.wait_holdoff,
                                .check_command = spec.check_command,
                                .on_change = spec.on_change,
                                .command_timeout = spec.command_timeout},
              [this](std::string& out) { return render(out); }) {}

void Discovery::start() {
  output_.start();
  subscription_ = catalog_.subscribe(spec_.service, *this);
  // Another consumer of the service may have synced it already: write from what the catalog holds.
  if (subscription_.service().synced()) output_.changed();
}

void Discovery::stop() { output_.stop(); }

const PrefixWatcherStats& Discovery::watch_stats() const {
  static const PrefixWatcherStats kNone{};
  return subscription_ ? subscription_.service().watch_stats() : kNone;
}

DiscoveryStats Discovery::stats() const {
  DiscoveryStats s;
  s.below_min_total = below_min_total_;
  if (!subscription_) return s;
  const auto& service = subscription_.service();
  s.instances = service.set().size();
  s.invalid = service.set().invalid_count();
  s.invalid_values_total = service.stats().invalid_values_total;
  return s;
}

void Discovery::on_catalog_change(const CatalogService&, const CatalogChange& change) {
  // A snapshot is written even when nothing differs (the first one creates the file); the bytes-unchanged
  // check in FileOutput keeps a resync that found the same set from rewriting it. Events are counted, so a
  // burst is paced as one.
  output_.changed(change.snapshot ? 1 : change.changed);
}

bool Discovery::render(std::string& out) {
  if (!subscription_ || !subscription_.service().synced()) return false;
  const auto& service = subscription_.service();
  std::vector<const core::Instance*> instances = service.set().sorted();
  std::erase_if(instances, [this](const core::Instance* i) { return excluded(i->id); });
  // Selected and sorted per write (no per-instance cache); min_instances applies to what the selector kept.
  instances = core::select_instances(instances, spec_.select, local_zone_, spec_.sort, seed_);
  const size_t count = instances.size();
  if (static_cast<int>(count) < spec_.min_instances) {
    ++below_min_total_;
    if (!warned_below_min_) {
      spdlog::warn("discover {}: {} instance(s) is below min_instances {}; keeping the last written {}",
                   spec_.service, count, spec_.min_instances, spec_.output);
      warned_below_min_ = true;
    }
    return false;
  }
  if (warned_below_min_) {
    spdlog::info("discover {}: back to {} instance(s), at or above min_instances", spec_.service, count);
    warned_below_min_ = false;
  }
  if (auto error = output::render_into(out, spec_, spec_.service, service.index(), instances, template_text_)) {
    spdlog::error("discover {}: {}; keeping the last written {}", spec_.service, *error, spec_.output);
    return false;
  }
  return true;
}

}  // namespace sidecar::runtime
