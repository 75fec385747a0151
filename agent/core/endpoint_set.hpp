// Owns: the discovered instances of ONE service, kept up to date from an etcd snapshot plus watch events.
// Thread: pure; owned by whoever feeds it (the service's watcher), never shared without external locking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/instance.hpp"

namespace sidecar::core {

// One key-value as etcd reports it, stripped of protobuf so this layer stays free of gRPC.
struct KvInput {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;
  int64_t create_revision = 0;
  int64_t lease = 0;
};

struct EventInput {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KvInput kv;  // for kDelete only key and mod_revision (the delete's revision) matter
};

struct ApplyResult {
  bool duplicate = false;  // already reflected (older than what was applied); nothing done
  bool foreign = false;    // key outside "<prefix>/<service>/"; nothing done
  bool changed = false;    // the rendered output may differ now
  bool invalid = false;    // a put whose value is unusable; the key is tracked as invalid
  std::string id;          // set unless foreign
  std::string reason;      // why invalid (stable text: the caller warns once per key+reason)
};

struct ResetResult {
  bool changed = false;                                      // rendered output differs from before
  std::vector<std::pair<std::string, std::string>> invalid;  // (id, reason) of every unusable value
};

enum class ResyncReason {
  kNone,
  kClusterChanged,     // another cluster answers (etcd replaced): revisions are not comparable
  kRevisionWentBack,   // the store is older than what we applied (wiped or restored from backup)
};
const char* to_string(ResyncReason reason);

// When etcd is wiped or restored, a watch resumed at our last revision would wait for a revision the
// new store may not reach for a long time (or never), silently serving stale endpoints. Every response
// header is checked against what we knew; a non-kNone answer means "discard the watch, Range again".
// A cluster id of 0 means "unknown" and never triggers kClusterChanged.
ResyncReason needs_resync(uint64_t prev_cluster_id, int64_t prev_revision, uint64_t header_cluster_id,
                          int64_t header_revision);

// Storage is a std::map keyed by id: O(log n) per event and already in id order, so rendering (which must
// be sorted for byte-stable output) is a linear walk instead of a sort of the whole set per write.
// Invalid values are stored too (with Instance::error) so they are counted and warned about once, and so
// a later valid put or a delete of that key is handled like any other.
class EndpointSet {
 public:
  // "/services/order-service/" — the trailing slash is what keeps "/services/order-service-x/1" out.
  // A missing trailing slash is added.
  explicit EndpointSet(std::string key_prefix);

  // Replaces everything with a Range result taken at `revision` (first load, or resync after a
  // compaction or a wiped etcd). Keys outside the prefix are ignored.
  ResetResult reset(std::vector<KvInput> snapshot, int64_t revision);
  // The same in pages, as a paged Range delivers it: add_to_reset() per page (each value is parsed at once,
  // so only one page of raw values is held), then finish_reset() at the read's revision. The set stays as
  // it was until finish_reset(); abandon_reset() drops the pages gathered so far.
  void add_to_reset(std::vector<KvInput> page);
  ResetResult finish_reset(int64_t revision);
  void abandon_reset();

  // Events strictly older than revision() are dropped as duplicates. Events AT revision() are applied
  // (idempotently) rather than dropped: one etcd transaction touching several keys yields several events
  // sharing one mod_revision, and dropping "<= last applied" would lose all but the first of them.
  // A put or delete older than or equal to what the key already holds is reported as duplicate.
  // A put of an etcd-endpoints delete marker ({"Op":1}) removes the id, like a delete.
  ApplyResult apply(const EventInput& ev);

  // A watch response header or progress notification: nothing at or below `rev` is still to come.
  void advance_revision(int64_t rev);

  int64_t revision() const { return revision_; }
  const std::string& key_prefix() const { return prefix_; }
  size_t size() const { return entries_.size() - invalid_count_; }  // valid instances only
  size_t invalid_count() const { return invalid_count_; }
  bool contains(std::string_view id) const;         // valid or invalid
  const Instance* find(std::string_view id) const;  // valid or invalid; nullptr when absent
  // Valid instances in id order. Pointers stay valid until the next reset/apply. The list is kept between
  // calls and rebuilt only after an instance was added, removed, or turned valid or invalid.
  std::vector<const Instance*> sorted() const;

  // "" when `key` is outside the prefix or names the prefix itself.
  std::string_view id_of(std::string_view key) const;
  // `last_applied` is ours; `header_revision` is the store's current revision from any response.
  static bool revision_went_back(int64_t last_applied, int64_t header_revision) {
    return header_revision < last_applied;
  }

 private:
  std::string prefix_;
  using Entries = std::map<std::string, Instance, std::less<>>;
  Entries entries_;
  Entries pending_;  // a reset in progress
  mutable std::vector<const Instance*> sorted_;  // sorted()'s answer while sorted_current_
  mutable bool sorted_current_ = false;
  size_t invalid_count_ = 0;
  int64_t revision_ = 0;
};

}  // namespace sidecar::core
