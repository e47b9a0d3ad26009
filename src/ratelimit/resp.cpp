#include "ratelimit/resp.h"

#include <fmt/format.h>

namespace spillway::ratelimit::resp {

namespace {

// The line at `pos` up to CRLF: `incomplete` without a CRLF yet, `malformed` with a bare CR or LF.
status line_at(std::string_view in, std::size_t pos, std::string_view& line, std::size_t& next) {
  // A line longer than any valid one (a length, a number, a short status) is garbage.
  constexpr std::size_t max_line = 1024;
  for (std::size_t i = pos; i < in.size(); ++i) {
    if (in[i] == '\n') {
      return status::malformed;
    }
    if (in[i] == '\r') {
      if (i + 1 >= in.size()) {
        return status::incomplete;
      }
      if (in[i + 1] != '\n') {
        return status::malformed;
      }
      line = in.substr(pos, i - pos);
      next = i + 2;
      return status::done;
    }
    if (i - pos > max_line) {
      return status::malformed;
    }
  }
  return in.size() - pos > max_line ? status::malformed : status::incomplete;
}

bool to_number(std::string_view s, std::int64_t& out) {
  bool negative = !s.empty() && s[0] == '-';
  if (negative) {
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 18) {
    return false;
  }
  std::int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    n = n * 10 + (c - '0');
  }
  out = negative ? -n : n;
  return true;
}

status parse_at(std::string_view in, std::size_t pos, std::size_t depth, std::size_t& next, value& out) {
  if (pos >= in.size()) {
    return status::incomplete;
  }
  const char type = in[pos];
  std::string_view line;
  std::size_t after = 0;
  if (auto s = line_at(in, pos + 1, line, after); s != status::done) {
    return s;
  }
  switch (type) {
    case '+':
    case '-':
      out.type = type == '+' ? value::kind::simple : value::kind::error;
      out.text.assign(line);
      next = after;
      return status::done;
    case ':':
      out.type = value::kind::integer;
      next = after;
      return to_number(line, out.number) ? status::done : status::malformed;
    case '$': {
      std::int64_t n = 0;
      if (!to_number(line, n) || n < -1 || n > static_cast<std::int64_t>(max_string)) {
        return status::malformed;
      }
      if (n == -1) {
        out.type = value::kind::null;
        next = after;
        return status::done;
      }
      const auto len = static_cast<std::size_t>(n);
      if (in.size() < after + len + 2) {
        return status::incomplete;
      }
      if (in[after + len] != '\r' || in[after + len + 1] != '\n') {
        return status::malformed;
      }
      out.type = value::kind::bulk;
      out.text.assign(in.substr(after, len));
      next = after + len + 2;
      return status::done;
    }
    case '*': {
      std::int64_t n = 0;
      if (!to_number(line, n) || n < -1 || n > static_cast<std::int64_t>(max_items) || depth >= max_depth) {
        return status::malformed;
      }
      if (n == -1) {
        out.type = value::kind::null;
        next = after;
        return status::done;
      }
      out.type = value::kind::array;
      out.items.assign(static_cast<std::size_t>(n), value{});
      for (auto& item : out.items) {
        if (auto s = parse_at(in, after, depth + 1, after, item); s != status::done) {
          return s;
        }
      }
      next = after;
      return status::done;
    }
    default:
      return status::malformed;
  }
}

}  // namespace

status parse(std::string_view in, std::size_t& consumed, value& out) {
  out = value{};
  std::size_t next = 0;
  auto s = parse_at(in, 0, 0, next, out);
  if (s == status::done) {
    consumed = next;
  }
  return s;
}

void append_command(std::string& out, const std::vector<std::string_view>& args) {
  fmt::format_to(std::back_inserter(out), "*{}\r\n", args.size());
  for (auto a : args) {
    fmt::format_to(std::back_inserter(out), "${}\r\n", a.size());
    out.append(a);
    out.append("\r\n");
  }
}

}  // namespace spillway::ratelimit::resp
