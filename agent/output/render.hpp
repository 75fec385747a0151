// Owns: turning a discovered set (or a mirrored config prefix) into the bytes of an output file.
// Thread: pure; no I/O (the caller reads the template file and writes the result), never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/instance.hpp"
#include "agent/core/manifest.hpp"

namespace sidecar::output {

struct RenderResult {
  std::string bytes;                 // empty when error is set
  std::optional<std::string> error;  // e.g. "template /etc/x.mustache: Unclosed section \"instances\" at 12"
  bool ok() const { return !error.has_value(); }
};

// Renders `instances` (valid ones) in spec.format. With spec.sort == kId (the default) any order is
// sorted by id here; otherwise the caller's order is kept (it comes from core::select_instances).
// Same set, same bytes:
//   kJson:     {"service":…,"revision":N,"instances":[{"id":…,"address":…,"port":N,"metadata":{…}
//              [,"ports":{name:N,…}][,"tags":[…]][,"weight":N][,"zone":…][,"region":…][,"state":…]},…]}\n
//              compact, keys in this order, metadata and ports sorted by name, tags sorted. The bracketed
//              fields appear only when not at their default (no ports/tags, weight 1, no zone/region,
//              state passing), as in the stored value: files of plain instances keep their old bytes.
//   kLines:    "address:port\n" per instance, IPv6 bracketed.
//   kTemplate: Mustache (kainjow) over the context below; spec.template_path only names it in errors.
//
// Template context:
//   service        "order-service"
//   service_env    "ORDER_SERVICE" (upper case, non-alphanumerics -> '_'), for env files
//   revision, count, empty (bool), total_weight (sum of the instances' weights)
//   instances:     [{id, slug, address, port, endpoint, metadata:{…}, index, first, last,
//                    weight, state, zone, region, tags:[…], ports:{name: port}, port_list:[{name, port}]}]
//     endpoint = "address:port" with IPv6 bracketed; slug = id with [^A-Za-z0-9._-] -> '_' (HAProxy
//     server names); index is 0-based; first/last are booleans for separators ({{^last}},{{/last}}).
//     weight is always set (default 1), state always ("passing"…); zone/region are false when absent;
//     tags iterate as {{#tags}}{{.}}{{/tags}}; a named port is {{ports.grpc}}.
//     Metadata values: strings and numbers as text, booleans as booleans, lists as lists, null as false.
//   zones:         [{zone, count, total_weight, instances:[…]}] sorted by zone name; instances without a
//                  zone form the group whose zone is "" (first). Members keep the instances' order.
//   tags:          [{tag, count, instances:[…]}] sorted by tag; an instance appears under each of its tags.
//   Inside a group, index/first/last count within the group.
// No HTML escaping: {{x}} and {{{x}}} are the same. These are config files, and "&amp;" in an nginx
// file would be a bug. Addresses are restricted to hostname/IP characters at parse time; metadata is
// printed as given, so a template should not paste metadata where it could alter config syntax.
// kainjow quirk: a standalone section that is NOT rendered still emits the newline after its closing tag
// (a blank line). The shipped templates write "{{/instances}}{{^instances}}" on one line to avoid it.
RenderResult render(const core::DiscoverSpec& spec, std::string_view service, int64_t revision,
                    const std::vector<const core::Instance*>& instances, const std::string& template_text);

// The same, into `out` (cleared first, capacity kept), so a caller can reuse one buffer across writes.
// Returns the error, if any; `out` is then unspecified.
std::optional<std::string> render_into(std::string& out, const core::DiscoverSpec& spec, std::string_view service,
                                       int64_t revision, const std::vector<const core::Instance*>& instances,
                                       const std::string& template_text);

// Load-time check: nullopt if `text` parses as a Mustache template, else the parser's message.
std::optional<std::string> validate_template(const std::string& text);

// Config mirror, prefix + format json: {"<key relative to prefix>":"<value>",…}\n, compact, keys sorted.
// Keys outside the prefix or equal to it are skipped. Invalid UTF-8 is replaced by U+FFFD, not thrown.
std::string render_config_prefix_json(std::vector<std::pair<std::string, std::string>> kvs, std::string_view prefix);

}  // namespace sidecar::output
