// Fuzz target: the DNS packet parser (libknot through frontend::dns::Query) and what follows a parse: the
// name planning over a small fixed set and the encoding of the answer, at the UDP and the TCP limit.
// Properties: a packet is either dropped or answered, an answer fits its limit and parses back as a
// well-formed response with the query's id, and TC only ever appears on answers cut at the limit.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include <libknot/libknot.h>
}

#include "agent/core/dns_query.hpp"
#include "agent/core/instance.hpp"
#include "agent/frontend/dns/dns_codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace core = sidecar::core;
namespace fdns = sidecar::frontend::dns;

namespace {

const std::vector<core::Instance>& instances() {
  static const std::vector<core::Instance> list = [] {
    std::vector<core::Instance> out;
    const char* values[] = {
        R"({"address":"10.0.0.1","port":80,"zone":"a","tags":["v2"],"weight":5,"ports":{"grpc":9090}})",
        R"({"address":"::1","port":81,"state":"warning"})",
        R"({"address":"db.example.com","port":5432})",
        R"({"address":"10.0.0.4","port":80,"state":"draining"})",
    };
    int n = 0;
    for (const char* v : values) out.push_back(core::parse_instance_value("i" + std::to_string(n++), v).instance);
    return out;
  }();
  return list;
}

void check_response(const uint8_t* wire, size_t size, size_t limit, const uint8_t* query) {
  FUZZ_CHECK(size >= KNOT_WIRE_HEADER_SIZE && size <= limit);
  FUZZ_CHECK(knot_wire_get_qr(wire) != 0);
  FUZZ_CHECK(knot_wire_get_id(wire) == knot_wire_get_id(query));
  std::vector<uint8_t> copy(wire, wire + size);
  knot_pkt_t* pkt = knot_pkt_new(copy.data(), static_cast<uint16_t>(size), nullptr);
  FUZZ_CHECK(pkt != nullptr);
  FUZZ_CHECK(knot_pkt_parse(pkt, 0) == KNOT_EOK);
  knot_pkt_free(pkt);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fdns::Query q = fdns::Query::parse(data, size);
  if (q.status() == fdns::Query::Status::kDrop) return 0;
  std::vector<const core::Instance*> sorted;
  for (const auto& i : instances()) {
    if (i.valid()) sorted.push_back(&i);
  }
  const auto domain = core::dns::domain_labels("sidecar.");
  const core::dns::Name name = core::dns::parse_name(q.labels(), domain);
  const fdns::Zone zone = fdns::Zone::make("sidecar.", 5);
  const fdns::PreparedAnswer answer(core::dns::plan_answers(name, q.qtype(), sorted, {"sidecar.", "a"}), 5);
  std::vector<uint8_t> out(fdns::kMaxTcpMessage);
  for (const size_t limit : {size_t{q.udp_limit()}, fdns::kMaxTcpMessage}) {
    for (uint64_t n = 0; n < 3; ++n) {
      bool truncated = false;
      const size_t start = core::dns::rotation_start(answer.set(), n);
      FUZZ_CHECK(answer.set().answers.empty() || start < answer.set().answers.size());
      const size_t written = fdns::encode_answer(q, answer.set().rcode, &answer, start, zone, out.data(), limit, &truncated);
      check_response(out.data(), written, limit, data);
      FUZZ_CHECK((knot_wire_get_tc(out.data()) != 0) == truncated);
    }
  }
  return 0;
}
