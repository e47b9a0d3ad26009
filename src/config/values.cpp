// Text to values: the public parse_duration/percent/address/size, and the small text helpers the
// loader's messages and checks share. Pure functions, no YAML: the loader's typed readers
// (reader.cpp) call these and turn a nullopt into a message at the value's position.

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <system_error>

#include "config/loader.h"

namespace spillway::config {

namespace detail {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_digit); }

// Values are echoed in messages; a pasted certificate must not turn one error into a screenful.
std::string quote(std::string_view s) {
  constexpr std::size_t max_shown = 60;
  if (s.size() > max_shown) {
    return fmt::format("\"{}...\"", s.substr(0, max_shown));
  }
  return fmt::format("\"{}\"", s);
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

std::string one_of(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) {
      out += i + 1 == names.size() ? " or " : ", ";
    }
    out += names[i];
  }
  return out;
}

// For messages that compare two durations: the largest unit that divides the value exactly.
std::string duration_text(duration d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) {
    return fmt::format("{}h", ms / 3'600'000);
  }
  if (ms != 0 && ms % 60'000 == 0) {
    return fmt::format("{}m", ms / 60'000);
  }
  if (ms % 1000 == 0) {
    return fmt::format("{}s", ms / 1000);
  }
  return fmt::format("{}ms", ms);
}

std::optional<std::uint64_t> parse_unsigned(std::string_view s) {
  if (!all_digits(s)) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return value;
}

bool valid_hostname(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  std::size_t start = 0;
  while (start <= host.size()) {
    auto dot = host.find('.', start);
    auto label = host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
      if (!ok) {
        return false;
      }
    }
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  return true;
}

bool looks_like_ipv4(std::string_view host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) { return is_digit(c) || c == '.'; });
}

bool is_loopback(const std::string& ip) {
  unsigned char b[16];
  if (::inet_pton(AF_INET, ip.c_str(), b) == 1) {
    return b[0] == 127;
  }
  if (::inet_pton(AF_INET6, ip.c_str(), b) != 1) {
    return false;
  }
  static constexpr unsigned char loopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(b, b + 16, loopback6) || (std::equal(b, b + 12, mapped) && b[12] == 127);
}

// Opening (rather than access(2)) gives the same answer the TLS code will get later, and
// O_NONBLOCK keeps a FIFO from hanging us.
std::string unreadable_reason(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return std::error_code(errno, std::generic_category()).message();
  }
  struct stat st {};
  std::string why;
  if (::fstat(fd, &st) != 0) {
    why = std::error_code(errno, std::generic_category()).message();
  } else if (S_ISDIR(st.st_mode)) {
    why = "is a directory";
  }
  ::close(fd);
  return why;
}

std::optional<bind_key> bind_key_of(const address& a) {
  bind_key k;
  k.port = a.port;
  if (::inet_pton(AF_INET, a.host.c_str(), k.bytes.data()) == 1) {
    k.wildcard = std::all_of(k.bytes.begin(), k.bytes.begin() + 4, [](unsigned char b) { return b == 0; });
    return k;
  }
  if (::inet_pton(AF_INET6, a.host.c_str(), k.bytes.data()) != 1) {
    return std::nullopt;
  }
  // ::ffff:a.b.c.d is the IPv4 address a.b.c.d as far as binding goes.
  constexpr std::array<unsigned char, 12> v4_mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(v4_mapped.begin(), v4_mapped.end(), k.bytes.begin())) {
    std::copy(k.bytes.begin() + 12, k.bytes.end(), k.bytes.begin());
    std::fill(k.bytes.begin() + 4, k.bytes.end(), 0);
    k.wildcard = std::all_of(k.bytes.begin(), k.bytes.begin() + 4, [](unsigned char b) { return b == 0; });
    return k;
  }
  k.v6 = true;
  k.wildcard = std::all_of(k.bytes.begin(), k.bytes.end(), [](unsigned char b) { return b == 0; });
  return k;
}

// With SO_REUSEPORT (which every worker sets) the kernel would even let both bind and silently
// split connections between them, so the config has to catch it. A wildcard covers its family;
// [::] without IPV6_V6ONLY (the Linux default) covers IPv4 too.
bool clashes(const bind_key& a, const bind_key& b) {
  if (a.port != b.port) {
    return false;
  }
  if ((a.v6 && a.wildcard) || (b.v6 && b.wildcard)) {
    return true;
  }
  if (a.v6 != b.v6) {
    return false;
  }
  return a.wildcard || b.wildcard || a.bytes == b.bytes;
}

}  // namespace detail

