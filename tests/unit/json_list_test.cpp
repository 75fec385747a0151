#include "agent/output/json_list.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "agent/core/instance.hpp"
#include "agent/core/manifest.hpp"
#include "agent/output/render.hpp"

namespace sidecar::output {
namespace {

std::string joined(const std::map<std::string, std::string>& model) {
  std::string out;
  for (const auto& [id, fragment] : model) {
    if (!out.empty()) out += ',';
    out += fragment;
  }
  return out;
}

std::string text_of(JsonList& list) {
  std::string out;
  list.append_to(out);
  EXPECT_EQ(out.size(), list.text_size());
  return out;
}

TEST(JsonList, EmptyListAppendsNothing) {
  JsonList list;
  EXPECT_EQ(text_of(list), "");
  list.erase("absent");
  EXPECT_EQ(list.size(), 0u);
}

TEST(JsonList, KeepsIdOrderWhateverTheInsertOrder) {
  JsonList list;
  list.upsert("b", "B");
  list.upsert("c", "C");
  list.upsert("a", "A");
  EXPECT_EQ(text_of(list), "A,B,C");
  list.upsert("b", "B2");
  EXPECT_EQ(text_of(list), "A,B2,C");
  list.erase("a");
  EXPECT_EQ(text_of(list), "B2,C");
  EXPECT_EQ(list.size(), 2u);
}

// Random upserts and erases across many chunk splits and removals, checked against a std::map model after
// every step: the chunked text must always equal the plain id-ordered join.
TEST(JsonList, MatchesAPlainOrderedJoinUnderRandomChurn) {
  std::mt19937 rng(12345);
  JsonList list;
  std::map<std::string, std::string> model;
  for (int step = 0; step < 6000; ++step) {
    const std::string id = "i" + std::to_string(rng() % 700);
    if (rng() % 4 == 0) {
      list.erase(id);
      model.erase(id);
    } else {
      const std::string fragment = "{" + id + ":" + std::to_string(step) + "}";
      list.upsert(id, fragment);
      model[id] = fragment;
    }
    ASSERT_EQ(list.size(), model.size()) << "step " << step;
    if (step % 7 == 0) ASSERT_EQ(text_of(list), joined(model)) << "step " << step;
  }
  EXPECT_EQ(text_of(list), joined(model));
}

TEST(JsonList, AssignThenUpdateMatchesModel) {
  std::vector<std::pair<std::string, std::string>> items;
  std::map<std::string, std::string> model;
  for (int i = 0; i < 1000; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "n%04d", i);
    items.emplace_back(id, std::string("F") + id);
    model[id] = std::string("F") + id;
  }
  JsonList list;
  list.assign(items);
  EXPECT_EQ(text_of(list), joined(model));
  list.upsert("n0500a", "X");
  model["n0500a"] = "X";
  list.erase("n0000");
  model.erase("n0000");
  list.upsert("a", "first");
  model["a"] = "first";
  EXPECT_EQ(text_of(list), joined(model));
}

TEST(JsonList, RenderJsonListIsByteIdenticalToRender) {
  std::vector<core::Instance> storage;
  for (int i = 0; i < 300; ++i) {
    core::Instance inst;
    inst.id = "id-" + std::to_string(i);
    inst.address = "10.0.0." + std::to_string(i % 250);
    inst.port = 1000 + i;
    inst.metadata_json = i % 3 == 0 ? R"({"zone":"a"})" : "{}";
    storage.push_back(inst);
  }
  std::vector<const core::Instance*> pointers;
  JsonList list;
  for (const auto& inst : storage) {
    pointers.push_back(&inst);
    list.upsert(inst.id, json_fragment(inst));
  }
  core::DiscoverSpec spec;
  spec.format = core::OutputFormat::kJson;
  auto expected = render(spec, "svc", 42, pointers, "");
  ASSERT_TRUE(expected.ok());
  std::string out = "stale bytes from an earlier write";
  render_json_list(out, "svc", 42, list);
  EXPECT_EQ(out, expected.bytes);

  JsonList empty;
  auto expected_empty = render(spec, "svc", 7, {}, "");
  render_json_list(out, "svc", 7, empty);
  EXPECT_EQ(out, expected_empty.bytes);
}

}  // namespace
}  // namespace sidecar::output
