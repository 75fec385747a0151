#include "agent/core/dns_query.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "agent/core/instance.hpp"
#include "agent/core/selection.hpp"

namespace sidecar::core::dns {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// `<service>.service` with an optional tag before it and an optional _port._tcp before that.
bool parse_service_part(const std::vector<std::string_view>& rest, Name& out) {
  size_t i = 0;
  if (rest.size() >= 3 && !rest[0].empty() && rest[0][0] == '_' &&
      (iequals(rest[1], "_tcp") || iequals(rest[1], "_udp"))) {
    out.port_name = lowered(rest[0].substr(1));
    if (!valid_port_name(out.port_name)) return false;
    i = 2;
  }
  const size_t left = rest.size() - i;
  if (left == 1) {
    out.service = std::string(rest[i]);
  } else if (left == 2) {
    out.tag = std::string(rest[i]);
    out.service = std::string(rest[i + 1]);
  } else {
    return false;
  }
  return !out.service.empty();
}

struct Address {
  enum class Family { kV4, kV6, kName } family = Family::kName;
  std::array<uint8_t, 16> ip{};
};

Address classify(const std::string& address) {
  Address a;
  if (::inet_pton(AF_INET, address.c_str(), a.ip.data()) == 1) {
    a.family = Address::Family::kV4;
  } else if (::inet_pton(AF_INET6, address.c_str(), a.ip.data()) == 1) {
    a.family = Address::Family::kV6;
  }
  return a;
}

// A host name DNS can point at: dot-separated plain labels (a scoped IPv6 literal such as fe80::1%eth0 is
// neither an address record nor a name).
std::optional<std::string> host_target(const std::string& address) {
  if (address.empty() || address.size() > 253 || address.find(':') != std::string::npos) return std::nullopt;
  std::string_view host(address);
  if (host.back() == '.') host.remove_suffix(1);
  size_t start = 0;
  while (true) {
    const size_t dot = host.find('.', start);
    if (!plain_label(host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start))) {
      return std::nullopt;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return std::string(host) + ".";
}

Record address_record(const Address& a, uint16_t weight) {
  Record r;
  r.kind = a.family == Address::Family::kV4 ? Record::Kind::kA : Record::Kind::kAaaa;
  r.ip = a.ip;
  r.weight = weight;
  return r;
}

void finish_rotation(AnswerSet& set) {
  uint64_t total = 0;
  set.cumulative.clear();
  set.cumulative.reserve(set.answers.size());
  for (const Record& r : set.answers) {
    total += std::max<uint16_t>(r.weight, 1);
    set.cumulative.push_back(total);
  }
  if (total <= 1) {
    set.stride = 1;
    return;
  }
  // About total/phi, so consecutive queries start far apart; coprime, so each value is visited once a cycle.
  uint64_t stride = (total * 618) / 1000;
  if (stride == 0) stride = 1;
  while (std::gcd(stride, total) != 1) ++stride;
  set.stride = stride;
}

void no_data(AnswerSet& set) {
  set.answers.clear();
  set.extra.clear();
  set.soa_authority = true;
}

void nx_domain(AnswerSet& set) {
  no_data(set);
  set.rcode = Rcode::kNxDomain;
}

void plan_addresses(const std::vector<const Instance*>& chosen, uint16_t qtype, AnswerSet& set) {
  const auto want = qtype == kTypeA ? Address::Family::kV4 : Address::Family::kV6;
  bool any_ip = false;
  // One record per address: instances sharing an address (several ports) add their weights to it.
  std::unordered_map<std::string_view, size_t> seen;
  std::vector<Record> names;
  for (const Instance* i : chosen) {
    const Address a = classify(i->address);
    if (a.family == Address::Family::kName) {
      if (auto target = host_target(i->address)) {
        Record r;
        r.kind = Record::Kind::kCname;
        r.target = std::move(*target);
        r.weight = i->weight;
        names.push_back(std::move(r));
      }
      continue;
    }
    any_ip = true;
    if (a.family != want) continue;
    const auto [it, fresh] = seen.emplace(i->address, set.answers.size());
    if (fresh) {
      set.answers.push_back(address_record(a, i->weight));
    } else {
      Record& r = set.answers[it->second];
      r.weight = static_cast<uint16_t>(std::min<uint32_t>(uint32_t{r.weight} + i->weight, 65535));
    }
  }
  // Only when the name has no address of its own: a CNAME excludes every other record of the name, so a
  // service mixing IPs and host names answers its IPs and gives the host names as SRV targets.
  if (!any_ip && !names.empty()) {
    set.answers = std::move(names);
    set.single = true;
  }
}

void plan_srv(const std::vector<const Instance*>& chosen, const Name& name, const PlanContext& ctx, AnswerSet& set) {
  for (const Instance* i : chosen) {
    const int port = name.port_name.empty() ? i->port : i->port_named(name.port_name);
    if (port <= 0 || port > 65535) continue;
    Record r;
    r.kind = Record::Kind::kSrv;
    r.port = static_cast<uint16_t>(port);
    r.weight = i->weight;
    const Address a = classify(i->address);
    if (a.family == Address::Family::kName) {
      auto target = host_target(i->address);
      if (!target) continue;
      r.target = std::move(*target);
    } else {
      // An id that is not one plain label has no name under instance.<domain>: such an instance is only
      // reachable through A/AAAA.
      if (!plain_label(i->id) || !plain_label(name.service)) continue;
      r.target = i->id + "." + name.service + ".instance." + std::string(ctx.domain);
      Record extra = address_record(a, i->weight);
      extra.owner = r.target;
      r.extra = static_cast<int32_t>(set.extra.size());
      set.extra.push_back(std::move(extra));
    }
    set.answers.push_back(std::move(r));
  }
}

}  // namespace

std::string_view to_string(Rcode rcode) {
  switch (rcode) {
    case Rcode::kNoError: return "NOERROR";
    case Rcode::kFormErr: return "FORMERR";
    case Rcode::kServFail: return "SERVFAIL";
    case Rcode::kNxDomain: return "NXDOMAIN";
    case Rcode::kNotImp: return "NOTIMP";
    case Rcode::kRefused: return "REFUSED";
  }
  return "NOERROR";
}

std::string_view type_label(uint16_t qtype) {
  switch (qtype) {
    case kTypeA: return "A";
    case kTypeAaaa: return "AAAA";
    case kTypeSrv: return "SRV";
    case kTypeSoa: return "SOA";
    case kTypeAny: return "ANY";
    case kTypeCname: return "CNAME";
    default: return "other";
  }
}

bool plain_label(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  return std::all_of(label.begin(), label.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::vector<std::string> domain_labels(std::string_view domain) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < domain.size()) {
    size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    if (dot > start) out.push_back(lowered(domain.substr(start, dot - start)));
    start = dot + 1;
  }
  return out;
}

std::string domain_text(const std::vector<std::string>& labels) {
  if (labels.empty()) return ".";
  std::string out;
  for (const auto& l : labels) out += l + ".";
  return out;
}

Name parse_name(const std::vector<std::string_view>& labels, const std::vector<std::string>& domain) {
  Name out;
  if (labels.size() < domain.size()) {
    out.kind = Name::Kind::kOutside;
    return out;
  }
  const size_t n = labels.size() - domain.size();
  for (size_t i = 0; i < domain.size(); ++i) {
    if (!iequals(labels[n + i], domain[i])) {
      out.kind = Name::Kind::kOutside;
      return out;
    }
  }
  if (n == 0) {
    out.kind = Name::Kind::kApex;
    return out;
  }
  std::vector<std::string_view> rest(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(n));
  if (rest.size() == 3 && iequals(rest[2], "instance")) {
    out.kind = Name::Kind::kInstance;
    out.id = std::string(rest[0]);
    out.service = std::string(rest[1]);
    return out;
  }
  if (rest.size() >= 4 && iequals(rest.back(), "zone") && iequals(rest[rest.size() - 3], "service")) {
    out.zone = std::string(rest[rest.size() - 2]);
    rest.resize(rest.size() - 3);
    if (parse_service_part(rest, out)) out.kind = Name::Kind::kService;
    return out;
  }
  if (rest.size() >= 2 && iequals(rest.back(), "service")) {
    rest.pop_back();
    if (parse_service_part(rest, out)) out.kind = Name::Kind::kService;
    return out;
  }
  return out;  // kUnknown
}

AnswerSet plan_answers(const Name& name, uint16_t qtype, const std::vector<const Instance*>& sorted,
                       const PlanContext& ctx) {
  AnswerSet set;
  if (name.kind == Name::Kind::kApex) {
    if (qtype == kTypeSoa) {
      set.soa_answer = true;
    } else {
      no_data(set);
    }
    return set;
  }
  if (name.kind != Name::Kind::kService && name.kind != Name::Kind::kInstance) {
    nx_domain(set);
    return set;
  }
  std::vector<const Instance*> chosen;
  if (name.kind == Name::Kind::kInstance) {
    for (const Instance* i : sorted) {
      if (i->id == name.id && shown_by_default(i->state)) chosen.push_back(i);
    }
  } else {
    Selector selector;
    if (!name.tag.empty()) selector.tags.push_back(name.tag);
    if (!name.zone.empty()) selector.zone = name.zone;
    chosen = select_instances(sorted, selector, ctx.local_zone, SortOrder::kId, "");
    if (!name.port_name.empty()) {
      std::erase_if(chosen, [&](const Instance* i) { return i->port_named(name.port_name) == 0; });
    }
  }
  if (chosen.empty()) {
    nx_domain(set);
    return set;
  }
  if (qtype == kTypeA || qtype == kTypeAaaa) {
    plan_addresses(chosen, qtype, set);
  } else if (qtype == kTypeSrv) {
    plan_srv(chosen, name, ctx, set);
  }
  if (set.answers.empty()) {
    no_data(set);
    return set;
  }
  if (name.kind == Name::Kind::kService) finish_rotation(set);
  return set;
}

size_t rotation_start(const AnswerSet& set, uint64_t query_number) {
  if (set.cumulative.size() <= 1) return 0;
  const uint64_t total = set.cumulative.back();
  const uint64_t point = static_cast<uint64_t>((static_cast<unsigned __int128>(query_number) * set.stride) % total);
  // The record whose weight interval [cumulative[i-1], cumulative[i]) holds the point.
  const auto it = std::upper_bound(set.cumulative.begin(), set.cumulative.end(), point);
  return static_cast<size_t>(it - set.cumulative.begin());
}

}  // namespace sidecar::core::dns
