#include "agent/frontend/dns/dns_codec.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

extern "C" {
#include <libknot/libknot.h>
}

namespace sidecar::frontend::dns {

namespace cdns = core::dns;

namespace {

// A dname in wire form from its text ("a.b.sidecar."); empty when libknot rejects it.
std::vector<uint8_t> wire_name(const std::string& text) {
  uint8_t buf[KNOT_DNAME_MAXLEN];
  if (knot_dname_from_str(buf, text.c_str(), sizeof buf) == nullptr) return {};
  return std::vector<uint8_t>(buf, buf + knot_dname_size(buf));
}

// Appends a knot_rdata_t holding `data` to `blobs`; returns its offset.
uint32_t add_rdata(std::vector<uint8_t>& blobs, const uint8_t* data, uint16_t len) {
  const auto at = static_cast<uint32_t>(blobs.size());
  blobs.resize(blobs.size() + knot_rdata_size(len));
  knot_rdata_init(reinterpret_cast<knot_rdata_t*>(blobs.data() + at), len, data);
  return at;
}

uint32_t add_record_rdata(std::vector<uint8_t>& blobs, const cdns::Record& r) {
  switch (r.kind) {
    case cdns::Record::Kind::kA: return add_rdata(blobs, r.ip.data(), 4);
    case cdns::Record::Kind::kAaaa: return add_rdata(blobs, r.ip.data(), 16);
    case cdns::Record::Kind::kCname: {
      const auto name = wire_name(r.target);
      return add_rdata(blobs, name.data(), static_cast<uint16_t>(name.size()));
    }
    case cdns::Record::Kind::kSrv: {
      const auto name = wire_name(r.target);
      std::vector<uint8_t> data(6 + name.size());
      knot_wire_write_u16(data.data(), 1);  // priority: every instance is equal
      knot_wire_write_u16(data.data() + 2, r.weight);
      knot_wire_write_u16(data.data() + 4, r.port);
      std::copy(name.begin(), name.end(), data.begin() + 6);
      return add_rdata(blobs, data.data(), static_cast<uint16_t>(data.size()));
    }
  }
  return 0;
}

uint16_t rr_type(cdns::Record::Kind kind) {
  switch (kind) {
    case cdns::Record::Kind::kA: return KNOT_RRTYPE_A;
    case cdns::Record::Kind::kAaaa: return KNOT_RRTYPE_AAAA;
    case cdns::Record::Kind::kCname: return KNOT_RRTYPE_CNAME;
    case cdns::Record::Kind::kSrv: return KNOT_RRTYPE_SRV;
  }
  return KNOT_RRTYPE_A;
}

// A one-record RRset over rdata we own: nothing is allocated per query.
knot_rrset_t one_record(const uint8_t* owner, uint16_t type, uint32_t ttl, const uint8_t* rdata_blob) {
  knot_rrset_t rr;
  knot_rrset_init(&rr, const_cast<uint8_t*>(owner), type, KNOT_CLASS_IN, ttl);
  const auto* rd = reinterpret_cast<const knot_rdata_t*>(rdata_blob);
  rr.rrs.count = 1;
  rr.rrs.size = static_cast<uint32_t>(knot_rdata_size(rd->len));
  rr.rrs.rdata = const_cast<knot_rdata_t*>(rd);
  return rr;
}

struct PktFree {
  void operator()(knot_pkt_t* p) const { knot_pkt_free(p); }
};

}  // namespace

Query Query::parse(const uint8_t* wire, size_t size) {
  Query q;
  if (size < KNOT_WIRE_HEADER_SIZE || size > kMaxTcpMessage) return q;
  // Never answer a response: two servers could otherwise bounce packets between them forever.
  if (knot_wire_get_qr(wire) != 0) return q;
  q.pkt_ = knot_pkt_new(const_cast<uint8_t*>(wire), static_cast<uint16_t>(size), nullptr);
  if (q.pkt_ == nullptr) return q;
  // Trailing bytes or a bad record anywhere: the whole packet is malformed, and dropped.
  if (knot_pkt_parse(q.pkt_, 0) != KNOT_EOK) return q;
  if (knot_wire_get_qdcount(wire) != 1 || q.pkt_->qname_size == 0) return q;
  q.qtype_ = knot_pkt_qtype(q.pkt_);
  const uint8_t* name = knot_pkt_wire_qname(q.pkt_);
  // libknot checked the name (lengths, no pointers in the question): walk its labels.
  while (*name != 0) {
    q.labels_.emplace_back(reinterpret_cast<const char*>(name + 1), *name);
    name += 1 + *name;
  }
  if (knot_pkt_has_edns(q.pkt_)) {
    q.edns_ = true;
    const uint16_t asked = knot_edns_get_payload(q.pkt_->opt_rr);
    q.udp_limit_ = std::clamp<uint16_t>(asked, kPlainUdpPayload, kMaxUdpPayload);
  }
  if (knot_wire_get_opcode(wire) != KNOT_OPCODE_QUERY) {
    q.status_ = Status::kNotImp;
  } else if (const uint16_t qclass = knot_pkt_qclass(q.pkt_); qclass != KNOT_CLASS_IN && qclass != KNOT_CLASS_ANY) {
    q.status_ = Status::kRefused;
  } else {
    q.status_ = Status::kOk;
  }
  return q;
}

Query::Query(Query&& other) noexcept { *this = std::move(other); }

Query& Query::operator=(Query&& other) noexcept {
  if (this != &other) {
    if (pkt_ != nullptr) knot_pkt_free(pkt_);
    status_ = other.status_;
    qtype_ = other.qtype_;
    labels_ = std::move(other.labels_);
    edns_ = other.edns_;
    udp_limit_ = other.udp_limit_;
    pkt_ = std::exchange(other.pkt_, nullptr);
  }
  return *this;
}

Query::~Query() {
  if (pkt_ != nullptr) knot_pkt_free(pkt_);
}

Zone Zone::make(const std::string& domain, uint32_t ttl) {
  Zone z;
  z.apex = wire_name(domain);
  z.ttl = ttl;
  const auto mname = wire_name("ns." + domain);
  const auto rname = wire_name("hostmaster." + domain);
  std::vector<uint8_t> data(mname.begin(), mname.end());
  data.insert(data.end(), rname.begin(), rname.end());
  // serial, refresh, retry, expire, minimum: nothing transfers this zone, only the minimum matters (the
  // negative TTL, RFC 2308), and it is the answers' ttl.
  const uint32_t fields[] = {1, 3600, 600, 86400, ttl};
  for (uint32_t f : fields) {
    uint8_t b[4];
    knot_wire_write_u32(b, f);
    data.insert(data.end(), b, b + 4);
  }
  add_rdata(z.soa_rdata, data.data(), static_cast<uint16_t>(data.size()));
  return z;
}

PreparedAnswer::PreparedAnswer(cdns::AnswerSet set, uint32_t ttl) : set_(std::move(set)), ttl_(ttl) {
  for (const auto& r : set_.answers) answer_at_.push_back(add_record_rdata(rdata_, r));
  for (const auto& r : set_.extra) {
    extra_at_.push_back(add_record_rdata(rdata_, r));
    owner_at_.push_back(static_cast<uint32_t>(owners_.size()));
    const auto name = wire_name(r.owner);
    owners_.insert(owners_.end(), name.begin(), name.end());
  }
}

size_t encode_answer(const Query& query, cdns::Rcode rcode, const PreparedAnswer* answer, size_t start,
                     const Zone& zone, uint8_t* out, size_t limit, bool* truncated) {
  *truncated = false;
  limit = std::min(limit, kMaxTcpMessage);
  std::unique_ptr<knot_pkt_t, PktFree> pkt(knot_pkt_new(out, static_cast<uint16_t>(limit), nullptr));
  if (!pkt || knot_pkt_init_response(pkt.get(), query.packet()) != KNOT_EOK) return 0;
  knot_wire_set_aa(pkt->wire);
  knot_wire_clear_ra(pkt->wire);  // no recursion, ever
  knot_wire_set_rcode(pkt->wire, static_cast<short>(rcode));
  // The OPT record goes last; its room is kept free while the sections fill.
  knot_rrset_t opt;
  knot_rrset_init_empty(&opt);
  uint16_t opt_size = 0;
  if (query.edns() && knot_edns_init(&opt, kMaxUdpPayload, 0, 0, &pkt->mm) == KNOT_EOK) {
    opt_size = static_cast<uint16_t>(knot_edns_wire_size(&opt));
    if (knot_pkt_reserve(pkt.get(), opt_size) != KNOT_EOK) opt_size = 0;
  }
  const uint8_t* qname = knot_pkt_qname(query.packet());
  std::vector<int32_t> extras;
  knot_pkt_begin(pkt.get(), KNOT_ANSWER);
  if (answer != nullptr) {
    const auto& set = answer->set();
    if (set.soa_answer) {
      knot_rrset_t rr = one_record(zone.apex.data(), KNOT_RRTYPE_SOA, zone.ttl, zone.soa_rdata.data());
      if (knot_pkt_put(pkt.get(), KNOT_COMPR_HINT_QNAME, &rr, KNOT_PF_NOTRUNC) != KNOT_EOK) *truncated = true;
    }
    const size_t n = set.answers.size();
    const size_t count = set.single ? std::min<size_t>(n, 1) : n;
    for (size_t k = 0; k < count; ++k) {
      const size_t i = (start + k) % n;
      knot_rrset_t rr = one_record(qname, rr_type(set.answers[i].kind), answer->ttl_,
                                   answer->rdata_.data() + answer->answer_at_[i]);
      // Each record is its own put, so a packet holds as many as fit (an RRset put is all or nothing).
      if (knot_pkt_put(pkt.get(), KNOT_COMPR_HINT_QNAME, &rr, KNOT_PF_NOTRUNC) != KNOT_EOK) {
        *truncated = true;
        break;
      }
      if (set.answers[i].extra >= 0) extras.push_back(set.answers[i].extra);
    }
    knot_pkt_begin(pkt.get(), KNOT_AUTHORITY);
    if (set.soa_authority) {
      knot_rrset_t rr = one_record(zone.apex.data(), KNOT_RRTYPE_SOA, zone.ttl, zone.soa_rdata.data());
      knot_pkt_put(pkt.get(), KNOT_COMPR_HINT_NONE, &rr, KNOT_PF_NOTRUNC);
    }
    knot_pkt_begin(pkt.get(), KNOT_ADDITIONAL);
    // The targets' addresses save the client a query each; what does not fit is simply left out (RFC 2181).
    for (const int32_t e : extras) {
      const auto& r = set.extra[static_cast<size_t>(e)];
      knot_rrset_t rr = one_record(answer->owners_.data() + answer->owner_at_[static_cast<size_t>(e)], rr_type(r.kind),
                                   answer->ttl_, answer->rdata_.data() + answer->extra_at_[static_cast<size_t>(e)]);
      if (knot_pkt_put(pkt.get(), KNOT_COMPR_HINT_NONE, &rr, KNOT_PF_NOTRUNC) != KNOT_EOK) break;
    }
  }
  if (*truncated) knot_wire_set_tc(pkt->wire);
  if (opt_size != 0) {
    knot_pkt_begin(pkt.get(), KNOT_ADDITIONAL);
    knot_pkt_reclaim(pkt.get(), opt_size);
    knot_pkt_put(pkt.get(), KNOT_COMPR_HINT_NONE, &opt, KNOT_PF_NOTRUNC);
  }
  const size_t size = pkt->size;
  knot_rrset_clear(&opt, &pkt->mm);
  return size;
}

}  // namespace sidecar::frontend::dns
