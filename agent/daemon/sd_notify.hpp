// Owns: the systemd notification socket protocol (READY=1, STOPPING=1, ...), written by hand: ~30 lines
// instead of a libsystemd dependency.
// Thread: any; each call opens, sends and closes its own datagram socket.
#pragma once

#include <string>

namespace sidecar::daemon {

// Sends `state` to $NOTIFY_SOCKET. Returns false when the variable is unset or the send failed; both are
// normal outside systemd, so callers ignore the result.
bool sd_notify(const std::string& state);

}  // namespace sidecar::daemon
