// Fuzz target: a sequence of watch responses (snapshots, events, progress) fed to the endpoint set.
// Every byte sequence decodes to operations over a small pool of keys, so the same keys are put, deleted,
// replayed and resynced many times. After every operation the set's counters must agree with its content.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/core/endpoint_set.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace core = sidecar::core;

namespace {

// Reads bytes from the input; zeros once it is exhausted.
struct Reader {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos = 0;
  bool done() const { return pos >= size; }
  std::uint8_t byte() { return pos < size ? data[pos++] : 0; }
};

constexpr int kPool = 8;

std::string key_for(std::uint8_t b) {
  switch (b % 11) {
    case 8: return "/services/svc";          // the prefix without the slash: foreign
    case 9: return "/services/svc/";         // the prefix itself: foreign
    case 10: return "/services/svc-other/x"; // a sibling service: foreign
    default: return "/services/svc/id" + std::to_string(b % kPool) + (b & 0x80 ? "/nested" : "");
  }
}

std::string value_for(Reader& r) {
  const std::uint8_t b = r.byte();
  const int port = 1 + r.byte() * 250 + (b & 7);
  switch (b % 6) {
    case 0: return R"({"address":"10.0.0.1","port":)" + std::to_string(port) + "}";
    case 1: return R"({"Op":0,"Addr":"[::1]:)" + std::to_string(port) + R"(","Metadata":{"z":1}})";
    case 2: return R"({"Op":1,"Addr":"10.0.0.2:80"})";  // etcd endpoints delete marker
    case 3: return "garbage";
    case 4: return "";
    default: {
      // A few raw bytes from the input.
      std::string raw;
      for (int n = r.byte() % 16; n > 0 && !r.done(); --n) raw += static_cast<char>(r.byte());
      return raw;
    }
  }
}

void check(const core::EndpointSet& set) {
  std::size_t valid = 0;
  std::size_t invalid = 0;
  for (int i = 0; i < kPool; ++i) {
    for (const char* suffix : {"", "/nested"}) {
      const std::string id = "id" + std::to_string(i) + suffix;
      const core::Instance* inst = set.find(id);
      FUZZ_CHECK((inst != nullptr) == set.contains(id));
      if (!inst) continue;
      FUZZ_CHECK(inst->id == id);
      if (inst->valid()) {
        ++valid;
        FUZZ_CHECK(inst->port >= 1 && inst->port <= 65535);
      } else {
        ++invalid;
      }
    }
  }
  FUZZ_CHECK(set.size() == valid);
  FUZZ_CHECK(set.invalid_count() == invalid);
  const auto sorted = set.sorted();
  FUZZ_CHECK(sorted.size() == valid);
  for (std::size_t i = 1; i < sorted.size(); ++i) FUZZ_CHECK(sorted[i - 1]->id < sorted[i]->id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader r{data, size};
  core::EndpointSet set("/services/svc");
  FUZZ_CHECK(set.key_prefix() == "/services/svc/");
  std::int64_t rev = 1;
  while (!r.done()) {
    const std::uint8_t op = r.byte();
    const std::int64_t before = set.revision();
    switch (op % 5) {
      case 0: {  // a Range snapshot (resync); keys may repeat, as nothing in the type forbids it
        std::vector<core::KvInput> snapshot;
        for (int n = r.byte() % 6; n > 0; --n) {
          core::KvInput kv;
          kv.key = key_for(r.byte());
          kv.value = value_for(r);
          kv.mod_revision = rev - r.byte() % 4;
          snapshot.push_back(std::move(kv));
        }
        rev += r.byte() % 3;
        set.reset(std::move(snapshot), rev);
        FUZZ_CHECK(set.revision() == rev);
        break;
      }
      case 1:
      case 2: {  // a put event; revisions mostly increase, sometimes replay an older one
        core::EventInput ev;
        ev.kv.key = key_for(r.byte());
        ev.kv.value = value_for(r);
        const std::uint8_t jump = r.byte();
        rev += jump % 4;
        ev.kv.mod_revision = jump & 0x80 ? rev - jump % 8 : rev;
        const auto result = set.apply(ev);
        if (result.foreign) {
          FUZZ_CHECK(set.revision() == before);
        } else if (!result.duplicate) {
          FUZZ_CHECK(set.revision() == std::max(before, ev.kv.mod_revision));
          const auto parsed = core::parse_instance_value(result.id, ev.kv.value);
          if (parsed.kind == core::ParsedValue::Kind::kDeleteMarker) {
            FUZZ_CHECK(!set.contains(result.id));
          } else {
            FUZZ_CHECK(set.contains(result.id));
            FUZZ_CHECK(set.find(result.id)->valid() == !result.invalid);
          }
        }
        break;
      }
      case 3: {  // a delete event
        core::EventInput ev;
        ev.type = core::EventInput::Type::kDelete;
        ev.kv.key = key_for(r.byte());
        rev += r.byte() % 3;
        ev.kv.mod_revision = rev;
        const auto result = set.apply(ev);
        if (!result.foreign && !result.duplicate) FUZZ_CHECK(!set.contains(result.id));
        break;
      }
      case 4: {  // a progress notification
        rev += r.byte() % 3;
        set.advance_revision(rev);
        FUZZ_CHECK(set.revision() >= before);
        break;
      }
    }
    check(set);
  }
  return 0;
}
