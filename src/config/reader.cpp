// The loader's generic machinery: where a node is, how a problem is recorded, how a map's keys
// are dispatched (unknown and repeated keys are errors), and one typed reader per kind of value.
// Section readers (top_level.cpp, listeners.cpp, upstreams.cpp, policies.cpp) are built on these.

#include <algorithm>
#include <tuple>

#include "config/loader.h"

namespace spillway::config::detail {

mark to_mark(const YAML::Mark& m) {
  // yaml-cpp marks are 0-based, and -1 when unknown.
  return m.line < 0 ? mark{} : mark{m.line + 1, m.column + 1};
}

mark later(mark a, mark b) { return std::tie(a.line, a.col) < std::tie(b.line, b.col) ? b : a; }

std::string describe(const Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Scalar:
      return quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool is_false(const Node& v) {
  return v.IsScalar() && (v.Scalar() == "false" || v.Scalar() == "False" || v.Scalar() == "FALSE");
}

// An empty value (`key:` with nothing after it) carries the position of whatever token follows,
// often on another line; such errors point at the key instead.
mark loader::where(const Node& n) const {
  if (n.IsNull()) {
    for (const auto& [value, key_mark] : null_values_) {
      if (value.is(n)) {
        return key_mark;
      }
    }
  }
  return to_mark(n.Mark());
}

void loader::add(mark m, std::string message) { errors_.push_back(error{file_, m.line, m.col, std::move(message)}); }

void loader::add(const Node& n, std::string message) { add(where(n), std::move(message)); }

// Returns whether `n` is of kind `k`; if not, records "WHAT must be ..." (or "needs a value").
bool loader::expect(const Node& n, kind k, std::string_view what) {
  bool ok = (k == kind::map && n.IsMap()) || (k == kind::list && n.IsSequence()) || (k == kind::scalar && n.IsScalar());
  if (!ok && k == kind::scalar && n.IsNull()) {
    add(n, fmt::format("{} needs a value", what));
  } else if (!ok) {
    std::string_view wanted = k == kind::map ? "a map" : k == kind::list ? "a list" : "a single value";
    add(n, fmt::format("{} must be {}, got {}", what, wanted, describe(n)));
  }
  return ok;
}

// For sections that `false` turns off, once is_false() said no: returns whether `v` is a map, and if
// not records "WHAT must be false or a map".
bool loader::expect_map_or_false(const Node& v, std::string_view what) {
  if (!v.IsMap()) {
    add(v, fmt::format("{} must be false or a map, got {}", what, describe(v)));
    return false;
  }
  return true;
}

// Dispatches every key of `map` to its field. Unknown and repeated keys are errors: a typo must
// never be silently ignored, and with a repeated key one of the two values would be.
void loader::read_map(const Node& map, std::string_view section, std::initializer_list<field> fields) {
  std::vector<std::pair<std::string, mark>> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const Node key = it->first;  // copies: `it->` yields a temporary proxy
    const Node value = it->second;
    std::string_view place = section.empty() ? std::string_view("at the top level") : section;
    if (!key.IsScalar()) {
      add(key, fmt::format("keys {} must be plain names, got {}", place, describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    auto f = std::find_if(fields.begin(), fields.end(), [&](const field& x) { return x.key() == name; });
    if (f == fields.end()) {
      std::vector<std::string_view> known;
      for (const auto& x : fields) {
        known.push_back(x.key());
      }
      add(key, fmt::format("unknown key {} {}{}", quote(name), place, did_you_mean(name, known)));
      continue;
    }
    auto first = std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == name; });
    if (first != seen.end()) {
      add(key, fmt::format("duplicate key {} {} (first at line {})", quote(name), place, first->second.line));
      continue;
    }
    seen.emplace_back(name, to_mark(key.Mark()));
    if (value.IsNull()) {
      null_values_.emplace_back(value, to_mark(key.Mark()));
    }
    (*f)(key, value);
  }
}

std::optional<std::string> loader::read_string(const Node& v, std::string_view what) {
  if (!expect(v, kind::scalar, what)) {
    return std::nullopt;
  }
  return v.Scalar();
}

std::optional<std::string> loader::read_name(const Node& v, std::string_view what) {
  auto s = read_string(v, what);
  if (s && s->empty()) {
    add(v, fmt::format("{} must not be empty", what));
    return std::nullopt;
  }
  return s;
}

std::optional<std::uint64_t> loader::read_uint(const Node& v, std::string_view what, std::uint64_t min,
                                               std::uint64_t max) {
  if (!expect(v, kind::scalar, what)) {
    return std::nullopt;
  }
  auto n = parse_unsigned(v.Scalar());
  if (!n || *n < min || *n > max) {
    std::string range = max == uint32_max ? fmt::format("an integer of at least {}", min)
                                          : fmt::format("an integer from {} to {}", min, max);
    add(v, fmt::format("invalid {} {}: expected {}", what, quote(v.Scalar()), range));
    return std::nullopt;
  }
  return n;
}

std::optional<bool> loader::read_bool(const Node& v, std::string_view what) {
  if (!expect(v, kind::scalar, what)) {
    return std::nullopt;
  }
  // YAML 1.2 booleans only: "yes", "on" and friends are YAML 1.1 traps ("NO" as a country code).
  const auto& s = v.Scalar();
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  add(v, fmt::format("invalid {} {}: expected true or false", what, quote(s)));
  return std::nullopt;
}

std::optional<duration> loader::read_duration(const Node& v, std::string_view what, bool allow_zero) {
  if (!expect(v, kind::scalar, what)) {
    return std::nullopt;
  }
  auto d = parse_duration(v.Scalar());
  if (!d) {
    add(v, fmt::format("invalid duration {}: expected a number and a unit (ms, s, m, h)", quote(v.Scalar())));
    return std::nullopt;
  }
  if (!allow_zero && d->count() == 0) {
    add(v, fmt::format("{} must be greater than 0, got {}", what, quote(v.Scalar())));
    return std::nullopt;
  }
  return d;
}

std::optional<double> loader::read_percent(const Node& v, std::string_view what, bool allow_zero) {
  if (!expect(v, kind::scalar, what)) {
    return std::nullopt;
  }
  auto p = parse_percent(v.Scalar());
  if (!p) {
    add(v, fmt::format("invalid percentage {} for {}: expected 0% to 100%, e.g. \"50%\"", quote(v.Scalar()), what));
    return std::nullopt;
  }
  if (!allow_zero && *p == 0) {
    add(v, fmt::format("{} must be greater than 0%", what));
    return std::nullopt;
  }
  return p;
}

std::optional<std::uint64_t> loader::read_size(const Node& v, std::string_view what) {
  if (!expect(v, kind::scalar, what)) {
    return std::nullopt;
  }
  auto n = parse_size(v.Scalar());
  if (!n) {
    add(v, fmt::format("invalid size {} for {}: expected bytes, optionally with k, m or g (e.g. 64k)",
                       quote(v.Scalar()), what));
  }
  return n;
}

// `must_be_ip`: sockets we bind need an IP literal; resolving a name at bind time would make the
// listening address depend on DNS at every reload.
std::optional<address> loader::read_address(const Node& v, std::string_view what, bool must_be_ip) {
  if (!expect(v, kind::scalar, what)) {
    return std::nullopt;
  }
  std::string why;
  auto a = parse_address(v.Scalar(), &why);
  if (!a) {
    add(v, fmt::format("invalid address {}: {}", quote(v.Scalar()), why));
    return std::nullopt;
  }
  if (must_be_ip && a->srv) {
    add(v, fmt::format("{} {} must be an IP address and port, not an SRV name", what, quote(v.Scalar())));
    return std::nullopt;
  }
  if (must_be_ip && !a->is_ip) {
    add(v, fmt::format("{} {} must be an IP address, not a hostname (e.g. 127.0.0.1:{} or 0.0.0.0:{})", what,
                       quote(v.Scalar()), a->port, a->port));
    return std::nullopt;
  }
  return a;
}

// Returns the path resolved and normalised, once it is known to be readable. Relative paths are
// relative to the config file, not to wherever the balancer was started.
std::optional<std::string> loader::read_file_path(const Node& v, std::string_view what) {
  auto s = read_name(v, what);
  if (!s) {
    return std::nullopt;
  }
  std::filesystem::path p(*s);
  std::string resolved = (p.is_absolute() ? p : base_dir_ / p).lexically_normal().string();
  auto why = unreadable_reason(resolved);
  if (!why.empty()) {
    std::string shown = resolved == *s ? quote(*s) : fmt::format("{} ({})", quote(*s), resolved);
    add(v, fmt::format("cannot read {} {}: {}", what, shown, why));
    return std::nullopt;
  }
  return resolved;
}

std::function<void(const Node&)> loader::to_duration(duration& out, std::string_view what, bool allow_zero) {
  return [this, &out, what, allow_zero](const Node& v) {
    if (auto d = read_duration(v, what, allow_zero)) {
      out = *d;
    }
  };
}

std::function<void(const Node&)> loader::to_percent(double& out, std::string_view what, bool allow_zero) {
  return [this, &out, what, allow_zero](const Node& v) {
    if (auto p = read_percent(v, what, allow_zero)) {
      out = *p;
    }
  };
}

}  // namespace spillway::config::detail
