// Owns: libdnssec's TSIG entry points for the fully static build only (SIDECAR_STATIC_DEPS, the minimal
//       container image), where libknot.a's packet code references them; built by CMakeLists.txt there alone.
// Thread: any; no state.
//
// Why: Debian ships libknot.a and libdnssec.a, but libdnssec's TSIG needs GnuTLS, whose archive needs
// p11-kit and libunistring, which Debian ships only as shared libraries. The agent never signs or verifies
// TSIG (it answers an unauthenticated local resolver), so every algorithm is "unknown" here: a query that
// carries a TSIG record fails libknot's checks and is dropped as malformed, as any query we cannot
// answer correctly is. The dynamic build links the real libdnssec and never compiles this file.
// libdnssec's headers declare C functions without extern "C" guards of their own.
extern "C" {
#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/tsig.h>

dnssec_tsig_algorithm_t dnssec_tsig_algorithm_from_dname(const uint8_t*) { return DNSSEC_TSIG_UNKNOWN; }

const uint8_t* dnssec_tsig_algorithm_to_dname(dnssec_tsig_algorithm_t) { return nullptr; }

size_t dnssec_tsig_algorithm_size(dnssec_tsig_algorithm_t) { return 0; }

int dnssec_tsig_new(dnssec_tsig_ctx_t** ctx, dnssec_tsig_algorithm_t, const dnssec_binary_t*) {
  if (ctx != nullptr) *ctx = nullptr;
  return DNSSEC_INVALID_KEY_ALGORITHM;
}

void dnssec_tsig_free(dnssec_tsig_ctx_t*) {}

int dnssec_tsig_add(dnssec_tsig_ctx_t*, const dnssec_binary_t*) { return DNSSEC_INVALID_KEY_ALGORITHM; }

size_t dnssec_tsig_size(dnssec_tsig_ctx_t*) { return 0; }

int dnssec_tsig_write(dnssec_tsig_ctx_t*, uint8_t*) { return DNSSEC_INVALID_KEY_ALGORITHM; }

}  // extern "C"
