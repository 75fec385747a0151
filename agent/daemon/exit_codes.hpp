// Owns: the process exit codes (sysexits.h values), so scripts and systemd can tell failures apart.
// Thread: constants only.
#pragma once

namespace sidecar::daemon {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // a second signal forced the exit before cleanup finished
inline constexpr int kExitUsage = 64;        // EX_USAGE: bad command line
inline constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: --dev could not start its local etcd
inline constexpr int kExitSoftware = 70;     // EX_SOFTWARE: internal error
// EX_TEMPFAIL: SIGQUIT handover — the lease and keys were left for a successor. The unit lists it in
// RestartForceExitStatus=, so systemd starts the (upgraded) binary at once and it adopts the lease.
inline constexpr int kExitHandover = 75;
inline constexpr int kExitConfig = 78;       // EX_CONFIG: the manifest is invalid

}  // namespace sidecar::daemon
