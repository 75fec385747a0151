// Owns: the JSON text of a discovered set's "instances" array, kept current one instance at a time.
// Thread: pure; used by one owner (a Discovery, on the io_context thread).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar::output {

// Why: with 10,000 instances, rendering the file walks 10,000 tree nodes and encodes 10,000 objects per
// write, and the tree walk alone (a cache miss per node) costs a millisecond. Here each instance's JSON
// fragment is encoded once, when it changes, and the fragments live in id-ordered chunks of contiguous
// text. A change re-joins one chunk of at most kMaxChunk fragments; a write concatenates the chunks, a
// sequential copy of the file's bytes.
//
// The result is byte-identical to joining every fragment in id order with ','.
class JsonList {
 public:
  static constexpr size_t kMaxChunk = 128;

  // Inserts or replaces `id`'s fragment.
  void upsert(std::string_view id, std::string fragment);
  // No-op when absent.
  void erase(std::string_view id);
  // Replaces everything with `items`, which must be sorted by id with no duplicates.
  void assign(std::vector<std::pair<std::string, std::string>> items);
  void clear() { chunks_.clear(); size_ = 0; }

  size_t size() const { return size_; }
  // Appends the fragments in id order, ','-separated, to `out`. Rebuilds the text of changed chunks.
  void append_to(std::string& out);
  // The number of bytes append_to adds (for an exact reserve).
  size_t text_size();

 private:
  struct Item {
    std::string id;
    std::string fragment;
  };
  struct Chunk {
    std::vector<Item> items;  // sorted by id, never empty
    std::string text;         // items' fragments joined with ','; valid unless dirty
    bool dirty = true;
  };

  // The chunk whose range holds `id`: the last chunk whose first id is <= id, else the first chunk.
  size_t chunk_for(std::string_view id) const;
  void rebuild(Chunk& chunk);

  std::vector<Chunk> chunks_;
  size_t size_ = 0;
};

}  // namespace sidecar::output
