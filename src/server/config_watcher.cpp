#include "server/config_watcher.h"

#include "common/log.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace spillway::server {

namespace asio = boost::asio;

namespace {

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

config_watcher::config_watcher(asio::io_context& io, const std::string& path, std::function<void()> on_change,
                               std::chrono::milliseconds quiet)
    : io_(io),
      path_(path),
      dir_(directory_of(path)),
      on_change_(std::move(on_change)),
      quiet_(quiet),
      events_(io),
      debounce_(io) {}

config_watcher::~config_watcher() { stop(); }

bool config_watcher::start() {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    log::warn("config watch: inotify unavailable ({}); SIGHUP and POST /reload still work", std::strerror(errno));
    return false;
  }
  // Every way a file can change in a directory: written in place, created, renamed in or out
  // (editors, `..data` symlink swaps), deleted, or its attributes changed.
  const auto mask = IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_MODIFY;
  if (::inotify_add_watch(fd, dir_.c_str(), mask) < 0) {
    log::warn("config watch: cannot watch {} ({}); SIGHUP and POST /reload still work", dir_, std::strerror(errno));
    ::close(fd);
    return false;
  }
  events_.assign(fd);
  watch_target_dir();
  asio::co_spawn(io_, read_events(), asio::detached);
  log::info("config watch: watching {} for changes", dir_);
  return true;
}

void config_watcher::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  events_.close(ec);
  debounce_.cancel();
}

void config_watcher::watch_target_dir() {
  char resolved[PATH_MAX];
  if (::realpath(path_.c_str(), resolved) == nullptr) {
    return;  // gone for the moment (mid-swap): the next event re-aims
  }
  std::string target = directory_of(resolved);
  char dir_resolved[PATH_MAX];
  if (::realpath(dir_.c_str(), dir_resolved) != nullptr && target == dir_resolved) {
    target.clear();  // the file lives right in the watched directory
  }
  if (target == target_dir_) {
    return;
  }
  if (target_watch_ >= 0) {
    ::inotify_rm_watch(events_.native_handle(), target_watch_);
    target_watch_ = -1;
  }
  target_dir_ = target;
  if (!target.empty()) {
    target_watch_ = ::inotify_add_watch(
        events_.native_handle(), target.c_str(),
        IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_MODIFY);
  }
}

asio::awaitable<void> config_watcher::read_events() {
  alignas(inotify_event) std::array<char, 8192> buf;
  while (!stopped_) {
    auto [ec, n] = co_await events_.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    if (ec || stopped_) {
      co_return;
    }
    (void)n;
    // Which file changed does not matter here: the reload compares content, and a symlink swap
    // changes a name that is not the config file's. Each event pushes the quiet period back.
    debounce_.expires_after(quiet_);
    debounce_.async_wait([this](boost::system::error_code wait_ec) {
      if (!wait_ec && !stopped_) {
        watch_target_dir();
        on_change_();
      }
    });
  }
}

}  // namespace spillway::server
