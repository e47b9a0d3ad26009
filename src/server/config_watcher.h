#pragma once
// Watches the config file through its directory (inotify), so that editors that write a new file
// and rename it over the old one, and Kubernetes ConfigMap updates (a `..data` symlink swap), are
// seen as well as in-place writes. Events are debounced: a burst of them (or a file written in
// several steps) gives one callback once the directory has been quiet for `quiet`.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace spillway::server {

class config_watcher {
 public:
  // Control thread. `on_change` runs on the control thread.
  config_watcher(boost::asio::io_context& io, const std::string& path, std::function<void()> on_change,
                 std::chrono::milliseconds quiet = std::chrono::milliseconds(300));
  ~config_watcher();

  // Starts watching; returns false (and logs why) when inotify is not available.
  bool start();
  void stop();

 private:
  boost::asio::awaitable<void> read_events();
  // Watches the directory the config file really lives in (behind symlinks) too, so that an
  // in-place edit or rename there is seen; re-aimed after every change, since a symlink swap moves it.
  void watch_target_dir();

  boost::asio::io_context& io_;
  std::string path_;
  std::string dir_;
  std::string target_dir_;
  int target_watch_ = -1;
  std::function<void()> on_change_;
  std::chrono::milliseconds quiet_;
  boost::asio::posix::stream_descriptor events_;
  boost::asio::steady_timer debounce_;
  bool stopped_ = false;
};

}  // namespace spillway::server
