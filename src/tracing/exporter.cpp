#include "tracing/exporter.h"

#include "common/log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

namespace spillway::tracing {

namespace {

constexpr int connect_timeout_ms = 2000;
constexpr int exchange_timeout_s = 5;
constexpr std::size_t max_response_head = 16 * 1024;

// A connected, blocking socket with send/receive timeouts, or -1.
int connect_to(const std::string& host, std::uint16_t port, std::string& why) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    why = ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (auto* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, connect_timeout_ms) == 1 ? 0 : -1;
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 0 && (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
        errno = err;
        rc = -1;
      } else if (rc != 0) {
        errno = ETIMEDOUT;
      }
    }
    if (rc != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd >= 0) {
    ::fcntl(fd, F_SETFL, 0);  // blocking, with timeouts
    timeval tv{exchange_timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return fd;
}

// Sends every byte of `parts` (consumed as it goes), IOV_MAX of them per call at most.
bool send_all(int fd, std::vector<iovec>& parts) {
  std::size_t first = 0;
  while (first < parts.size()) {
    msghdr msg{};
    msg.msg_iov = parts.data() + first;
    msg.msg_iovlen = std::min<std::size_t>(parts.size() - first, IOV_MAX);
    auto w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return false;
    }
    auto sent = static_cast<std::size_t>(w);
    while (first < parts.size() && sent >= parts[first].iov_len) {
      sent -= parts[first].iov_len;
      ++first;
    }
    if (sent > 0) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + sent;
      parts[first].iov_len -= sent;
    }
  }
  return true;
}

// The value of header `name` (lower case) in a response head, or empty.
std::string_view header_value(std::string_view head, std::string_view name) {
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const auto start = pos + 2;
    const auto end = head.find("\r\n", start);
    const auto line = head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    const auto colon = line.find(':');
    if (colon == name.size()) {
      bool same = true;
      for (std::size_t i = 0; i < colon && same; ++i) {
        same = static_cast<char>(std::tolower(static_cast<unsigned char>(line[i]))) == name[i];
      }
      if (same) {
        auto v = line.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
          v.remove_prefix(1);
        }
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
          v.remove_suffix(1);
        }
        return v;
      }
    }
    pos = end;
  }
  return {};
}

}  // namespace

exporter::exporter(settings s, std::string version)
    : version_(std::move(version)), settings_(std::move(s)), thread_([this] { run(); }) {}

