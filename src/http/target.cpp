#include "http/target.h"

namespace spillway::http {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// pchar without pct-encoded (checked separately): unreserved / sub-delims / ":" / "@".
bool is_pchar(char c) {
  if (is_alpha(c) || is_digit(c)) {
    return true;
  }
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
      return true;
    default:
      return false;
  }
}

// An absolute path of pchars, "/" and valid percent-escapes.
bool valid_path(std::string_view p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '%') {
      if (i + 2 >= p.size() || !is_hex(p[i + 1]) || !is_hex(p[i + 2])) {
        return false;
      }
      i += 2;
    } else if (c != '/' && !is_pchar(c)) {
      return false;
    }
  }
  return true;
}

// A query: any visible character llhttp let through (real clients send unencoded "|", "{}" and
// quotes in queries), but never a fragment or a backslash, and only valid percent-escapes.
bool valid_query(std::string_view q) {
  for (std::size_t i = 1; i < q.size(); ++i) {
    const char c = q[i];
    const auto u = static_cast<unsigned char>(c);
    if (c == '#' || c == '\\' || u <= 0x20 || u >= 0x7f) {
      return false;
    }
    if (c == '%') {
      if (i + 2 >= q.size() || !is_hex(q[i + 1]) || !is_hex(q[i + 2])) {
        return false;
      }
      i += 2;
    }
  }
  return true;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<char>(x - 'A' + 'a');
    }
    if (x != b[i]) {
      return false;
    }
  }
  return true;
}

// Splits path-abempty [ "?" query ] and checks both.
bool split_path_query(std::string_view rest, request_target& out) {
  const auto q = rest.find('?');
  out.path = rest.substr(0, q);
  out.query = q == std::string_view::npos ? std::string_view() : rest.substr(q);
  if (!out.path.empty() && out.path.front() != '/') {
    return false;
  }
  return valid_path(out.path) && valid_query(out.query);
}

bool is_dot_segment(std::string_view s, bool two) {
  // ".", "%2e", ".." and every mix of "." and "%2e"/"%2E".
  std::size_t dots = 0;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '%' && i + 2 < s.size() && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) {
      i += 3;
    } else {
      return false;
    }
    ++dots;
  }
  return dots == (two ? 2u : 1u);
}

}  // namespace

bool valid_host(std::string_view host) {
  std::string_view name = host;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos || close < 3) {
      return false;
    }
    for (char c : host.substr(1, close - 1)) {
      if (!is_hex(c) && c != ':' && c != '.') {
        return false;
      }
    }
    name = {};
    const auto rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return false;
      }
      port = rest.substr(1);
      if (port.empty()) {
        return false;
      }
    }
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
    if (port.empty()) {
      return false;
    }
    if (name.empty()) {
      return false;
    }
  } else if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_' && c != '~') {
      return false;
    }
  }
  if (port.size() > 5) {
    return false;
  }
  for (char c : port) {
    if (!is_digit(c)) {
      return false;
    }
  }
  return true;
}

bool parse_target(std::string_view url, request_target& out) {
  out = request_target{};
  if (url.empty()) {
    return false;
  }
  if (url == "*") {
    out.form = target_form::asterisk;
    return true;
  }
  if (url.front() == '/') {
    out.form = target_form::origin;
    return split_path_query(url, out);
  }
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    // authority-form: host:port, for CONNECT.
    out.form = target_form::authority;
    out.authority = url;
    return url.find(':') != std::string_view::npos && valid_host(url);
  }
  const auto scheme = url.substr(0, scheme_end);
  if (!iequal(scheme, "http") && !iequal(scheme, "https")) {
    return false;
  }
  out.form = target_form::absolute;
  auto rest = url.substr(scheme_end + 3);
  const auto end = rest.find_first_of("/?");
  out.authority = rest.substr(0, end);
  if (out.authority.find('@') != std::string_view::npos || !valid_host(out.authority)) {
    return false;  // userinfo is deprecated and a phishing vector (RFC 9110 section 4.2.4)
  }
  return split_path_query(end == std::string_view::npos ? std::string_view() : rest.substr(end), out);
}

bool remove_dot_segments(std::string_view path, std::string& out) {
  if (path.find('.') == std::string_view::npos && path.find("%2e") == std::string_view::npos &&
      path.find("%2E") == std::string_view::npos) {
    return false;  // the common case: nothing to do, nothing copied
  }
  std::string result;
  result.reserve(path.size());
  bool trailing_slash = false;
  std::size_t pos = path.empty() || path.front() != '/' ? 0 : 1;
  while (true) {
    const auto slash = path.find('/', pos);
    const bool last = slash == std::string_view::npos;
    const auto seg = path.substr(pos, last ? std::string_view::npos : slash - pos);
    if (is_dot_segment(seg, false)) {
      trailing_slash = last;
    } else if (is_dot_segment(seg, true)) {
      if (const auto cut = result.rfind('/'); cut != std::string::npos) {
        result.resize(cut);
      }
      trailing_slash = last;
    } else {
      result.push_back('/');
      result.append(seg);
    }
    if (last) {
      break;
    }
    pos = slash + 1;
  }
  if (trailing_slash || result.empty()) {
    result.push_back('/');
  }
  if (result == path) {
    return false;
  }
  out = std::move(result);
  return true;
}

bool path_prefix_matches(std::string_view path, std::string_view prefix) {
  if (path.substr(0, prefix.size()) != prefix) {
    return false;
  }
  if (prefix.empty() || prefix.back() == '/' || path.size() == prefix.size()) {
    return true;
  }
  const char next = path[prefix.size()];
  return next == '/' || next == '?';
}

}  // namespace spillway::http
