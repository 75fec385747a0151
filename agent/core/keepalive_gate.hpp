// Owns: the one-write-at-a-time rule of the LeaseKeepAlive stream, and a keepalive owed because it could
//       not go out (a write pending, or no stream), so it is sent as soon as the stream can take it.
// Thread: pure; the registrar calls it on the io_context thread and executes what it answers.
#pragma once

#include <cstdint>
#include <optional>

namespace sidecar::core {

class KeepaliveGate {
 public:
  // Registration wants a keepalive for `lease` now. True: write it now (the gate counts it in flight).
  // False: it is owed, and sent when the write in flight completes or the stream comes back, instead of
  // waiting a whole TTL/3 for the next tick.
  bool request(int64_t lease);
  // The write in flight completed (ok or not). The lease to write now if one is owed, else nullopt.
  std::optional<int64_t> on_write_done();
  // A new stream is up with nothing in flight. An owed keepalive is forgotten: Registration::on_reconnected
  // asks for one at once on every new stream (for the current lease), so sending the owed one too would
  // only put a second write behind it.
  void on_stream_up();
  // The stream is gone: what was in flight is lost, and anything asked for from now on is owed.
  void on_stream_down();

  bool write_pending() const { return write_pending_; }
  std::optional<int64_t> owed() const { return owed_; }

 private:
  bool stream_up_ = false;
  bool write_pending_ = false;
  std::optional<int64_t> owed_;  // the newest lease asked for while nothing could be written
};

}  // namespace sidecar::core
