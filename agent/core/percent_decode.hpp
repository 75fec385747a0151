// Owns: decoding URL query text (application/x-www-form-urlencoded), shared by the admin routes and the
//       selector's query parameters.
// Thread: pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sidecar::core {

// What to do with a '%' not followed by two hex digits.
enum class BadEscape {
  kKeep,  // keep it as written (the admin routes: a lenient reader of ids and reasons)
  kFail,  // the whole text is refused (selector queries: a mistake is reported, not guessed at)
};

// '+' is a space and %XX a byte, as browsers and curl --data-urlencode write them. nullopt only with
// BadEscape::kFail and a bad escape.
std::optional<std::string> percent_decode(std::string_view text, BadEscape bad);

}  // namespace sidecar::core
