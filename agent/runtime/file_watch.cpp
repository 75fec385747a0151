#include "agent/runtime/file_watch.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>


namespace sidecar::runtime {

namespace {

constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM;

}  // namespace

std::unique_ptr<FileWatch> FileWatch::create(asio::io_context& io, const std::string& path,
                                             std::chrono::milliseconds settle, std::function<void()> on_change,
                                             std::string* error) {
  const std::filesystem::path file(path);
  std::filesystem::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    *error = std::string("inotify_init1: ") + std::strerror(errno);
    return nullptr;
  }
  if (::inotify_add_watch(fd, dir.c_str(), kMask) < 0) {
    *error = "inotify_add_watch " + dir.string() + ": " + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<FileWatch>(new FileWatch(io, fd, file.filename().string(), settle, std::move(on_change)));
}

FileWatch::FileWatch(asio::io_context& io, int fd, std::string name, std::chrono::milliseconds settle,
                     std::function<void()> on_change)
    : io_(io), stream_(io, fd), name_(std::move(name)), settle_(settle), on_change_(std::move(on_change)), timer_(io),
      scope_(io, "file watch " + name_) {}

FileWatch::~FileWatch() = default;

void FileWatch::start() {
  scope_.spawn("read", read_loop());
  scope_.spawn("settle", settle_loop());
}

void FileWatch::stop() {
  stopping_ = true;
  boost::system::error_code ignored;
  stream_.cancel(ignored);
  timer_.cancel();
}

asio::awaitable<void> FileWatch::read_loop() {
  alignas(struct inotify_event) char buffer[8192];
  while (!stopping_) {
    boost::system::error_code ec;
    co_await stream_.async_wait(asio::posix::stream_descriptor::wait_read,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec || stopping_) co_return;
    const ssize_t n = ::read(stream_.native_handle(), buffer, sizeof buffer);
    if (n <= 0) continue;  // EAGAIN: another reader raced us; nothing to lose, events are only hints
    bool relevant = false;
    for (ssize_t offset = 0; offset < n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + offset);
      if (event->mask & IN_Q_OVERFLOW) relevant = true;  // lost events: assume ours was among them
      if (event->len > 0) {
        const std::string_view name(event->name);
        if (name == name_ || name == "..data") relevant = true;
      }
      offset += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
    }
    if (relevant) {
      due_ = std::chrono::steady_clock::now() + settle_;
      timer_.cancel();
    }
  }
}

asio::awaitable<void> FileWatch::settle_loop() {
  while (!stopping_) {
    timer_.expires_at(due_ ? *due_ : std::chrono::steady_clock::time_point::max());
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_) co_return;
    if (!due_ || std::chrono::steady_clock::now() < *due_) continue;  // moved later by a newer event
    due_.reset();
    on_change_();
  }
}

}  // namespace sidecar::runtime
