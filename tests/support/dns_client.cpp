#include "tests/support/dns_client.hpp"

#include <algorithm>
#include <chrono>
#include <sstream>

namespace sidecar::test {

CaptureResult dig(std::uint16_t port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"dig", "@127.0.0.1", "-p", std::to_string(port), "+norec", "+time=2", "+tries=1"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_and_capture(argv, std::chrono::seconds(20));
}

std::vector<std::string> dig_short(std::uint16_t port, const std::string& name, const std::string& type) {
  const CaptureResult r = dig(port, {name, type, "+short"});
  std::vector<std::string> lines;
  std::istringstream in(r.output);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace sidecar::test