namespace {

using detail::all_digits;
using detail::is_digit;

// A plain decimal: digits, optionally a '.' and more digits. No sign, exponent or spaces, so that
// "1e3s" or "-1s" are rejected rather than read in some surprising way.
std::optional<double> parse_decimal(std::string_view s) {
  auto dot = s.find('.');
  auto whole = s.substr(0, dot);
  if (!all_digits(whole)) {
    return std::nullopt;
  }
  if (dot != std::string_view::npos && !all_digits(s.substr(dot + 1))) {
    return std::nullopt;
  }
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<duration> parse_duration(const std::string& text) {
  struct unit {
    std::string_view suffix;
    double ms;
  };
  // "ms" before "m", so that "250ms" is not read as 250 minutes of "s".
  static constexpr std::array<unit, 4> units = {{{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}}};
  std::string_view s(text);
  for (const auto& u : units) {
    if (s.size() <= u.suffix.size() || s.substr(s.size() - u.suffix.size()) != u.suffix) {
      continue;
    }
    auto number = parse_decimal(s.substr(0, s.size() - u.suffix.size()));
    if (!number) {
      return std::nullopt;
    }
    double ms = *number * u.ms;
    // About 300 years: far beyond any sane timeout, well within int64 milliseconds.
    if (ms > 1e13) {
      return std::nullopt;
    }
    // Sub-millisecond remainders round to the nearest millisecond, but a non-zero value never
    // becomes zero, which would silently turn "0.2ms" into "disabled" or "invalid".
    auto rounded = static_cast<duration::rep>(std::llround(ms));
    if (rounded == 0 && ms > 0) {
      rounded = 1;
    }
    return duration(rounded);
  }
  return std::nullopt;
}

std::optional<double> parse_percent(const std::string& text) {
  std::string_view s(text);
  if (!s.empty() && s.back() == '%') {
    s.remove_suffix(1);
  }
  auto value = parse_decimal(s);
  if (!value || *value < 0 || *value > 100) {
    return std::nullopt;
  }
  return value;
}

std::optional<address> parse_address(const std::string& text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<address> {
    if (why != nullptr) {
      *why = std::move(reason);
    }
    return std::nullopt;
  };
  std::string_view s(text);
  if (s.empty()) {
    return fail("expected host:port");
  }
  address a;
  a.text = text;
  if (s.starts_with("srv:")) {
    // An SRV name: its records give the targets, ports, weights and priorities. Labels may start
    // with '_' (_service._proto.name).
    auto name = s.substr(4);
    std::string plain(name);
    std::replace(plain.begin(), plain.end(), '_', 'x');
    if (name.empty() || name.find(':') != std::string_view::npos || !detail::valid_hostname(plain)) {
      return fail(fmt::format("invalid SRV name \"{}\": expected srv:_service._proto.name (no port)", name));
    }
    a.host = std::string(name);
    a.srv = true;
    return a;
  }
  std::string_view port;
  if (s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) {
      return fail("missing ']' after the IPv6 address");
    }
    if (close + 1 >= s.size() || s[close + 1] != ':') {
      return fail("expected [ipv6]:port");
    }
    a.host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
    std::array<unsigned char, 16> bytes{};
    if (::inet_pton(AF_INET6, a.host.c_str(), bytes.data()) != 1) {
      return fail(fmt::format("invalid IPv6 address \"{}\"", a.host));
    }
    a.is_ip = true;
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      return fail("expected host:port");
    }
    auto host = s.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return fail("IPv6 addresses need brackets, e.g. [::1]:80");
    }
    if (host.empty()) {
      return fail("missing host before the port (use 0.0.0.0 for every IPv4 address)");
    }
    a.host = std::string(host);
    port = s.substr(colon + 1);
    std::array<unsigned char, 4> bytes{};
    if (::inet_pton(AF_INET, a.host.c_str(), bytes.data()) == 1) {
      a.is_ip = true;
    } else if (detail::looks_like_ipv4(host)) {
      return fail(fmt::format("invalid IPv4 address \"{}\"", host));
    } else if (!detail::valid_hostname(host)) {
      return fail(fmt::format("invalid hostname \"{}\": use letters, digits, '-' and '.'", host));
    }
  }
  auto p = detail::parse_unsigned(port);
  if (port.empty()) {
    return fail("missing port after ':'");
  }
  if (!p || *p < 1 || *p > 65535) {
    return fail(fmt::format("invalid port \"{}\": expected 1..65535", port));
  }
  a.port = static_cast<std::uint16_t>(*p);
  return a;
}

std::optional<address> parse_service_url(std::string_view text, std::string_view scheme, std::uint16_t default_port,
                                         std::string* path, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<address> {
    if (why != nullptr) {
      *why = std::move(reason);
    }
    return std::nullopt;
  };
  if (!text.starts_with(scheme)) {
    return fail(fmt::format("not {}", scheme));
  }
  auto rest = text.substr(scheme.size());
  const auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  if (slash != std::string_view::npos && path == nullptr) {
    return fail("no path");
  }
  if (rest.find_first_of("@?#") != std::string_view::npos) {
    return fail("no user, query or fragment");
  }
  std::string host_port(authority);
  const bool has_port = authority.rfind(']') != std::string_view::npos ? authority.find("]:") != std::string_view::npos
                                                                       : authority.find(':') != std::string_view::npos;
  if (!has_port) {
    if (default_port == 0) {
      return fail("no port");
    }
    host_port += fmt::format(":{}", default_port);
  }
  auto a = parse_address(host_port, why);
  if (!a) {
    return std::nullopt;
  }
  if (a->srv) {
    return fail("not a DNS SRV name");
  }
  if (a->port == 0) {
    return fail("port 0");
  }
  if (path != nullptr) {
    *path = slash == std::string_view::npos ? std::string() : std::string(rest.substr(slash));
  }
  return a;
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
  std::string_view s(text);
  std::size_t digits = 0;
  while (digits < s.size() && is_digit(s[digits])) {
    ++digits;
  }
  auto number = detail::parse_unsigned(s.substr(0, digits));
  if (!number) {
    return std::nullopt;
  }
  // Binary multiples throughout, as nginx and HAProxy read "k" and "m".
  std::string unit = detail::lower(s.substr(digits));
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "k" || unit == "kib") {
    multiplier = std::uint64_t{1} << 10;
  } else if (unit == "m" || unit == "mib") {
    multiplier = std::uint64_t{1} << 20;
  } else if (unit == "g" || unit == "gib") {
    multiplier = std::uint64_t{1} << 30;
  } else {
    return std::nullopt;
  }
  if (*number > std::numeric_limits<std::uint64_t>::max() / multiplier) {
    return std::nullopt;
  }
  return *number * multiplier;
}

}  // namespace spillway::config
