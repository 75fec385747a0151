// Owns: FUZZ_CHECK, the property assertion of the fuzz targets.
// Thread: any.
#pragma once

#include <cstdio>
#include <cstdlib>

// A violated property aborts, so libFuzzer records the input as a crash and the corpus replay fails.
// Not assert(): it must stay active in release and RelWithDebInfo builds.
#define FUZZ_CHECK(cond)                                                                      \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);     \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)
