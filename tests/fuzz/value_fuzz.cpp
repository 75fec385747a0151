// Fuzz target: the value parser for registry values (our JSON, NestJS-style JSON, etcd endpoints JSON,
// arbitrary bytes), host:port splitting, and the encode -> parse round trip of our own format.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "agent/core/instance.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace core = sidecar::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // The whole input is the value; the id is fixed (ids come from etcd keys, the agent checks them apart).
  const auto parsed = core::parse_instance_value("fuzz-id", input);
  const auto& inst = parsed.instance;
  FUZZ_CHECK(inst.id == "fuzz-id");
  switch (parsed.kind) {
    case core::ParsedValue::Kind::kInstance: {
      FUZZ_CHECK(inst.valid());
      FUZZ_CHECK(inst.port >= 1 && inst.port <= 65535);
      FUZZ_CHECK(!inst.address.empty());
      const auto meta = nlohmann::json::parse(inst.metadata_json, nullptr, false);
      FUZZ_CHECK(!meta.is_discarded() && meta.is_object());
      FUZZ_CHECK(inst.weight >= core::kMinWeight && inst.weight <= core::kMaxWeight);
      for (const auto& tag : inst.tags()) FUZZ_CHECK(core::valid_label(tag));
      for (const auto& [name, port] : inst.ports()) FUZZ_CHECK(core::valid_port_name(name) && port >= 1 && port <= 65535);
      FUZZ_CHECK(inst.zone().empty() || core::valid_label(inst.zone()));
      // The endpoint string splits back into the same host and port (IPv6 bracketed and unbracketed).
      const auto hp = core::split_host_port(inst.endpoint());
      FUZZ_CHECK(hp.has_value());
      FUZZ_CHECK(hp->first == inst.address && hp->second == inst.port);
      // Our own encoding of this instance parses back to the same address and port.
      core::ServiceSpec spec;
      spec.name = "fuzz";
      spec.id = "fuzz-id";
      spec.address = inst.address;
      spec.port = inst.port;
      spec.weight = inst.weight;
      spec.tags = inst.tags();
      spec.ports.insert(inst.ports().begin(), inst.ports().end());
      spec.zone = inst.zone();
      spec.region = inst.region();
      for (const auto& [k, v] : meta.items()) {
        if (v.is_string()) spec.metadata[k] = v.get<std::string>();
      }
      for (const auto format : {core::ValueFormat::kSidecarJson, core::ValueFormat::kEtcdEndpoints}) {
        spec.value_format = format;
        const auto again = core::parse_instance_value("fuzz-id", core::encode_registration(spec, inst.state));
        FUZZ_CHECK(again.kind == core::ParsedValue::Kind::kInstance);
        FUZZ_CHECK(again.instance.address == inst.address && again.instance.port == inst.port);
        // The rich fields survive our own encoding too.
        FUZZ_CHECK(again.instance.weight == inst.weight && again.instance.state == inst.state);
        FUZZ_CHECK(again.instance.tags() == inst.tags() && again.instance.ports() == inst.ports());
        FUZZ_CHECK(again.instance.zone() == inst.zone() && again.instance.region() == inst.region());
      }
      break;
    }
    case core::ParsedValue::Kind::kInvalid:
    case core::ParsedValue::Kind::kDeleteMarker:
      FUZZ_CHECK(!inst.error().empty());
      break;
  }

  if (const auto hp = core::split_host_port(input)) {
    FUZZ_CHECK(hp->second >= 0 && hp->second <= 65535);
    // split_host_port does not vet the host (parse_instance_value does); a host that itself holds brackets
    // ("[[x]:1" -> "[x") is left unbracketed by join_host_port by design, so it cannot round-trip.
    if (hp->first.find_first_of("[]") != std::string::npos) return 0;
    const auto again = core::split_host_port(core::join_host_port(hp->first, hp->second));
    FUZZ_CHECK(again.has_value() && *again == *hp);
  }
  return 0;
}
