#include "server/config_watcher.h"

#include "common/completion.h"
#include "common/log.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>

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

std::string join(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

// Every way a name can change in a directory: written in place (seen when the writer closes it),
// created, renamed in or out (editors, `..data` symlink swaps), deleted, or its attributes changed.
// Not IN_MODIFY: it comes with every write(2) to any file in the directory, so an access log beside
// the config (Spillway's own, even) would wake the control thread on every write only to be
// filtered out. A writer that keeps the config open without closing it is seen by the poll.
constexpr std::uint32_t watch_mask = IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB;

// Far more than any real chain; stops a symlink loop.
constexpr int max_link_hops = 40;

}  // namespace

config_watcher::config_watcher(asio::io_context& io, const std::string& path,
                               std::function<void(change_seen)> on_change, timing t)
    : io_(io), path_(path), on_change_(std::move(on_change)), timing_(t), events_(io), debounce_(io), poll_(io) {}

config_watcher::~config_watcher() { stop(); }

config_watcher::identity config_watcher::identify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return {};
  }
  identity id;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = static_cast<unsigned long long>(st.st_size);
  id.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
  id.ctime_ns = static_cast<long long>(st.st_ctim.tv_sec) * 1'000'000'000LL + st.st_ctim.tv_nsec;
  return id;
}

std::vector<std::pair<std::string, std::string>> config_watcher::names_on_path(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  // The file's own directory is taken as it resolves now: links above it (a parent directory that
  // is itself a symlink) are not watched; the poll catches a swap there.
  char resolved[PATH_MAX];
  std::string dir = directory_of(path);
  if (::realpath(dir.c_str(), resolved) == nullptr) {
    return out;
  }
  dir = resolved;
  auto slash = path.rfind('/');
  std::deque<std::string> rest{slash == std::string::npos ? path : path.substr(slash + 1)};
  int hops = 0;
  while (!rest.empty()) {
    std::string name = std::move(rest.front());
    rest.pop_front();
    if (name.empty() || name == ".") {
      continue;
    }
    if (name == "..") {
      dir = directory_of(dir);  // physical: `dir` is always a resolved directory
      continue;
    }
    const std::string full = join(dir, name);
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) {
      out.emplace_back(dir, name);  // missing for now (mid-swap): its creation is an event
      break;
    }
    if (S_ISLNK(st.st_mode)) {
      out.emplace_back(dir, name);
      std::array<char, PATH_MAX> target{};
      auto n = ::readlink(full.c_str(), target.data(), target.size() - 1);
      if (n <= 0 || ++hops > max_link_hops) {
        break;
      }
      std::string t(target.data(), static_cast<std::size_t>(n));
      if (t.front() == '/') {
        dir.assign(1, '/');  // (not `= "/"`: GCC 12 sees a false -Wrestrict there)
      }
      // The target's components come before what was left of the path.
      std::deque<std::string> parts;
      std::size_t start = 0;
      while (start <= t.size()) {
        auto end = t.find('/', start);
        if (end == std::string::npos) {
          end = t.size();
        }
        parts.push_back(t.substr(start, end - start));
        start = end + 1;
      }
      rest.insert(rest.begin(), parts.begin(), parts.end());
      continue;
    }
    if (rest.empty()) {
      out.emplace_back(dir, name);  // the file itself
    } else {
      dir = full;
    }
  }
  return out;
}

bool config_watcher::start() {
  seen_ = identify(path_);
  poll_tick();
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    log::warn("config watch: inotify unavailable ({}); polling every {} ms, SIGHUP and POST /reload still work",
              std::strerror(errno), timing_.poll.count());
    return false;
  }
  events_.assign(fd);
  aim();
  if (watch_of_.empty()) {
    log::warn("config watch: cannot watch the directories of {}; polling every {} ms", path_, timing_.poll.count());
  }
  asio::co_spawn(io_, read_events(), asio::detached);
  std::string dirs;
  for (const auto& [dir, wd] : watch_of_) {
    dirs += (dirs.empty() ? "" : ", ") + dir;
  }
  log::info("config watch: watching {} in {}; polling every {} ms", path_, dirs, timing_.poll.count());
  return true;
}

