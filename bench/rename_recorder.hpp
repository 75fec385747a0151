// Owns: an inotify watch on one directory and a reader thread that timestamps every rename onto one file.
// Thread: the reader runs on its own thread; every public method is thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sidecar::bench {

// The agent replaces an output file by renaming a temp file over it, so IN_MOVED_TO for the file's name is
// the moment a reader could first see the new content: that is what "file updated" means in the bench.
class RenameRecorder {
 public:
  using Clock = std::chrono::steady_clock;

  // nullptr (with `error` set) when inotify cannot watch `dir`.
  static std::unique_ptr<RenameRecorder> start(const std::filesystem::path& dir, std::string file_name,
                                               std::string* error);
  ~RenameRecorder();  // stops and joins the reader
  RenameRecorder(const RenameRecorder&) = delete;
  RenameRecorder& operator=(const RenameRecorder&) = delete;

  std::size_t count() const;
  // Receive time of the index-th rename (0-based); nullopt if there are not that many yet.
  std::optional<Clock::time_point> time_of(std::size_t index) const;
  std::optional<Clock::time_point> last() const;
  // Waits until more than `index` renames were seen; the time of rename `index`, or nullopt on timeout.
  std::optional<Clock::time_point> wait_for(std::size_t index, std::chrono::milliseconds timeout) const;
  // The kernel dropped events (IN_Q_OVERFLOW): counts are a lower bound from then on.
  bool overflowed() const;

 private:
  RenameRecorder(int inotify_fd, int stop_fd, std::string file_name);
  void run();

  int inotify_fd_;
  int stop_fd_;  // eventfd: wakes the reader out of poll() for shutdown
  std::string file_name_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Clock::time_point> times_;
  bool overflowed_ = false;
  std::thread reader_;
};

}  // namespace sidecar::bench
