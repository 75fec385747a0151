#include "agent/core/manifest.hpp"

// The parser itself lives in agent/core/manifest/: reader (YAML, typed values, errors), text and address
// (the value grammars) and one file per section. This file is the entry point and the top-level map.

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "agent/core/manifest/reader.hpp"
#include "agent/core/manifest/sections.hpp"

namespace sidecar::core {

std::string ManifestError::to_string() const {
  std::string out = where.file.empty() ? std::string("<manifest>") : where.file;
  if (where.line > 0) {
    out += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
  }
  if (!field.empty()) out += ": " + field;
  out += ": " + message;
  return out;
}

namespace manifest {
namespace {

constexpr std::string_view kTopLevelKeys[] = {"etcd",   "lease", "services", "discover",
                                              "config", "admin", "shutdown", "agent",
                                              "catalog", "http", "dns", "xds"};

// Without `agent: {zone}`, the agent is where its services are, when they all say the same.
void default_agent_locality(Manifest& m) {
  const auto shared = [&m](std::string ServiceSpec::*field) {
    std::string value;
    for (const ServiceSpec& s : m.services) {
      if ((s.*field).empty() || (!value.empty() && value != s.*field)) return std::string();
      value = s.*field;
    }
    return value;
  };
  if (m.agent.zone.empty()) m.agent.zone = shared(&ServiceSpec::zone);
  if (m.agent.region.empty()) m.agent.region = shared(&ServiceSpec::region);
}

void read_root(Reader& r, const YAML::Node& root, Manifest& m) {
  if (!root.IsMap()) {
    r.error(root, "", "manifest must be a map with the keys " + join_names(kTopLevelKeys) + ", got " + describe(root));
    return;
  }
  const std::optional<MapView> top = r.open_map(root, "", kTopLevelKeys);
  if (!top) return;
  if (const Entry* e = top->get("etcd")) read_etcd(r, *e, m.etcd);
  if (const Entry* e = top->get("lease")) read_lease(r, *e, m.lease_ttl);
  if (const Entry* e = top->get("services")) read_services(r, *e, m.services);
  if (const Entry* e = top->get("discover")) read_discover(r, *e, m.discover);
  if (const Entry* e = top->get("config")) read_config(r, *e, m.config);
  if (const Entry* e = top->get("admin")) read_admin(r, *e, m.admin);
  if (const Entry* e = top->get("shutdown")) read_shutdown(r, *e, m.drain_delay);
  if (const Entry* e = top->get("catalog")) read_catalog(r, *e, m.catalog);
  if (const Entry* e = top->get("http")) read_http(r, *e, m.http);
  if (const Entry* e = top->get("dns")) read_dns(r, *e, m.dns);
  if (const Entry* e = top->get("xds")) read_xds(r, *e, m.xds);
  if (const Entry* e = top->get("agent")) read_agent(r, *e, m.agent);
  default_agent_locality(m);

  // Judged on what was written, not on what survived parsing, so a broken section is not also "nothing to do".
  const auto written = [&](std::string_view key) {
    const Entry* e = top->get(key);
    return e != nullptr && !(e->value.IsSequence() && e->value.size() == 0);
  };
  if (!written("services") && !written("discover") && !written("config") && !m.dns.enabled &&
      !m.xds.enabled) {
    r.error(SourceLocation{r.source(), 0, 0}, "",
            "nothing to do: the manifest has no services, discover or config entries, nor a dns or xds server");
  }
}

}  // namespace
}  // namespace manifest

const char* to_string(CheckType type) {
  switch (type) {
    case CheckType::kHttp: return "http";
    case CheckType::kTcp: return "tcp";
    case CheckType::kExec: return "exec";
    case CheckType::kGrpc: return "grpc";
    case CheckType::kTtl: return "ttl";
  }
  return "unknown";
}

ParseResult parse_manifest(std::string_view text, std::string_view source_name, const EnvLookup& env) {
  manifest::Reader reader(source_name, env);
  Manifest result;
  result.source = std::string(source_name);
  if (const std::optional<YAML::Node> root = reader.load(text)) {
    try {
      manifest::read_root(reader, *root, result);
    } catch (const std::exception& e) {
      // Defensive: a yaml-cpp accessor throwing is a bug here, but the caller was promised no exceptions.
      reader.error(SourceLocation{std::string(source_name), 0, 0}, "",
                   std::string("internal error while reading the manifest: ") + e.what());
    }
  }
  return reader.finish(std::move(result));
}

ParseResult load_manifest(const std::string& path, const EnvLookup& env) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  const auto unreadable = [&](int error_number) {
    ParseResult result;
    result.errors.push_back(
        ManifestError{SourceLocation{path, 0, 0}, "", std::string("cannot read manifest: ") + std::strerror(error_number)});
    return result;
  };
  if (file == nullptr) return unreadable(errno);
  std::string text;
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int read_errno = errno;
  std::fclose(file);
  if (failed) return unreadable(read_errno != 0 ? read_errno : EIO);
  return parse_manifest(text, path, env);
}

}  // namespace sidecar::core
