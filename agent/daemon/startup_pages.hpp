// Idle memory: the pages of the program and its shared libraries that only start-up touched (manifest
// parsing, gRPC/OpenSSL/abseil initialisation, fault-around windows of 64 KiB around each first touch) stay
// mapped and count in RSS for the agent's whole life: 17.8 MB with Debian's shared libraries, of which
// ~15 MB are clean file pages. Once the agent is ready they are unmapped from this process (MADV_DONTNEED on
// read-only file mappings that hold no copied-on-write page); what the idle agent still runs faults back in
// from the page cache (minor faults, no I/O): RSS settles at ~8 MB, 9 MB after serving /readyz and /metrics.
// Measured in BENCHMARKS.md. The kernel could drop these pages itself under memory pressure; this only does
// it before anyone has to ask.
#pragma once

#include <cstddef>

namespace sidecar::daemon {

struct ReleasedPages {
  size_t mappings = 0;     // file mappings advised
  size_t resident_kb = 0;  // their resident size before
};

// Reads /proc/self/smaps; advises only mappings that are backed by a file, not writable, and have no
// anonymous (copied-on-write, e.g. relocated RELRO) page, so nothing the process changed can be lost.
ReleasedPages release_clean_file_pages();

// Allocations of 1 MiB and more (a rendered file of thousands of instances, a page of a paged Range) get
// their own mapping and go back to the kernel when freed. glibc's default raises that threshold to the
// size of the last such block freed (up to 32 MiB), after which a 7 MB file buffer lives in the heap and
// its pages stay resident after free. Called once at start, before anything big is allocated.
void set_large_allocations_unmapped_on_free();

}  // namespace sidecar::daemon
