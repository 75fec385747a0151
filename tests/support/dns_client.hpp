// Owns: asking an agent's DNS view with dig, as the DNS integration and fault tests do.
// Thread: the test's main thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace sidecar::test {

// `dig @127.0.0.1 -p <port> +norec +time=2 +tries=1 <args...>`; its exit code and output.
CaptureResult dig(std::uint16_t port, const std::vector<std::string>& args);
// The sorted, non-empty lines of `dig +short <name> <type>` (addresses, SRV data, CNAME targets).
std::vector<std::string> dig_short(std::uint16_t port, const std::string& name, const std::string& type = "A");

}  // namespace sidecar::test
