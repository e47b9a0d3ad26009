#pragma once
// Watches the config file so that a change is applied without a signal, whatever else lives in its
// directory (an access log written on every request must not hold a reload back).
//
// Two ways of seeing a change, each enough on its own:
// - inotify on every directory that holds a name on the file's path: the file itself, and each
//   symlink met while resolving it (Kubernetes' `spillway.yaml -> ..data/spillway.yaml`,
//   `..data -> ..2026_12_01_xxx`). Only events that carry one of those names count, so an in-place
//   write (when the writer closes the file), an editor's rename-over and a `..data` swap are seen,
//   and a busy neighbour is not; its writes do not even wake the watcher (no IN_MODIFY).
//   Events are debounced (`quiet` after the last one), but never for longer than `max_defer` after
//   the first one of a burst, so a file that keeps changing is still read.
// - a poll every `poll` that compares the resolved file's identity (device, inode, size, mtime,
//   ctime) with the one seen last: a lost or coalesced event, an inotify queue overflow, or a link
//   swapped above the watched directories is caught within one poll period (plus `quiet`).
// Neither reads the file: the callback does, and skips content that already runs or was refused,
// so a change seen both ways is reloaded once.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace spillway::server {

// How a change came to be noticed (the `trigger` label of the reload counters).
enum class change_seen { event, poll };

class config_watcher {
 public:
  struct timing {
    std::chrono::milliseconds quiet{300};       // debounce: quiet time after the last event
    std::chrono::milliseconds max_defer{1000};  // bound on a debounce, from a burst's first event
    std::chrono::milliseconds poll{2000};       // identity poll period
  };

  // Control thread. `on_change` runs on the control thread, once per debounced change.
  config_watcher(boost::asio::io_context& io, const std::string& path, std::function<void(change_seen)> on_change,
                 timing t);
  config_watcher(boost::asio::io_context& io, const std::string& path, std::function<void(change_seen)> on_change)
      : config_watcher(io, path, std::move(on_change), timing{}) {}
  ~config_watcher();

  // Starts watching and polling; returns false (and logs why) when inotify is not available, in
  // which case the poll alone still runs.
  bool start();
  // Control thread; idempotent.
  void stop();

  // What identifies the file's content without reading it (all zero when it cannot be stat'ed).
  struct identity {
    unsigned long long dev = 0, ino = 0, size = 0;
    long long mtime_ns = 0, ctime_ns = 0;
    bool operator==(const identity&) const = default;
  };
  // The identity of the file `path` resolves to (symlinks followed). Any thread.
  static identity identify(const std::string& path);
  // The (directory, name) pairs met while resolving `path`: its own name in its (physical)
  // directory, every symlink on the way, and the final name. Any thread.
  static std::vector<std::pair<std::string, std::string>> names_on_path(const std::string& path);
  // How many times inotify woke the watcher with events (relevant or not). Control thread.
  std::uint64_t event_reads() const { return event_reads_; }

 private:
  boost::asio::awaitable<void> read_events();
  // Whether a read of `n` bytes of inotify events names the file or a link on its path (or says
  // events were lost); forgets the watches of directories that went away.
  bool relevant(const char* buf, std::size_t n);
  // Re-aims the inotify watches at the directories of names_on_path(); called after each change,
  // since a symlink swap moves them.
  void aim();
  // A change was noticed: (re)arms the debounce, bounded by max_defer from the burst's start.
  void noticed(change_seen how);
  void poll_tick();

  boost::asio::io_context& io_;
  std::string path_;
  std::function<void(change_seen)> on_change_;
  timing timing_;
  boost::asio::posix::stream_descriptor events_;
  boost::asio::steady_timer debounce_;
  boost::asio::steady_timer poll_;
  std::map<std::string, int> watch_of_;            // watched directory -> watch descriptor
  std::map<int, std::set<std::string>> names_of_;  // watch descriptor -> names that matter in it
  bool burst_ = false;                             // a debounce is pending
  bool burst_has_event_ = false;                   // ... and an inotify event is part of it
  std::chrono::steady_clock::time_point burst_start_;
  identity seen_;  // identity when the last change was handed on (or at start)
  bool stopped_ = false;
  std::uint64_t event_reads_ = 0;
};

}  // namespace spillway::server
