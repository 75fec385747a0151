// Owns: an inotify watch on the directory of one file, reporting when the file may have new content.
// Thread: io_context thread (the inotify fd is read by a coroutine on it).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime {

namespace asio = boost::asio;

// Why the directory and not the file: editors and Kubernetes replace files instead of writing them. A
// ConfigMap volume holds `manifest.yaml -> ..data/manifest.yaml` and `..data -> ..<timestamp>`; an update
// writes a new timestamped directory and renames a new `..data` symlink over the old one, so the file's
// own inode never changes and a watch on it would never fire. Watching the directory for the file's name
// and for `..data` catches both that swap and an editor's rename or in-place write.
//
// Events are debounced (`settle`): a burst (an editor's temp file dance, the ConfigMap swap's several
// steps) yields one callback after it has been quiet that long.
class FileWatch {
 public:
  // nullptr with `*error` set when inotify cannot be set up (e.g. the directory does not exist).
  static std::unique_ptr<FileWatch> create(asio::io_context& io, const std::string& path,
                                           std::chrono::milliseconds settle, std::function<void()> on_change,
                                           std::string* error);
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  void start();
  void stop();
  // Completes once both loops have ended (after stop()).
  asio::awaitable<void> join() { return scope_.join(); }

 private:
  FileWatch(asio::io_context& io, int fd, std::string name, std::chrono::milliseconds settle,
            std::function<void()> on_change);
  asio::awaitable<void> read_loop();
  asio::awaitable<void> settle_loop();

  asio::io_context& io_;
  asio::posix::stream_descriptor stream_;
  std::string name_;  // the file's name in its directory
  std::chrono::milliseconds settle_;
  std::function<void()> on_change_;
  asio::steady_timer timer_;
  std::optional<std::chrono::steady_clock::time_point> due_;
  bool stopping_ = false;
  TaskScope scope_;  // last: the loops use the members above
};

}  // namespace sidecar::runtime