exporter::~exporter() {
  {
    std::lock_guard lock(m_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  disconnect();
}

void exporter::update(settings s) {
  std::lock_guard lock(m_);
  settings_ = std::move(s);
}

void exporter::submit(std::string& spans, std::size_t count) {
  if (count == 0) {
    spans.clear();
    return;
  }
  // Copied out in one go, and the worker goes on writing into the same buffer: its lines stay in
  // the worker's cache. Handing the buffer itself over (and writing the next spans into one the
  // exporter had sent, long out of cache) cost a cache miss for every line written, span by span.
  auto copy = buffers_.take();
  copy.append(spans);
  spans.clear();
  bool full_batch = false;
  bool dropped = false;
  {
    std::lock_guard lock(m_);
    if (queued_ + count > settings_.max_queue) {
      dropped_full_.fetch_add(count, std::memory_order_relaxed);
      dropped = true;
    } else {
      queue_.push_back({std::move(copy), count});
      queued_ += count;
      full_batch = queued_ >= batch_size;
    }
  }
  if (dropped) {
    buffers_.give(std::move(copy));
  } else if (full_batch) {
    wake_.notify_one();
  }
}

exporter::counts exporter::stats() const {
  counts c;
  c.exported = exported_.load(std::memory_order_relaxed);
  c.dropped_full = dropped_full_.load(std::memory_order_relaxed);
  c.dropped_failed = dropped_failed_.load(std::memory_order_relaxed);
  c.batches_failed = batches_failed_.load(std::memory_order_relaxed);
  std::lock_guard lock(m_);
  c.queued = queued_;
  return c;
}

void exporter::run() {
  std::vector<chunk> batch;
  for (;;) {
    settings s;
    std::size_t count = 0;
    batch.clear();
    {
      std::unique_lock lock(m_);
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_ || queued_ >= batch_size; });
      if (stopping_) {
        return;
      }
      if (queue_.empty()) {
        continue;
      }
      // Whole chunks (a worker's buffer each) up to a batch.
      std::size_t taken = 0;
      while (taken < queue_.size() && (count == 0 || count + queue_[taken].count <= batch_size)) {
        count += queue_[taken].count;
        batch.push_back(std::move(queue_[taken]));
        ++taken;
      }
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
      queued_ -= count;
      s = settings_;
    }
    const bool taken = post(s, batch);
    for (auto& c : batch) {
      buffers_.give(std::move(c.spans));
    }
    if (taken) {
      exported_.fetch_add(count, std::memory_order_relaxed);
      if (reported_failing_) {
        log::info("tracing: the collector {}:{} takes spans again", s.host, s.port);
        reported_failing_ = false;
      }
    } else {
      dropped_failed_.fetch_add(count, std::memory_order_relaxed);
      batches_failed_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

bool exporter::post(const settings& s, const std::vector<chunk>& batch) {
  const auto target = fmt::format("{}:{}", s.host, s.port);
  auto fail = [&](std::string_view why) {
    if (!reported_failing_) {
      log::warn("tracing: cannot export spans to {}{}: {}; dropping them (counted) until it can", target, s.path, why);
      reported_failing_ = true;
    }
    disconnect();
    return false;
  };
  // A kept connection may have been closed by the collector meanwhile: one fresh try then.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = fd_ >= 0 && connected_to_ == target;
    if (!reused) {
      disconnect();
      std::string why;
      fd_ = connect_to(s.host, s.port, why);
      if (fd_ < 0) {
        return fail(why);
      }
      connected_to_ = target;
    }
    if (!send_request(s, target, batch)) {
      disconnect();
      if (reused) {
        continue;
      }
      return fail("sending failed");
    }
    std::string in;
    char buf[4096];
    std::size_t head_end = std::string::npos;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0 || in.size() > max_response_head) {
        disconnect();
        if (reused && in.empty()) {
          break;  // closed before answering: try once on a fresh connection
        }
        return fail(n == 0 ? "closed without an answer" : "no answer in time");
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
    if (head_end == std::string::npos) {
      continue;
    }
    const std::string_view head_text(in.data(), head_end + 2);
    int status = 0;
    if (head_text.size() < 12 || head_text.substr(0, 7) != "HTTP/1." ||
        std::sscanf(in.c_str() + 9, "%3d", &status) != 1) {
      return fail("not an HTTP response");
    }
    // Read the body to keep the connection; without a length, the connection cannot be kept.
    const auto length_text = header_value(head_text, "content-length");
    std::size_t answer_length = 0;
    bool keep = !length_text.empty() && header_value(head_text, "connection") != "close";
    if (keep) {
      answer_length = std::strtoull(std::string(length_text).c_str(), nullptr, 10);
      std::size_t have = in.size() - head_end - 4;
      while (have < answer_length && keep) {
        auto n = ::recv(fd_, buf, std::min(sizeof buf, answer_length - have), 0);
        if (n <= 0) {
          keep = false;
        } else {
          have += static_cast<std::size_t>(n);
        }
      }
    }
    if (!keep) {
      disconnect();
    }
    if (status < 200 || status > 299) {
      return fail(fmt::format("the collector answered {}", status));
    }
    return true;
  }
  return fail("the connection was closed");
}

bool exporter::send_request(const settings& s, std::string_view target, const std::vector<chunk>& batch) {
  const auto head = fmt::format(
      "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nUser-Agent: "
      "spillway/{}\r\n\r\n",
      s.path, target, version_);
  bool after_spans = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const bool first = i == 0;
    const bool last = i + 1 == batch.size();
    json_.clear();
    if (first) {
      json_.append(otlp_document_head(s.service_name, version_));  // (assigning would drop the capacity)
    }
    after_spans = spans_json(batch[i].spans, json_, after_spans) > 0 || after_spans;
    if (last) {
      json_.append(otlp_document_tail);
    }
    if (json_.empty()) {
      continue;  // a chunk of size 0 would end the body
    }
    char size_line[24];
    const auto size_end = fmt::format_to_n(size_line, sizeof size_line, "{:x}\r\n", json_.size()).out;
    const std::string_view end = last ? "\r\n0\r\n\r\n" : "\r\n";
    auto part = [](std::string_view v) { return iovec{const_cast<char*>(v.data()), v.size()}; };
    std::vector<iovec> parts;
    if (first) {
      parts.push_back(part(head));
    }
    parts.push_back(part(std::string_view(size_line, static_cast<std::size_t>(size_end - size_line))));
    parts.push_back(part(json_));
    parts.push_back(part(end));
    if (!send_all(fd_, parts)) {
      return false;
    }
  }
  return true;
}

void exporter::disconnect() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  connected_to_.clear();
}

}  // namespace spillway::tracing
