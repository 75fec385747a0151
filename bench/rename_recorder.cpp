#include "bench/rename_recorder.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace sidecar::bench {

std::unique_ptr<RenameRecorder> RenameRecorder::start(const std::filesystem::path& dir, std::string file_name,
                                                      std::string* error) {
  const int inotify_fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd < 0) {
    *error = std::string("inotify_init1: ") + std::strerror(errno);
    return nullptr;
  }
  if (::inotify_add_watch(inotify_fd, dir.c_str(), IN_MOVED_TO) < 0) {
    *error = "inotify_add_watch " + dir.string() + ": " + std::strerror(errno);
    ::close(inotify_fd);
    return nullptr;
  }
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    ::close(inotify_fd);
    return nullptr;
  }
  std::unique_ptr<RenameRecorder> recorder(new RenameRecorder(inotify_fd, stop_fd, std::move(file_name)));
  recorder->reader_ = std::thread([r = recorder.get()] { r->run(); });
  return recorder;
}

RenameRecorder::RenameRecorder(int inotify_fd, int stop_fd, std::string file_name)
    : inotify_fd_(inotify_fd), stop_fd_(stop_fd), file_name_(std::move(file_name)) {}

RenameRecorder::~RenameRecorder() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
  if (reader_.joinable()) reader_.join();
  ::close(inotify_fd_);
  ::close(stop_fd_);
}

void RenameRecorder::run() {
  alignas(struct inotify_event) char buffer[64 * 1024];
  while (true) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const ssize_t n = ::read(inotify_fd_, buffer, sizeof buffer);
    // One timestamp per read: the events of one read arrived together, and the clock is taken as soon as
    // the kernel hands them over, which is as close to the rename as user space gets.
    const auto now = Clock::now();
    if (n <= 0) continue;
    std::lock_guard lock(mu_);
    for (ssize_t offset = 0; offset < n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + offset);
      if (event->mask & IN_Q_OVERFLOW) overflowed_ = true;
      if ((event->mask & IN_MOVED_TO) && event->len > 0 && file_name_ == event->name) times_.push_back(now);
      offset += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
    }
    cv_.notify_all();
  }
}

std::size_t RenameRecorder::count() const {
  std::lock_guard lock(mu_);
  return times_.size();
}

std::optional<RenameRecorder::Clock::time_point> RenameRecorder::time_of(std::size_t index) const {
  std::lock_guard lock(mu_);
  if (index >= times_.size()) return std::nullopt;
  return times_[index];
}

std::optional<RenameRecorder::Clock::time_point> RenameRecorder::last() const {
  std::lock_guard lock(mu_);
  if (times_.empty()) return std::nullopt;
  return times_.back();
}

std::optional<RenameRecorder::Clock::time_point> RenameRecorder::wait_for(std::size_t index,
                                                                          std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return times_.size() > index; })) return std::nullopt;
  return times_[index];
}

bool RenameRecorder::overflowed() const {
  std::lock_guard lock(mu_);
  return overflowed_;
}

}  // namespace sidecar::bench
