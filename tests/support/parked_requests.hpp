// Owns: many loopback HTTP requests held open at once (blocking queries, event streams) and the bytes each
//       receives until the server closes it; the test and bench side of http.max_waiters.
// Thread: not thread-safe; one thread opens, drains and destroys.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sidecar::test {

class ParkedRequests {
 public:
  struct Request {
    int fd = -1;
    std::string received;
    bool closed = false;  // the server closed (or reset) it
  };

  ParkedRequests() = default;
  ~ParkedRequests();  // closes what is still open
  ParkedRequests(const ParkedRequests&) = delete;
  ParkedRequests& operator=(const ParkedRequests&) = delete;

  // Connects to 127.0.0.1:`port` and sends `request` whole; false (errno set) when either fails.
  bool open(std::uint16_t port, std::string_view request);
  // Reads from every open request until all are closed or `timeout` passes; how many are still open.
  size_t drain_until_closed(std::chrono::milliseconds timeout);
  // Reads what has arrived on request `i` so far, without waiting.
  void read_available(size_t i);
  void close(size_t i);

  size_t size() const { return requests_.size(); }
  const Request& operator[](size_t i) const { return requests_[i]; }
  const std::vector<Request>& requests() const { return requests_; }

 private:
  // Appends what is readable now; false once the peer closed.
  bool read_now(Request& r);
  std::vector<Request> requests_;
  size_t open_ = 0;
};

// Sets this process's soft RLIMIT_NOFILE to its hard limit; the soft limit now.
std::uint64_t raise_open_file_limit();

}  // namespace sidecar::test
