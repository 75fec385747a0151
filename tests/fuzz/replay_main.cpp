// The corpus replay driver: runs a fuzz target's LLVMFuzzerTestOneInput over every file in the given
// directories (or files), so the seed corpus and every crash ever found run as a unit test in the normal
// GCC build. A violated property aborts (FUZZ_CHECK), which fails the test and names the input.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

int replay(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::fprintf(stderr, "replay %s (%zu bytes)\n", file.c_str(), bytes.size());
  return LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg = argv[i];
    if (std::filesystem::is_directory(arg)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());  // deterministic order, so a failure is reproducible
      for (const auto& f : files) {
        replay(f);
        ++count;
      }
    } else {
      replay(arg);
      ++count;
    }
  }
  std::fprintf(stderr, "replayed %zu input(s)\n", count);
  // An empty corpus would make this test pass while proving nothing.
  return count > 0 ? 0 : 1;
}
