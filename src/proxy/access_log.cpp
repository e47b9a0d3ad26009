#include "proxy/access_log.h"

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
      return;
    }
    queued_bytes_ += chunk.size();
    queue_.push_back(std::move(chunk));
  }
  wake_.notify_one();
  buffer.reserve(flush_at + 1024);
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
    lock.lock();
    queued_bytes_ -= chunk.size();
  }
}

namespace {

void json_escape(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// The value of one field, as text (templates) or JSON.
void field(std::string& out, std::string_view name, const access_record& r, bool json) {
  auto str = [&](std::string_view v) {
    if (json) {
      json_escape(out, v);
    } else {
      out.append(v.empty() ? std::string_view("-") : v);
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
  }
}

}  // namespace

const char* response_flag(std::string_view reason) {
  static constexpr std::pair<std::string_view, const char*> table[] = {
      {"malformed_request", "DPE"},       {"no_route", "NR"},
      {"header_timeout", "DT"},           {"body_too_large", "DPE"},
      {"headers_too_large", "DPE"},       {"upstream_reset", "UC"},
      {"upstream_protocol_error", "UPE"}, {"no_healthy_upstream", "UH"},
      {"upstream_connect_failure", "UF"}, {"upstream_overloaded", "UO"},
      {"upstream_timeout", "UT"},         {"method_not_allowed", "DPE"},
  };
  for (const auto& [name, flag] : table) {
    if (name == reason) {
      return flag;
    }
  }
  return nullptr;
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
