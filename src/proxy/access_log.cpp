#include "proxy/access_log.h"

#include "common/error.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace spillway::proxy {

access_log::access_log(const config::access_log& cfg) : cfg_(cfg) {
  if (cfg_.path == "-") {
    fd_ = STDOUT_FILENO;
  } else {
    fd_ = ::open(cfg_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw std::runtime_error("access_log: cannot open " + cfg_.path + ": " + std::strerror(errno));
    }
    own_fd_ = true;
  }
  thread_ = std::thread([this] { run(); });
}

access_log::~access_log() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  if (own_fd_) {
    ::close(fd_);
  }
}

void access_log::submit(std::string& buffer) {
  if (buffer.empty()) {
    return;
  }
  std::string chunk;
  chunk.swap(buffer);
  {
    std::lock_guard lock(mutex_);
    if (queued_bytes_ + chunk.size() > max_queued) {
      std::size_t lines = 0;
      for (char c : chunk) {
        lines += c == '\n' ? 1 : 0;
      }
      dropped_.fetch_add(lines, std::memory_order_relaxed);
      chunk.clear();
      buffer.swap(chunk);  // the worker keeps its buffer
      return;
    }
    queued_bytes_ += chunk.size();
    queue_.push_back(std::move(chunk));
  }
  wake_.notify_one();
  buffer = buffers_.take();
}

void access_log::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) {
      return;
    }
    std::string chunk = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const char* p = chunk.data();
    std::size_t left = chunk.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        break;  // a full disk or a closed pipe: these lines are lost, workers never notice
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    const auto size = chunk.size();
    buffers_.give(std::move(chunk));
    lock.lock();
    queued_bytes_ -= size;
  }
}

namespace {

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) {
  auto at = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = at(0);
  std::size_t n = 0;
  unsigned char lo = 0x80;  // bounds of the second byte, narrowed where RFC 3629's table says
  unsigned char hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    lo = c == 0xe0 ? 0xa0 : 0x80;  // overlong
    hi = c == 0xed ? 0x9f : 0xbf;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    lo = c == 0xf0 ? 0x90 : 0x80;  // overlong
    hi = c == 0xf4 ? 0x8f : 0xbf;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || at(1) < lo || at(1) > hi) {
    return 0;
  }
  for (std::size_t i = 2; i < n; ++i) {
    if (at(i) < 0x80 || at(i) > 0xbf) {
      return 0;
    }
  }
  return n;
}

// A JSON string that is valid UTF-8 whatever the bytes: quote, backslash and control characters are
// escaped, well-formed UTF-8 passes as is, and every byte that is not part of a well-formed sequence
// becomes U+FFFD (as Go's encoding/json and Python's errors="replace" do), so that every line parses.
void json_escape(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (auto n = utf8_sequence(s.substr(i)); n > 0) {
        out.append(s.substr(i, n));
        i += n;
      } else {
        out.append("\\ufffd");
        ++i;
      }
      continue;
    }
    if (c == '"') {
      out.append("\\\"");
    } else if (c == '\\') {
      out.append("\\\\");
    } else if (c < 0x20 || c == 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  out.push_back('"');
}

// A template field: every byte outside printable ASCII, and space, quote and backslash, becomes
// \xHH (as NGINX's escape=default does, plus space), so that a client's Host or X-Request-Id can
// neither end a line, forge a field nor hide in the terminal. An empty value is "-".
void text_escape(std::string& out, std::string_view s) {
  if (s.empty()) {
    out.push_back('-');
    return;
  }
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      fmt::format_to(std::back_inserter(out), "\\x{:02X}", c);
    } else {
      out.push_back(ch);
    }
  }
}

// The value of one field, as text (templates) or JSON.
void field(std::string& out, std::string_view name, const access_record& r, bool json) {
  auto str = [&](std::string_view v) {
    if (json) {
      json_escape(out, v);
    } else {
      text_escape(out, v);
    }
  };
  auto ms = [&](double v) {
    if (v < 0) {
      out.append(json ? "null" : "-");
    } else {
      fmt::format_to(std::back_inserter(out), "{:.3f}", v);
    }
  };
  auto it = std::back_inserter(out);
  if (name == "time") {
    str(r.time);
  } else if (name == "client") {
    str(r.client);
  } else if (name == "listener") {
    str(r.listener);
  } else if (name == "route") {
    if (r.route < 0) {
      out.append(json ? "null" : "-");
    } else {
      fmt::format_to(it, "{}", r.route);
    }
  } else if (name == "method") {
    str(r.method);
  } else if (name == "path") {
    str(r.path);
  } else if (name == "host") {
    str(r.host);
  } else if (name == "status") {
    fmt::format_to(it, "{}", r.status);
  } else if (name == "upstream") {
    str(r.upstream);
  } else if (name == "backend") {
    str(r.backend);
  } else if (name == "bytes_in") {
    fmt::format_to(it, "{}", r.bytes_in);
  } else if (name == "bytes_out") {
    fmt::format_to(it, "{}", r.bytes_out);
  } else if (name == "duration_ms") {
    ms(r.duration_ms);
  } else if (name == "connect_ms") {
    ms(r.connect_ms);
  } else if (name == "upstream_ms") {
    ms(r.upstream_ms);
  } else if (name == "tries") {
    fmt::format_to(it, "{}", r.tries);
  } else if (name == "retries") {
    fmt::format_to(it, "{}", r.tries > 0 ? r.tries - 1 : 0);
  } else if (name == "reason") {
    str(r.reason);
  } else if (name == "flags") {
    str(r.flags);
  } else if (name == "request_id") {
    str(r.request_id);
  } else if (name == "tls") {
    out.append(r.tls ? "true" : "false");
  } else if (name == "trace_id") {
    if (r.trace_id.empty()) {
      out.append(json ? "null" : "-");
    } else {
      str(r.trace_id);
    }
  }
}

}  // namespace

const char* response_flag(std::string_view reason) {
  const auto* e = find_error(reason);
  return e != nullptr ? e->flag : nullptr;
}

void format_access_line(const access_log& log, const access_record& r, std::string& out) {
  if (log.json()) {
    out.push_back('{');
    bool first = true;
    for (const char* name : config::access_log_fields) {
      if (!first) {
        out.push_back(',');
      }
      first = false;
      out.push_back('"');
      out.append(name);
      out.append("\":");
      field(out, name, r, true);
    }
    out.append("}\n");
    return;
  }
  const auto& f = log.cfg().format;
  std::size_t pos = 0;
  while (pos < f.size()) {
    auto open = f.find('{', pos);
    if (open == std::string::npos) {
      out.append(f, pos, std::string::npos);
      break;
    }
    out.append(f, pos, open - pos);
    auto close = f.find('}', open);  // the config checked that it exists
    field(out, std::string_view(f).substr(open + 1, close - open - 1), r, false);
    pos = close + 1;
  }
  out.push_back('\n');
}

}  // namespace spillway::proxy
