#include "agent/core/selection.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "agent/core/instance.hpp"
#include "agent/core/percent_decode.hpp"

namespace sidecar::core {
namespace {

using nlohmann::json;

// A value as a selector compares it: strings as their text, everything else as its compact JSON.
std::string comparable_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Index just past the JSON string starting at text[i] (a '"'), or npos when it does not end.
size_t skip_string(std::string_view text, size_t i) {
  for (++i; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// Index just past the JSON value starting at text[i], or npos when malformed.
size_t skip_value(std::string_view text, size_t i) {
  if (i >= text.size()) return std::string_view::npos;
  if (text[i] == '"') return skip_string(text, i);
  if (text[i] == '{' || text[i] == '[') {
    int depth = 0;
    while (i < text.size()) {
      const char c = text[i];
      if (c == '"') {
        i = skip_string(text, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return std::string_view::npos;
  }
  while (i < text.size() && text[i] != ',' && text[i] != '}') ++i;
  return i;
}

enum class Lookup { kFound, kAbsent, kUnsure };

// The raw text of `key`'s value in a compact JSON object (metadata_json, as nlohmann dumps it), without
// parsing the object: selecting over 100,000 instances would otherwise build 100,000 json trees per write.
// kUnsure when the text is not what dump() writes or the key would need escaping: the caller parses.
Lookup top_level_field(std::string_view object, std::string_view key, std::string_view& value) {
  if (key.find_first_of("\"\\") != std::string_view::npos ||
      std::any_of(key.begin(), key.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    return Lookup::kUnsure;
  }
  if (object.size() < 2 || object.front() != '{') return Lookup::kUnsure;
  size_t i = 1;
  if (object[i] == '}') return Lookup::kAbsent;
  while (i < object.size()) {
    if (object[i] != '"') return Lookup::kUnsure;
    const size_t key_end = skip_string(object, i);
    if (key_end == std::string_view::npos || key_end >= object.size() || object[key_end] != ':') return Lookup::kUnsure;
    const std::string_view raw_key = object.substr(i + 1, key_end - i - 2);
    const size_t value_end = skip_value(object, key_end + 1);
    if (value_end == std::string_view::npos || value_end >= object.size()) return Lookup::kUnsure;
    if (raw_key == key) {
      value = object.substr(key_end + 1, value_end - key_end - 1);
      return Lookup::kFound;
    }
    if (object[value_end] == '}') return Lookup::kAbsent;
    if (object[value_end] != ',') return Lookup::kUnsure;
    i = value_end + 1;
  }
  return Lookup::kUnsure;
}

// Whether the raw JSON value text compares equal to `wanted` (see comparable_text).
bool raw_value_equals(std::string_view raw, const std::string& wanted) {
  const bool plain_string = raw.size() >= 2 && raw.front() == '"' && raw.find('\\') == std::string_view::npos;
  if (plain_string) return raw.substr(1, raw.size() - 2) == wanted;
  const bool scalar = !raw.empty() && raw.front() != '"' && raw.front() != '{' && raw.front() != '[';
  if (scalar) return raw == wanted;  // numbers, true/false/null: dump() wrote exactly this text
  const json parsed = json::parse(raw, nullptr, false);
  return !parsed.is_discarded() && comparable_text(parsed) == wanted;
}

bool metadata_matches(const Instance& instance, const std::map<std::string, std::string>& wanted) {
  if (wanted.empty()) return true;
  bool unsure = false;
  for (const auto& [key, value] : wanted) {
    std::string_view raw;
    switch (top_level_field(instance.metadata_json, key, raw)) {
      case Lookup::kAbsent: return false;
      case Lookup::kFound:
        if (!raw_value_equals(raw, value)) return false;
        break;
      case Lookup::kUnsure: unsure = true; break;
    }
  }
  if (!unsure) return true;
  const json metadata = instance.metadata();
  for (const auto& [key, value] : wanted) {
    const auto it = metadata.find(key);
    if (it == metadata.end() || comparable_text(*it) != value) return false;
  }
  return true;
}

bool state_matches(InstanceState state, const std::vector<InstanceState>& states) {
  if (states.empty()) return shown_by_default(state);
  return std::find(states.begin(), states.end(), state) != states.end();
}

// FNV-1a, then a splitmix64 finalizer so ids that differ in one trailing character spread over the order.
uint64_t stable_hash(std::string_view seed, std::string_view id) {
  uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](std::string_view text) {
    for (const char c : text) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ull;
    }
  };
  mix(seed);
  h ^= 0xff;  // a separator: ("ab", "c") and ("a", "bc") hash apart
  h *= 1099511628211ull;
  mix(id);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

void sort_instances(std::vector<const Instance*>& list, SortOrder order, std::string_view seed) {
  switch (order) {
    case SortOrder::kId:
      // The input is normally in id order already; the check makes the common case linear.
      if (!std::is_sorted(list.begin(), list.end(), [](auto* a, auto* b) { return a->id < b->id; })) {
        std::sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->id < b->id; });
      }
      return;
    case SortOrder::kWeight:
      std::sort(list.begin(), list.end(), [](auto* a, auto* b) {
        if (a->weight != b->weight) return a->weight > b->weight;
        return a->id < b->id;
      });
      return;
    case SortOrder::kRandomStable: {
      std::vector<std::pair<uint64_t, const Instance*>> keyed;
      keyed.reserve(list.size());
      for (const Instance* inst : list) keyed.emplace_back(stable_hash(seed, inst->id), inst);
      std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
        if (a.first != b.first) return a.first < b.first;
        return a.second->id < b.second->id;
      });
      for (size_t i = 0; i < keyed.size(); ++i) list[i] = keyed[i].second;
      return;
    }
  }
}

}  // namespace

std::string_view to_string(SortOrder order) {
  switch (order) {
    case SortOrder::kId: return "id";
    case SortOrder::kWeight: return "weight";
    case SortOrder::kRandomStable: return "random-stable";
  }
  return "id";
}

std::optional<SortOrder> parse_sort_order(std::string_view text) {
  if (text == "id") return SortOrder::kId;
  if (text == "weight") return SortOrder::kWeight;
  if (text == "random-stable") return SortOrder::kRandomStable;
  return std::nullopt;
}

bool matches(const Instance& instance, const Selector& selector) {
  if (!instance.valid() || !state_matches(instance.state, selector.states)) return false;
  for (const std::string& tag : selector.tags) {
    if (!instance.has_tag(tag)) return false;
  }
  return metadata_matches(instance, selector.metadata);
}

std::vector<const Instance*> select_instances(const std::vector<const Instance*>& instances, const Selector& selector,
                                              std::string_view local_zone, SortOrder order, std::string_view seed) {
  std::vector<const Instance*> out;
  out.reserve(instances.size());
  for (const Instance* inst : instances) {
    if (inst != nullptr && matches(*inst, selector)) out.push_back(inst);
  }
  if (selector.zone) {
    const bool local = *selector.zone == kLocalZone;
    const std::string_view zone = local ? local_zone : std::string_view(*selector.zone);
    const auto count = std::count_if(out.begin(), out.end(), [&](const Instance* i) {
      return !zone.empty() && i->zone() == zone;
    });
    // A named zone is a hard filter; `local` is a preference that yields to all zones when the local
    // ones are too few to carry the load.
    if (!local || count >= selector.min_local) {
      std::erase_if(out, [&](const Instance* i) { return zone.empty() || i->zone() != zone; });
    }
  }
  sort_instances(out, order, seed);
  return out;
}

SelectorQuery parse_selector_query(std::string_view query) {
  SelectorQuery result;
  const auto fail = [&result](std::string message) {
    result.error = std::move(message);
    return std::move(result);
  };
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);
  bool zone_seen = false;
  bool min_local_seen = false;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    const auto raw_key = percent_decode(part.substr(0, eq), BadEscape::kFail);
    const auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1),
                                      BadEscape::kFail);
    if (!raw_key || !value) return fail("bad percent-encoding in '" + std::string(part) + "'");
    const std::string& key = *raw_key;
    if (eq == std::string_view::npos || value->empty()) return fail("parameter '" + key + "' has no value");
    if (key == "tag") {
      if (!valid_label(*value)) return fail("tag '" + *value + "' is not [A-Za-z0-9._-]{1,64}");
      result.selector.tags.push_back(*value);
    } else if (key == "zone") {
      if (zone_seen) return fail("zone given twice");
      if (*value != kLocalZone && !valid_label(*value)) {
        return fail("zone '" + *value + "' is not 'local' or [A-Za-z0-9._-]{1,64}");
      }
      zone_seen = true;
      result.selector.zone = *value;
    } else if (key == "min_local") {
      if (min_local_seen) return fail("min_local given twice");
      int n = 0;
      const auto [ptr, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
      if (ec != std::errc() || ptr != value->data() + value->size() || n < 1) {
        return fail("min_local '" + *value + "' is not an integer >= 1");
      }
      min_local_seen = true;
      result.selector.min_local = n;
    } else if (key == "state") {
      const auto state = parse_instance_state(*value);
      if (!state) return fail("unknown state '" + *value + "' (expected passing, warning, maintenance or draining)");
      auto& states = result.selector.states;
      if (std::find(states.begin(), states.end(), *state) == states.end()) states.push_back(*state);
    } else if (key == "sort") {
      const auto order = parse_sort_order(*value);
      if (!order) return fail("unknown sort '" + *value + "' (expected id, weight or random-stable)");
      if (result.sort) return fail("sort given twice");
      result.sort = *order;
    } else if (key.size() > 5 && key.compare(0, 5, "meta.") == 0) {
      const std::string name = key.substr(5);
      if (!result.selector.metadata.emplace(name, *value).second) return fail("meta." + name + " given twice");
    } else {
      return fail("unknown parameter '" + key + "' (expected tag, zone, min_local, state, sort or meta.<key>)");
    }
  }
  if (min_local_seen && !(result.selector.zone && *result.selector.zone == kLocalZone)) {
    return fail("min_local only applies with zone=local");
  }
  return result;
}

}  // namespace sidecar::core
