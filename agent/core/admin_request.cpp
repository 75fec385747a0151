#include "agent/core/admin_request.hpp"

#include "agent/core/percent_decode.hpp"

namespace sidecar::core {

namespace {

size_t id_users(const std::vector<ServiceRef>& services, std::string_view id) {
  size_t n = 0;
  for (const auto& s : services) n += s.id == id ? 1 : 0;
  return n;
}

}  // namespace

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (*percent_decode(pair.substr(0, eq), BadEscape::kKeep) == name) {
      return eq == std::string_view::npos ? std::string() : *percent_decode(pair.substr(eq + 1), BadEscape::kKeep);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "Bearer ";
  if (token.empty()) return false;
  // The scheme is not secret; the token is compared over its whole length whatever differs first.
  if (authorization.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char a = authorization[i];
    const char lower = (a >= 'A' && a <= 'Z') ? static_cast<char>(a - 'A' + 'a') : a;
    const char want = (kScheme[i] >= 'A' && kScheme[i] <= 'Z') ? static_cast<char>(kScheme[i] - 'A' + 'a') : kScheme[i];
    if (lower != want) return false;
  }
  const std::string_view given = authorization.substr(kScheme.size());
  unsigned diff = given.size() == token.size() ? 0u : 1u;
  for (size_t i = 0; i < token.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned>(g ^ static_cast<unsigned char>(token[i]));
  }
  return diff == 0;
}

std::string display_ref(const std::vector<ServiceRef>& services, size_t index) {
  const ServiceRef& s = services[index];
  return id_users(services, s.id) > 1 ? s.name + "/" + s.id : s.id;
}

ServiceLookup find_service(const std::vector<ServiceRef>& services, std::string_view ref) {
  ServiceLookup out;
  std::vector<size_t> matches;
  const size_t slash = ref.find('/');
  for (size_t i = 0; i < services.size(); ++i) {
    const ServiceRef& s = services[i];
    const bool match = slash == std::string_view::npos
                           ? s.id == ref
                           : (s.name == ref.substr(0, slash) && s.id == ref.substr(slash + 1));
    if (match) matches.push_back(i);
  }
  if (matches.size() == 1) {
    out.index = matches.front();
    return out;
  }
  if (matches.empty()) {
    nlohmann::json known = nlohmann::json::array();
    for (size_t i = 0; i < services.size(); ++i) known.push_back(display_ref(services, i));
    out.status = 404;
    out.body = {{"error", "no service with id '" + std::string(ref) + "' in this agent"}, {"known_ids", known}};
    return out;
  }
  nlohmann::json candidates = nlohmann::json::array();
  for (size_t i : matches) candidates.push_back(services[i].name + "/" + services[i].id);
  out.status = 409;
  out.body = {{"error", "id '" + std::string(ref) + "' is used by several services: name one as <name>/<id>"},
              {"candidates", candidates}};
  return out;
}

}  // namespace sidecar::core
