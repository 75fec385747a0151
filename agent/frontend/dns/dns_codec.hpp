// Owns: the DNS wire format of the DNS view, through libknot (Knot DNS's library): parsing a query packet
//       (malformed ones are dropped, never answered) and encoding an answer planned by core::dns, with
//       UDP truncation (TC) and EDNS0.
// Thread: any; a Query or PreparedAnswer is used by one thread at a time. No I/O, no Asio (the fuzz target
//         links this file alone).
//
// Why libknot and not hand-written parsing: a DNS parser is a classic place for memory bugs, and libknot is
// the parser of a production authoritative server, fuzzed upstream, packaged in Debian (libknot-dev 3.2).
// What it costs: the agent answers at 0.55-0.78 of knotd's rate (BENCHMARKS.md, "Issue 13: DNS"), and knotd
// runs this same library; per query it parses the packet and writes the records that fit, while turning a
// service's instances into records and rdata is done once per change and cached (PreparedAnswer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/dns_query.hpp"

struct knot_pkt;

namespace sidecar::frontend::dns {

// The largest UDP answer we send, whatever a client's EDNS0 buffer says (DNS Flag Day 2020's 1232 bytes:
// no IP fragmentation on any common path). Without EDNS0 it is 512 (RFC 1035).
inline constexpr uint16_t kMaxUdpPayload = 1232;
inline constexpr uint16_t kPlainUdpPayload = 512;
inline constexpr size_t kMaxTcpMessage = 65535;

class Query {
 public:
  enum class Status {
    kOk,       // answer it
    kDrop,     // malformed, a response, or no question: dropped and counted, never answered
    kNotImp,   // an opcode other than QUERY: NOTIMP
    kRefused,  // a class other than IN (or ANY): REFUSED
  };
  // Parses `wire` (not copied: it must outlive the Query).
  static Query parse(const uint8_t* wire, size_t size);
  Query(Query&&) noexcept;
  Query& operator=(Query&&) noexcept;
  ~Query();

  Status status() const { return status_; }
  uint16_t qtype() const { return qtype_; }
  // The query name's labels as sent (case kept), leftmost first, without the root; they point into the wire.
  const std::vector<std::string_view>& labels() const { return labels_; }
  bool edns() const { return edns_; }
  // The largest UDP answer this client takes: 512 without EDNS0, else its buffer size within 512..1232.
  uint16_t udp_limit() const { return udp_limit_; }
  knot_pkt* packet() const { return pkt_; }

 private:
  Query() = default;
  Status status_ = Status::kDrop;
  uint16_t qtype_ = 0;
  std::vector<std::string_view> labels_;
  bool edns_ = false;
  uint16_t udp_limit_ = kPlainUdpPayload;
  knot_pkt* pkt_ = nullptr;
};

// The served zone's apex and its SOA, the authority of NXDOMAIN and NODATA answers.
struct Zone {
  std::vector<uint8_t> apex;        // wire name of the domain
  std::vector<uint8_t> soa_rdata;   // knot_rdata_t blob
  uint32_t ttl = 0;
  static Zone make(const std::string& domain, uint32_t ttl);
};

// One AnswerSet turned into rdata once, so a query only copies bytes into the packet.
class PreparedAnswer {
 public:
  PreparedAnswer(core::dns::AnswerSet set, uint32_t ttl);
  const core::dns::AnswerSet& set() const { return set_; }
  // Answers that fit in the smallest (512-byte) packet, for the metrics of large sets.
  size_t size() const { return set_.answers.size(); }

 private:
  friend size_t encode_answer(const Query&, core::dns::Rcode, const PreparedAnswer*, size_t, const Zone&, uint8_t*,
                              size_t, bool*);
  core::dns::AnswerSet set_;
  uint32_t ttl_ = 0;
  std::vector<uint8_t> rdata_;          // knot_rdata_t blobs, 2-byte aligned
  std::vector<uint32_t> answer_at_;     // offset in rdata_ per answer
  std::vector<uint32_t> extra_at_;      // offset in rdata_ per extra record
  std::vector<uint8_t> owners_;         // wire names of the extra records' owners
  std::vector<uint32_t> owner_at_;      // offset in owners_ per extra record
};

// Writes the answer to `query` into `out` (capacity `limit`: the UDP limit, or kMaxTcpMessage for TCP) and
// returns its size (0 only if even the header does not fit). `answer` may be null (an rcode alone: REFUSED,
// SERVFAIL, NOTIMP). Answers start at `start` (rotation_start) and go on in base order, as many as fit; when
// some do not, TC is set and *truncated says so. Additional records are added while they fit.
size_t encode_answer(const Query& query, core::dns::Rcode rcode, const PreparedAnswer* answer, size_t start,
                     const Zone& zone, uint8_t* out, size_t limit, bool* truncated);

}  // namespace sidecar::frontend::dns
