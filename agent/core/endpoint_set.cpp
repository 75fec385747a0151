#include "agent/core/endpoint_set.hpp"

#include <algorithm>

namespace sidecar::core {

const char* to_string(ResyncReason reason) {
  switch (reason) {
    case ResyncReason::kNone:
      return "none";
    case ResyncReason::kClusterChanged:
      return "cluster id changed";
    case ResyncReason::kRevisionWentBack:
      return "revision went back";
  }
  return "unknown";
}

ResyncReason needs_resync(uint64_t prev_cluster_id, int64_t prev_revision, uint64_t header_cluster_id,
                          int64_t header_revision) {
  if (prev_cluster_id != 0 && header_cluster_id != 0 && prev_cluster_id != header_cluster_id) {
    return ResyncReason::kClusterChanged;
  }
  if (EndpointSet::revision_went_back(prev_revision, header_revision)) return ResyncReason::kRevisionWentBack;
  return ResyncReason::kNone;
}

EndpointSet::EndpointSet(std::string key_prefix) : prefix_(std::move(key_prefix)) {
  if (prefix_.empty() || prefix_.back() != '/') prefix_ += '/';
}

std::string_view EndpointSet::id_of(std::string_view key) const {
  if (key.size() <= prefix_.size() || key.compare(0, prefix_.size(), prefix_) != 0) return {};
  return key.substr(prefix_.size());
}

bool EndpointSet::contains(std::string_view id) const { return entries_.find(id) != entries_.end(); }

const Instance* EndpointSet::find(std::string_view id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<const Instance*> EndpointSet::sorted() const {
  // Kept between calls: a write of a 10,000-instance file walked the whole tree every time, and with the
  // nodes cold in cache that walk was the largest cost of a write. Map nodes do not move, so the list
  // stays right until an instance is added or removed or turns valid or invalid.
  if (!sorted_current_) {
    sorted_.clear();
    sorted_.reserve(size());
    for (const auto& [id, inst] : entries_) {
      if (inst.valid()) sorted_.push_back(&inst);
    }
    sorted_current_ = true;
  }
  return sorted_;
}

void EndpointSet::advance_revision(int64_t rev) { revision_ = std::max(revision_, rev); }

ResetResult EndpointSet::reset(std::vector<KvInput> snapshot, int64_t revision) {
  abandon_reset();
  add_to_reset(std::move(snapshot));
  return finish_reset(revision);
}

void EndpointSet::abandon_reset() { pending_.clear(); }

void EndpointSet::add_to_reset(std::vector<KvInput> page) {
  for (auto& kv : page) {
    std::string_view id = id_of(kv.key);
    if (id.empty()) continue;
    ParsedValue parsed = parse_instance_value(id, kv.value);
    if (parsed.kind == ParsedValue::Kind::kDeleteMarker) {
      pending_.erase(std::string(id));
      continue;
    }
    Instance& inst = parsed.instance;
    inst.mod_revision = kv.mod_revision;
    inst.create_revision = kv.create_revision;
    inst.lease = kv.lease;
    std::string key = inst.id;
    pending_.insert_or_assign(std::move(key), std::move(inst));
  }
}

ResetResult EndpointSet::finish_reset(int64_t revision) {
  ResetResult result;
  Entries fresh = std::move(pending_);
  pending_.clear();
  size_t invalid = 0;
  // Counted from the map, not per input: a key listed twice (the later one wins) must not count twice.
  for (const auto& [id, inst] : fresh) {
    if (inst.valid()) continue;
    ++invalid;
    result.invalid.emplace_back(inst.id, inst.error());
  }

  // Compare the valid projections in id order: a resync that finds the same set must not rewrite files.
  auto next_valid = [](auto it, auto end) {
    while (it != end && !it->second.valid()) ++it;
    return it;
  };
  auto a = next_valid(entries_.begin(), entries_.end());
  auto b = next_valid(fresh.begin(), fresh.end());
  while (a != entries_.end() && b != fresh.end()) {
    if (a->first != b->first || !a->second.same_rendering(b->second)) break;
    a = next_valid(std::next(a), entries_.end());
    b = next_valid(std::next(b), fresh.end());
  }
  result.changed = a != entries_.end() || b != fresh.end();

  entries_ = std::move(fresh);
  sorted_current_ = false;
  invalid_count_ = invalid;
  // Not max(): after a wiped etcd the new store's revision is lower, and that is the point of a reset.
  revision_ = revision;
  return result;
}

ApplyResult EndpointSet::apply(const EventInput& ev) {
  ApplyResult result;
  std::string_view id = id_of(ev.kv.key);
  if (id.empty()) {
    result.foreign = true;
    return result;
  }
  result.id = std::string(id);
  const int64_t rev = ev.kv.mod_revision;
  if (rev < revision_) {
    result.duplicate = true;
    return result;
  }
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.mod_revision >= rev) {
    result.duplicate = true;
    return result;
  }
  revision_ = std::max(revision_, rev);

  auto erase_existing = [&] {
    if (it == entries_.end()) return;
    if (it->second.valid()) {
      result.changed = true;
    } else {
      --invalid_count_;
    }
    entries_.erase(it);
    sorted_current_ = false;
  };

  if (ev.type == EventInput::Type::kDelete) {
    erase_existing();
    return result;
  }

  ParsedValue parsed = parse_instance_value(id, ev.kv.value);
  if (parsed.kind == ParsedValue::Kind::kDeleteMarker) {
    erase_existing();
    return result;
  }
  Instance& inst = parsed.instance;
  inst.mod_revision = rev;
  inst.create_revision = ev.kv.create_revision;
  inst.lease = ev.kv.lease;
  if (!inst.valid()) {
    result.invalid = true;
    result.reason = inst.error();
  }

  if (it == entries_.end()) {
    result.changed = inst.valid();
    if (!inst.valid()) ++invalid_count_;
    entries_.emplace(result.id, std::move(inst));
    sorted_current_ = false;
    return result;
  }
  Instance& old = it->second;
  result.changed = (old.valid() || inst.valid()) && !old.same_rendering(inst);
  if (old.valid() && !inst.valid()) ++invalid_count_;
  if (!old.valid() && inst.valid()) --invalid_count_;
  if (old.valid() != inst.valid()) sorted_current_ = false;
  old = std::move(inst);
  return result;
}

}  // namespace sidecar::core
