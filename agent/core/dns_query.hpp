// Owns: what the DNS view answers, decided without a packet or a socket: a query name parsed into service,
//       tag, zone, named port or instance (Consul's shape), the rcode, and the records in their base order
//       with the weighted rotation that picks where each answer starts.
// Thread: pure; no state, never throws.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar::core {
struct Instance;
}

namespace sidecar::core::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeSoa = 6;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeSrv = 33;
inline constexpr uint16_t kTypeAny = 255;

enum class Rcode : uint8_t { kNoError = 0, kFormErr = 1, kServFail = 2, kNxDomain = 3, kNotImp = 4, kRefused = 5 };
std::string_view to_string(Rcode rcode);  // "NOERROR", "NXDOMAIN", ...
// The metric label of a query type: "A", "AAAA", "SRV", "SOA", "ANY", "CNAME", else "other".
std::string_view type_label(uint16_t qtype);

// "sidecar." / "Sidecar" / "a.b." -> lower-case labels {"sidecar"} / {"a","b"}; empty for "" or ".".
std::vector<std::string> domain_labels(std::string_view domain);
// The labels joined with a dot and a trailing dot: {"a","b"} -> "a.b."; {} -> ".".
std::string domain_text(const std::vector<std::string>& labels);

// A query name, relative to the served domain (keywords matched case-insensitively, the rest kept as sent):
//   <service>.service                     every selected instance
//   <tag>.<service>.service               only those tagged <tag>
//   ....service.<zone>.zone               only zone <zone> ("local": the agent's zone, as in a selector)
//   _<port>._tcp.<rest>                   (RFC 2782) SRV gives the named port <port> instead of the default
//   <id>.<service>.instance               one instance (the SRV targets)
struct Name {
  enum class Kind { kOutside, kApex, kService, kInstance, kUnknown };
  Kind kind = Kind::kUnknown;
  std::string service;
  std::string tag;
  std::string zone;
  std::string port_name;  // lower-case, without the '_'
  std::string id;         // kInstance
};
// `labels`: the query name's labels, leftmost first, without the root. `domain`: domain_labels().
Name parse_name(const std::vector<std::string_view>& labels, const std::vector<std::string>& domain);

// One resource record, in the form the codec turns into wire format. The owner is the query name unless
// `owner` is set (the additional records of SRV targets).
struct Record {
  enum class Kind : uint8_t { kA, kAaaa, kCname, kSrv };
  Kind kind = Kind::kA;
  std::array<uint8_t, 16> ip{};  // kA: the first 4 bytes
  std::string target;            // kCname, kSrv: an absolute name ("x.y.sidecar.")
  std::string owner;             // additional records only
  uint16_t port = 0;             // kSrv
  uint16_t weight = 1;           // the rotation's weight; SRV's weight field too
  int32_t extra = -1;            // kSrv: index of the target's address record in AnswerSet::extra, or -1
};

// Everything one (service, type, selector) answers, in base order; cached by the server until the service
// changes. The order each query sees comes from rotation_start().
struct AnswerSet {
  Rcode rcode = Rcode::kNoError;
  bool soa_authority = false;  // NXDOMAIN, or NOERROR without answers: the SOA goes in the authority section
  bool soa_answer = false;     // an SOA query for the domain itself
  bool single = false;         // only the first record after rotation is answered (a CNAME: one per name)
  std::vector<Record> answers;
  std::vector<Record> extra;
  std::vector<uint64_t> cumulative;  // cumulative weights of `answers`, for the rotation
  uint64_t stride = 1;               // coprime with the total weight
};

struct PlanContext {
  std::string_view domain;      // domain_text(), e.g. "sidecar."
  std::string_view local_zone;  // the agent's zone, for "local.zone"
};

// The answer for `name` (kApex, kService, kInstance or kUnknown) and `qtype`, from the service's valid
// instances in id order (EndpointSet::sorted(); empty for kApex/kUnknown). Only instances shown by default
// (passing, warning) are ever answered. No such instance: NXDOMAIN with the SOA. A type the name does not
// have: NOERROR with the SOA and no answers.
AnswerSet plan_answers(const Name& name, uint16_t qtype, const std::vector<const Instance*>& sorted,
                       const PlanContext& ctx);

// Where the `query_number`-th answer starts. Over any run of total-weight consecutive queries each record
// comes first exactly `weight` times, spread out rather than in a block; the rest follows in base order.
size_t rotation_start(const AnswerSet& set, uint64_t query_number);

// Whether `label` can be one label of a name written as text: 1..63 bytes of [A-Za-z0-9_-].
bool plain_label(std::string_view label);

}  // namespace sidecar::core::dns
