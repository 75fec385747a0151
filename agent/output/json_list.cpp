#include "agent/output/json_list.hpp"

#include <algorithm>
#include <iterator>

namespace sidecar::output {

namespace {

auto item_less = [](const auto& item, std::string_view id) { return item.id < id; };

}  // namespace

size_t JsonList::chunk_for(std::string_view id) const {
  // First chunk whose first id is > id, minus one.
  auto it = std::upper_bound(chunks_.begin(), chunks_.end(), id,
                             [](std::string_view key, const Chunk& c) { return key < c.items.front().id; });
  return it == chunks_.begin() ? 0 : static_cast<size_t>(std::distance(chunks_.begin(), it)) - 1;
}

void JsonList::upsert(std::string_view id, std::string fragment) {
  if (chunks_.empty()) {
    chunks_.emplace_back();
    chunks_.back().items.push_back({std::string(id), std::move(fragment)});
    size_ = 1;
    return;
  }
  const size_t index = chunk_for(id);
  Chunk& chunk = chunks_[index];
  auto it = std::lower_bound(chunk.items.begin(), chunk.items.end(), id, item_less);
  chunk.dirty = true;
  if (it != chunk.items.end() && it->id == id) {
    it->fragment = std::move(fragment);
    return;
  }
  chunk.items.insert(it, Item{std::string(id), std::move(fragment)});
  ++size_;
  if (chunk.items.size() > kMaxChunk) {
    // Split in halves: a run of appends (ids arriving in order) then leaves half-full chunks behind,
    // which still bounds the chunk count at 2n/kMaxChunk.
    Chunk upper;
    const auto mid = chunk.items.begin() + static_cast<std::ptrdiff_t>(chunk.items.size() / 2);
    upper.items.assign(std::make_move_iterator(mid), std::make_move_iterator(chunk.items.end()));
    chunk.items.erase(mid, chunk.items.end());
    chunks_.insert(chunks_.begin() + static_cast<std::ptrdiff_t>(index) + 1, std::move(upper));
  }
}

void JsonList::erase(std::string_view id) {
  if (chunks_.empty()) return;
  const size_t index = chunk_for(id);
  Chunk& chunk = chunks_[index];
  auto it = std::lower_bound(chunk.items.begin(), chunk.items.end(), id, item_less);
  if (it == chunk.items.end() || it->id != id) return;
  chunk.items.erase(it);
  chunk.dirty = true;
  --size_;
  if (chunk.items.empty()) chunks_.erase(chunks_.begin() + static_cast<std::ptrdiff_t>(index));
}

void JsonList::assign(std::vector<std::pair<std::string, std::string>> items) {
  chunks_.clear();
  size_ = items.size();
  // Full chunks: a bulk load (first sync, resync) is followed by steady updates, and splits create room.
  for (size_t i = 0; i < items.size(); i += kMaxChunk) {
    Chunk chunk;
    const size_t end = std::min(items.size(), i + kMaxChunk);
    chunk.items.reserve(end - i);
    for (size_t j = i; j < end; ++j) chunk.items.push_back({std::move(items[j].first), std::move(items[j].second)});
    chunks_.push_back(std::move(chunk));
  }
}

void JsonList::rebuild(Chunk& chunk) {
  size_t total = chunk.items.size();
  for (const auto& item : chunk.items) total += item.fragment.size();
  chunk.text.clear();
  chunk.text.reserve(total);
  bool first = true;
  for (const auto& item : chunk.items) {
    if (!first) chunk.text += ',';
    first = false;
    chunk.text += item.fragment;
  }
  chunk.dirty = false;
}

size_t JsonList::text_size() {
  size_t total = chunks_.empty() ? 0 : chunks_.size() - 1;
  for (auto& chunk : chunks_) {
    if (chunk.dirty) rebuild(chunk);
    total += chunk.text.size();
  }
  return total;
}

void JsonList::append_to(std::string& out) {
  bool first = true;
  for (auto& chunk : chunks_) {
    if (chunk.dirty) rebuild(chunk);
    if (!first) out += ',';
    first = false;
    out += chunk.text;
  }
}

}  // namespace sidecar::output