void config_watcher::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  events_.close(ec);
  debounce_.cancel();
  poll_.cancel();
}

void config_watcher::aim() {
  if (!events_.is_open()) {
    return;
  }
  std::map<std::string, std::set<std::string>> want;
  for (auto& [dir, name] : names_on_path(path_)) {
    want[dir].insert(name);
  }
  for (auto it = watch_of_.begin(); it != watch_of_.end();) {
    if (want.count(it->first) == 0) {
      ::inotify_rm_watch(events_.native_handle(), it->second);
      names_of_.erase(it->second);
      it = watch_of_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [dir, names] : want) {
    auto it = watch_of_.find(dir);
    if (it == watch_of_.end()) {
      int wd = ::inotify_add_watch(events_.native_handle(), dir.c_str(), watch_mask);
      if (wd < 0) {
        log::warn("config watch: cannot watch {} ({}); the poll still sees changes", dir, std::strerror(errno));
        continue;
      }
      it = watch_of_.emplace(dir, wd).first;
    }
    names_of_[it->second] = std::move(names);
  }
}

void config_watcher::noticed(change_seen how) {
  const auto now = std::chrono::steady_clock::now();
  if (!burst_) {
    burst_ = true;
    burst_has_event_ = false;
    burst_start_ = now;
  }
  burst_has_event_ = burst_has_event_ || how == change_seen::event;
  // Each event pushes the read back by `quiet` (a file written in steps is read once, whole), but
  // no further than `max_defer` after the first one, so a file that keeps changing is still read.
  debounce_.expires_at(std::min(now + timing_.quiet, burst_start_ + timing_.max_defer));
  debounce_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) {
      return;
    }
    const auto how_seen = burst_has_event_ ? change_seen::event : change_seen::poll;
    burst_ = false;
    aim();
    seen_ = identify(path_);
    on_change_(how_seen);
  });
}

void config_watcher::poll_tick() {
  poll_.expires_after(timing_.poll);
  poll_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) {
      return;
    }
    // While a debounce is pending it will look at the file anyway.
    if (!burst_ && identify(path_) != seen_) {
      noticed(change_seen::poll);
    }
    poll_tick();
  });
}

bool config_watcher::relevant(const char* buf, std::size_t n) {
  bool relevant = false;
  for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
    inotify_event ev{};
    std::memcpy(&ev, buf + off, sizeof(ev));
    const char* name = buf + off + sizeof(inotify_event);
    off += sizeof(inotify_event) + ev.len;
    if ((ev.mask & IN_Q_OVERFLOW) != 0) {
      relevant = true;  // events were lost: look again
      continue;
    }
    if ((ev.mask & IN_IGNORED) != 0) {
      // The directory went away (an old `..2026_..` version removed): forget its watch.
      if (auto it = names_of_.find(ev.wd); it != names_of_.end()) {
        names_of_.erase(it);
        const int wd = ev.wd;  // (a struct with a flexible array member cannot be captured)
        std::erase_if(watch_of_, [wd](const auto& entry) { return entry.second == wd; });
        relevant = true;
      }
      continue;
    }
    if (ev.len == 0) {
      continue;
    }
    auto it = names_of_.find(ev.wd);
    if (it != names_of_.end() && it->second.count(std::string(name, ::strnlen(name, ev.len))) != 0) {
      relevant = true;
    }
  }
  return relevant;
}

asio::awaitable<void> config_watcher::read_events() {
  alignas(inotify_event) std::array<char, 8192> buf;
  while (!stopped_) {
    auto [ec, n] = co_await events_.async_read_some(asio::buffer(buf), nothrow);
    if (ec || stopped_) {
      co_return;
    }
    ++event_reads_;
    if (relevant(buf.data(), n)) {
      noticed(change_seen::event);
    }
  }
}

}  // namespace spillway::server
