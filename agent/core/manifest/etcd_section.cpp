#include <algorithm>

#include "agent/core/manifest/address.hpp"
#include "agent/core/manifest/sections.hpp"

namespace sidecar::core::manifest {

namespace {

constexpr std::string_view kEtcdKeys[] = {"endpoints", "prefix",        "dial_timeout", "request_timeout", "username",
                                          "password_file", "password_env", "password",  "tls"};
constexpr std::string_view kTlsKeys[] = {"ca", "cert", "key"};

void read_auth(Reader& r, const MapView& map, const std::string& path, EtcdSpec& etcd) {
  const Entry* user = map.get("username");
  if (user) {
    if (auto v = r.text(*user, join_path(path, "username"), Need::kNonEmpty)) etcd.username = std::move(*v);
  }
  const Entry* sources[] = {map.get("password_file"), map.get("password_env"), map.get("password")};
  const char* names[] = {"password_file", "password_env", "password"};
  const Entry* chosen = nullptr;
  const char* chosen_name = nullptr;
  for (int i = 0; i < 3; ++i) {
    const Entry* e = sources[i];
    if (e == nullptr) continue;
    const std::string field = join_path(path, names[i]);
    if (chosen != nullptr) {
      r.error(e->key_node, field,
              std::string("only one password source is allowed; ") + chosen_name + " is already set");
      continue;
    }
    chosen = e;
    chosen_name = names[i];
    if (user == nullptr) {
      r.error(e->key_node, field, "needs etcd.username (the user this password belongs to)");
    }
  }
  if (user != nullptr && chosen == nullptr) {
    r.error(user->key_node, join_path(path, "username"),
            "needs a password: set one of password_file, password_env or password");
  }
  if (chosen == sources[0] && chosen != nullptr) {
    if (auto v = r.text(*chosen, join_path(path, "password_file"), Need::kNonEmpty)) etcd.password_file = std::move(*v);
  } else if (chosen == sources[1] && chosen != nullptr) {
    const std::string field = join_path(path, "password_env");
    if (auto v = r.text(*chosen, field, Need::kNonEmpty)) {
      const bool valid_name = std::all_of(v->begin(), v->end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      }) && !(v->front() >= '0' && v->front() <= '9');
      if (!valid_name) {
        r.error(chosen->value, field, "must be the name of an environment variable, e.g. ETCD_PASSWORD, got '" + *v + "'");
      } else {
        if (!r.env()(*v)) r.warn(chosen->value, field, "environment variable " + *v + " is not set (yet)");
        etcd.password_env = std::move(*v);
      }
    }
  } else if (chosen == sources[2] && chosen != nullptr) {
    const std::string field = join_path(path, "password");
    // Not through r.text(): its messages may quote the value, and this value must never be printed.
    if (!chosen->value.IsScalar()) {
      r.error(chosen->value, field, "expected a string");
    } else {
      Expansion x = expand_env(chosen->value.Scalar(), r.env());
      if (x.error || x.value.empty()) {
        r.error(chosen->value, field, x.error ? "invalid ${...} expansion" : "must not be empty");
      } else {
        if (chosen->value.Scalar().find("${") == std::string::npos) {
          r.warn(chosen->key_node, field,
                 "a literal password is readable by anyone who can read this manifest; prefer password_file or "
                 "password_env");
        }
        etcd.password = std::move(x.value);
      }
    }
  }
}

void read_tls(Reader& r, const MapView& map, const std::string& path, EtcdSpec& etcd) {
  const Entry* section = map.get("tls");
  if (section == nullptr) return;
  const std::string tls_path = join_path(path, "tls");
  const std::optional<MapView> tls = r.open_map(section->value, tls_path, kTlsKeys);
  if (!tls) return;
  const auto file = [&](std::string_view key, std::string& into) {
    if (const Entry* e = tls->get(key)) {
      if (auto v = r.text(*e, join_path(tls_path, key), Need::kNonEmpty)) into = std::move(*v);
    }
  };
  file("ca", etcd.tls_ca);
  file("cert", etcd.tls_cert);
  file("key", etcd.tls_key);
  if (const Entry* cert = tls->get("cert"); cert != nullptr && tls->get("key") == nullptr) {
    r.error(cert->key_node, join_path(tls_path, "cert"), "needs etcd.tls.key (the client certificate's private key)");
  }
  if (const Entry* key = tls->get("key"); key != nullptr && tls->get("cert") == nullptr) {
    r.error(key->key_node, join_path(tls_path, "key"), "needs etcd.tls.cert (the client certificate)");
  }
  const bool any_https = std::any_of(etcd.endpoints.begin(), etcd.endpoints.end(),
                                     [](const std::string& url) { return url.rfind("https://", 0) == 0; });
  if (!any_https) {
    r.error(section->key_node, tls_path, "is set but no endpoint uses https:// (TLS applies to https:// endpoints)");
  }
}

}  // namespace

void read_etcd(Reader& r, const Entry& section, EtcdSpec& etcd) {
  const std::string path = "etcd";
  const std::optional<MapView> map = r.open_map(section.value, path, kEtcdKeys);
  if (!map) return;

  if (const Entry* e = map->get("endpoints")) {
    const std::string field = join_path(path, "endpoints");
    std::vector<std::pair<Entry, std::string>> items;  // entry + its field path
    if (e->value.IsScalar()) {
      items.emplace_back(*e, field);
    } else if (e->value.IsSequence()) {
      for (std::size_t i = 0; i < e->value.size(); ++i) {
        items.emplace_back(Entry{e->key, e->key_node, e->value[i]}, index_path(field, i));
      }
      if (items.empty()) r.error(e->value, field, "must list at least one endpoint");
    } else {
      r.error(e->value, field, "expected a list of URLs or a single URL, got " + describe(e->value));
    }
    std::vector<std::string> endpoints;
    for (const auto& [item, item_field] : items) {
      const std::optional<std::string> value = r.text(item, item_field, Need::kNonEmpty, "a URL");
      if (!value) continue;
      Endpoint endpoint = normalise_endpoint(*value);
      if (!endpoint.error.empty()) {
        r.error(item.value, item_field, endpoint.error);
        continue;
      }
      endpoints.push_back(std::move(endpoint.url));
    }
    if (!endpoints.empty()) etcd.endpoints = std::move(endpoints);
  }

  if (const Entry* e = map->get("prefix")) {
    const std::string field = join_path(path, "prefix");
    if (std::optional<std::string> prefix = r.text(*e, field, Need::kNonEmpty)) {
      if (prefix->front() != '/') {
        r.error(e->value, field, "must start with '/', got '" + *prefix + "'");
      } else if (has_space(*prefix)) {
        r.error(e->value, field, "must not contain whitespace, got '" + *prefix + "'");
      } else {
        while (!prefix->empty() && prefix->back() == '/') prefix->pop_back();
        etcd.prefix = std::move(*prefix);
      }
    }
  }
  if (const Entry* e = map->get("dial_timeout")) {
    if (const auto d = r.positive_duration(*e, join_path(path, "dial_timeout"))) etcd.dial_timeout = *d;
  }
  if (const Entry* e = map->get("request_timeout")) {
    if (const auto d = r.positive_duration(*e, join_path(path, "request_timeout"))) etcd.request_timeout = *d;
  }
  read_auth(r, *map, path, etcd);
  read_tls(r, *map, path, etcd);
}

}  // namespace sidecar::core::manifest
