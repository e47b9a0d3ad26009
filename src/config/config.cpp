#include "config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

namespace spillway::config {

namespace {

using YAML::Node;

constexpr std::string_view default_admin_listen = "127.0.0.1:9901";
constexpr std::uint32_t uint32_max = std::numeric_limits<std::uint32_t>::max();

// ---------------------------------------------------------------------------------------------
// Small text helpers

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

// Optimal string alignment distance: like Levenshtein, but a swap of two neighbours ("tsl" for
// "tls") costs one edit, which is the most common typo in keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The closest candidate when it is close enough to be the likely intent, else empty. The bound
// keeps short words from "matching" unrelated short words.
template <typename Range>
std::string closest(std::string_view word, const Range& candidates) {
  std::string lowered = lower(word);
  std::string best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    std::string_view candidate(c);
    std::size_t d = edit_distance(lowered, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(candidate);
    }
  }
  std::size_t longest = std::max(word.size(), best.size());
  if (best.empty() || best_distance > 2 || best_distance * 2 > longest) {
    return {};
  }
  return best;
}

template <typename Range>
std::string did_you_mean(std::string_view word, const Range& candidates) {
  auto best = closest(word, candidates);
  return best.empty() ? std::string() : fmt::format(" (did you mean \"{}\"?)", best);
}

// "a, b, c or d"
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

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// Prints a duration the way a user would write it, for messages that compare two of them.
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

// ---------------------------------------------------------------------------------------------
// Listen-address clashes

// An IP listen address reduced to what the kernel compares when binding.
struct bind_key {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};
  std::uint16_t port = 0;
  bool wildcard = false;
};

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

// Two sockets on these addresses could not both own the port: with SO_REUSEPORT (which every
// worker sets) the kernel would even let both bind and silently split connections between them,
// so the config has to catch it. A wildcard covers its family; [::] without IPV6_V6ONLY (the Linux
// default) covers IPv4 too.
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

// ---------------------------------------------------------------------------------------------
// Files

// Empty when `path` can be opened for reading, else why not. Opening (rather than access(2))
// gives the same answer the TLS code will get later, and O_NONBLOCK keeps a FIFO from hanging us.
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

// True for an IP literal in 127.0.0.0/8 or ::1 (or ::ffff:127.x.y.z).
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

// ---------------------------------------------------------------------------------------------
// The loader: walks the YAML tree once, filling a `config` and collecting every problem.

// One accepted key of a map and what to do with its value. Handlers take the value, or the key
// and the value when they need the key's position.
class field {
 public:
  template <typename Fn>
  field(std::string_view key, Fn fn) : key_(key) {
    if constexpr (std::is_invocable_v<Fn, const Node&, const Node&>) {
      fn_ = std::move(fn);
    } else {
      fn_ = [fn = std::move(fn)](const Node&, const Node& value) { fn(value); };
    }
  }

  std::string_view key() const { return key_; }
  void operator()(const Node& key, const Node& value) const { fn_(key, value); }

 private:
  std::string_view key_;
  std::function<void(const Node&, const Node&)> fn_;
};

enum class kind { map, list, scalar };

// Remembers where the root node of a stream's second document starts. Fed by YAML::Parser.
class second_document_finder : public YAML::EventHandler {
 public:
  YAML::Mark second_root = YAML::Mark::null_mark();

  void OnDocumentStart(const YAML::Mark&) override {
    ++documents_;
    root_seen_ = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& m) {
    if (documents_ == 2 && !root_seen_) {
      second_root = m;
    }
    root_seen_ = true;
  }

  int documents_ = 0;
  bool root_seen_ = false;
};

// Where the second document of `text` starts (its root node), or a null mark when there is none.
// Bounded: two documents at most are parsed. Throws YAML::Exception on a syntax error.
YAML::Mark find_second_document(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  second_document_finder finder;
  for (int i = 0; i < 2 && parser.HandleNextDocument(finder); ++i) {
  }
  return finder.second_root;
}

class loader {
 public:
  explicit loader(std::string file) : file_(std::move(file)) {
    std::error_code ec;
    auto dir = std::filesystem::path(file_).parent_path();
    auto absolute_dir = std::filesystem::absolute(dir, ec);
    base_dir_ = ec ? dir : absolute_dir;
  }

  load_result load(const std::string& text) {
    load_result result;
    std::vector<Node> docs;
    YAML::Mark second_document = YAML::Mark::null_mark();
    try {
      // Not YAML::LoadAll(): yaml-cpp 0.7 (Debian 12) loops forever there, building empty
      // documents, on some malformed streams (e.g. `,isteners: []\n...`, found by fuzz_config;
      // fixed upstream in yaml-cpp PR #1319). Load() reads the first document; a second one is
      // looked for with at most two passes of the event parser.
      docs.push_back(YAML::Load(text));
      second_document = find_second_document(text);
    } catch (const YAML::Exception& e) {
      // A syntax error leaves no tree to check further: report it alone, where the parser stopped.
      add(to_mark(e.mark), fmt::format("invalid YAML: {}{}", e.msg, tab_hint(text, e.mark)));
      result.errors = std::move(errors_);
      return result;
    }
    if (!second_document.is_null()) {
      add(to_mark(second_document), "only one YAML document is allowed in a config file");
    }
    if (docs.empty() || docs[0].IsNull()) {
      add(mark{1, 1}, "the config is empty: it needs at least \"listeners\" and \"upstreams\"");
    } else if (expect(docs[0], kind::map, "the config")) {
      read_top(docs[0]);
    }
    check_bindings();
    check_upstream_refs();

    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const error& a, const error& b) { return std::tie(a.line, a.col) < std::tie(b.line, b.col); });
    result.errors = std::move(errors_);
    if (result.errors.empty()) {
      cfg_.path = file_;
      result.cfg = std::move(cfg_);
    }
    return result;
  }

 private:
  // --- errors and positions ---

  // yaml-cpp's messages for a tab in the indentation ("illegal block entry", ...) do not say what
  // is wrong, and the tab is invisible in most editors.
  static std::string tab_hint(const std::string& text, const YAML::Mark& m) {
    if (m.pos < 0 || static_cast<std::size_t>(m.pos) > text.size()) {
      return {};
    }
    auto line_start = text.rfind('\n', m.pos == 0 ? 0 : static_cast<std::size_t>(m.pos) - 1);
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    auto indent_end = text.find_first_not_of(" \t", line_start);
    auto indent =
        text.substr(line_start, indent_end == std::string::npos ? std::string::npos : indent_end - line_start);
    return indent.find('\t') == std::string::npos ? std::string() : " (tabs are not allowed in indentation)";
  }

  static mark to_mark(const YAML::Mark& m) {
    // yaml-cpp marks are 0-based, and -1 when unknown.
    return m.line < 0 ? mark{} : mark{m.line + 1, m.column + 1};
  }

  // An empty value (`key:` with nothing after it) carries the position of whatever token follows,
  // often on another line; such errors point at the key instead.
  mark where(const Node& n) const {
    if (n.IsNull()) {
      for (const auto& [value, key_mark] : null_values_) {
        if (value.is(n)) {
          return key_mark;
        }
      }
    }
    return to_mark(n.Mark());
  }

  void add(mark m, std::string message) { errors_.push_back(error{file_, m.line, m.col, std::move(message)}); }
  void add(const Node& n, std::string message) { add(where(n), std::move(message)); }

  static std::string describe(const Node& n) {
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

  bool expect(const Node& n, kind k, std::string_view what) {
    bool ok =
        (k == kind::map && n.IsMap()) || (k == kind::list && n.IsSequence()) || (k == kind::scalar && n.IsScalar());
    if (!ok && k == kind::scalar && n.IsNull()) {
      add(n, fmt::format("{} needs a value", what));
    } else if (!ok) {
      std::string_view wanted = k == kind::map ? "a map" : k == kind::list ? "a list" : "a single value";
      add(n, fmt::format("{} must be {}, got {}", what, wanted, describe(n)));
    }
    return ok;
  }

  // Dispatches every key of `map` to its field. Unknown and repeated keys are errors: a typo must
  // never be silently ignored, and with a repeated key one of the two values would be.
  void read_map(const Node& map, std::string_view section, std::initializer_list<field> fields) {
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

  // --- scalar readers: each reports its own error and returns nullopt on a bad value ---

  std::optional<std::string> read_string(const Node& v, std::string_view what) {
    if (!expect(v, kind::scalar, what)) {
      return std::nullopt;
    }
    return v.Scalar();
  }

  std::optional<std::string> read_name(const Node& v, std::string_view what) {
    auto s = read_string(v, what);
    if (s && s->empty()) {
      add(v, fmt::format("{} must not be empty", what));
      return std::nullopt;
    }
    return s;
  }

  std::optional<std::uint64_t> read_uint(const Node& v, std::string_view what, std::uint64_t min, std::uint64_t max) {
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

  std::optional<bool> read_bool(const Node& v, std::string_view what) {
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

  static bool is_false(const Node& v) {
    return v.IsScalar() && (v.Scalar() == "false" || v.Scalar() == "False" || v.Scalar() == "FALSE");
  }

  std::optional<duration> read_duration(const Node& v, std::string_view what, bool allow_zero) {
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

  std::optional<double> read_percent(const Node& v, std::string_view what, bool allow_zero) {
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

  std::optional<std::uint64_t> read_size(const Node& v, std::string_view what) {
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
  std::optional<address> read_address(const Node& v, std::string_view what, bool must_be_ip) {
    if (!expect(v, kind::scalar, what)) {
      return std::nullopt;
    }
    std::string why;
    auto a = parse_address(v.Scalar(), &why);
    if (!a) {
      add(v, fmt::format("invalid address {}: {}", quote(v.Scalar()), why));
      return std::nullopt;
    }
    if (must_be_ip && !a->is_ip) {
      add(v, fmt::format("{} {} must be an IP address, not a hostname (e.g. 127.0.0.1:{} or 0.0.0.0:{})", what,
                         quote(v.Scalar()), a->port, a->port));
      return std::nullopt;
    }
    return a;
  }

  // Relative paths are relative to the config file, not to wherever the balancer was started.
  std::optional<std::string> read_file_path(const Node& v, std::string_view what) {
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

  template <typename Enum>
  std::optional<Enum> read_enum(const Node& v, std::string_view what,
                                const std::vector<std::pair<std::string_view, Enum>>& values) {
    if (!expect(v, kind::scalar, what)) {
      return std::nullopt;
    }
    std::vector<std::string_view> names;
    for (const auto& [name, value] : values) {
      if (name == v.Scalar()) {
        return value;
      }
      names.push_back(name);
    }
    add(v, fmt::format("unknown {} {}: expected {}{}", what, quote(v.Scalar()), one_of(names),
                       did_you_mean(v.Scalar(), names)));
    return std::nullopt;
  }

  // Field handlers that store a checked value, leaving the default in place on error.
  auto to_duration(duration& out, std::string_view what, bool allow_zero = false) {
    return [this, &out, what, allow_zero](const Node& v) {
      if (auto d = read_duration(v, what, allow_zero)) {
        out = *d;
      }
    };
  }

  template <typename Int>
  auto to_uint(Int& out, std::string_view what, std::uint64_t min, std::uint64_t max) {
    return [this, &out, what, min, max](const Node& v) {
      if (auto n = read_uint(v, what, min, max)) {
        out = static_cast<Int>(*n);
      }
    };
  }

  auto to_percent(double& out, std::string_view what, bool allow_zero) {
    return [this, &out, what, allow_zero](const Node& v) {
      if (auto p = read_percent(v, what, allow_zero)) {
        out = *p;
      }
    };
  }

  // --- top level ---

  void read_top(const Node& root) {
    bool have_listeners = false;
    read_map(root, "",
             {
                 {"workers", [this](const Node& v) { read_workers(v); }},
                 {"drain_timeout", to_duration(cfg_.drain_timeout, "drain_timeout", true)},
                 {"admin", [this](const Node& v) { read_admin(v); }},
                 {"listeners",
                  [&](const Node& v) {
                    have_listeners = true;
                    read_listeners(v);
                  }},
                 {"upstreams", [this](const Node& v) { read_upstreams(v); }},
                 {"metrics",
                  [this](const Node& v) {
                    if (auto b = read_bool(v, "metrics")) {
                      cfg_.metrics = *b;
                    }
                  }},
                 {"access_log", [this](const Node& v) { read_access_log(v); }},
             });
    if (!have_listeners) {
      add(mark{1, 1}, "the config needs at least one listener (\"listeners\" is missing)");
    }
    if (!admin_given_) {
      cfg_.admin_api.listen = *parse_address(std::string(default_admin_listen));
      bindings_.push_back({cfg_.admin_api.listen, mark{}, "the admin API", false});
    }
  }

  // A template names known fields in braces: "{client} {status} {duration_ms}".
  void check_log_template(const Node& v, const std::string& f) {
    if (f == "json") {
      return;
    }
    for (std::size_t i = f.find('{'); i != std::string::npos; i = f.find('{', i + 1)) {
      auto end = f.find('}', i);
      if (end == std::string::npos) {
        add(v, "access_log format has a \"{\" without its \"}\"");
        return;
      }
      auto name = f.substr(i + 1, end - i - 1);
      if (std::none_of(std::begin(access_log_fields), std::end(access_log_fields),
                       [&](const char* known) { return name == known; })) {
        add(v, fmt::format("access_log format: unknown field {{{}}}", name));
      }
    }
  }

  void read_access_log(const Node& v) {
    if (!expect(v, kind::map, "access_log")) {
      return;
    }
    struct access_log log;
    bool path_given = false;
    read_map(v, "in access_log",
             {
                 {"path",
                  [&](const Node& value) {
                    if (auto p = read_name(value, "access_log path")) {
                      path_given = true;
                      std::filesystem::path fp(*p);
                      log.path = *p == "-" || fp.is_absolute() ? *p : (base_dir_ / fp).lexically_normal().string();
                    }
                  }},
                 {"format",
                  [&](const Node& value) {
                    if (auto f = read_name(value, "access_log format")) {
                      log.format = *f;
                      log.format_at = where(value);
                      check_log_template(value, *f);
                    }
                  }},
                 {"sample", to_percent(log.sample, "access_log sample", false)},
             });
    if (!path_given) {
      add(v, "access_log needs a path (a file, or \"-\" for standard output)");
      return;
    }
    cfg_.access_log = std::move(log);
  }

  void read_workers(const Node& v) {
    if (!expect(v, kind::scalar, "workers")) {
      return;
    }
    if (v.Scalar() == "auto") {
      cfg_.workers = 0;
      return;
    }
    auto n = parse_unsigned(v.Scalar());
    if (!n || *n < 1 || *n > 256) {
      add(v, fmt::format("invalid workers {}: expected auto or an integer from 1 to 256", quote(v.Scalar())));
      return;
    }
    cfg_.workers = static_cast<unsigned>(*n);
  }

  void read_admin(const Node& v) {
    admin_given_ = true;
    if (!expect(v, kind::map, "admin")) {
      return;
    }
    bool listen_given = false;
    read_map(v, "in admin",
             {
                 {"listen",
                  [&](const Node& value) {
                    listen_given = true;
                    if (auto a = read_address(value, "admin listen address", true)) {
                      cfg_.admin_api.listen = *a;
                      cfg_.admin_api.listen_at = where(value);
                      bindings_.push_back({*a, where(value), "the admin API", true});
                    }
                  }},
                 {"token_file", [&](const Node& value) { read_admin_token(value); }},
             });
    if (!listen_given) {
      cfg_.admin_api.listen = *parse_address(std::string(default_admin_listen));
      bindings_.push_back({cfg_.admin_api.listen, mark{}, "the admin API", false});
    }
    // Anyone who can reach a non-loopback admin port could reload the config or read every
    // backend's state: such an address needs a token (SPEC section 5).
    if (listen_given && cfg_.admin_api.listen.is_ip && cfg_.admin_api.token_file.empty()) {
      if (!is_loopback(cfg_.admin_api.listen.host)) {
        add(cfg_.admin_api.listen_at,
            fmt::format("admin listen address {} is not loopback: set admin.token_file (a bearer token every admin "
                        "request must carry), or listen on 127.0.0.1",
                        quote(cfg_.admin_api.listen.text)));
      }
    }
  }

  // The token is read now, so that a missing or empty file is a config error with its position
  // (and a reload re-reads it, which is how a token is rotated).
  void read_admin_token(const Node& value) {
    auto path = read_file_path(value, "admin token_file");
    if (!path) {
      return;
    }
    std::ifstream in(*path, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    std::string token = content.str();
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())) != 0) {
      token.pop_back();  // files written by `echo` or editors end with a newline
    }
    if (!in || token.empty()) {
      add(value, fmt::format("admin token_file {} is empty: it must hold the bearer token", quote(*path)));
      return;
    }
    if (std::any_of(token.begin(), token.end(), [](char c) {
          return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f;
        })) {
      add(value, fmt::format("admin token_file {}: the token must be printable ASCII without spaces (it goes in an "
                             "Authorization header)",
                             quote(*path)));
      return;
    }
    cfg_.admin_api.token_file = *path;
    cfg_.admin_api.token = std::move(token);
    cfg_.admin_api.token_file_at = where(value);
  }

  // --- listeners ---

  void read_listeners(const Node& v) {
    if (!expect(v, kind::list, "listeners")) {
      return;
    }
    if (v.size() == 0) {
      add(v, "the config needs at least one listener");
      return;
    }
    std::size_t index = 0;
    for (const auto& item : v) {
      read_listener(item, index++);
    }
  }

  void read_listener(const Node& n, std::size_t index) {
    if (!expect(n, kind::map, "each listener")) {
      return;
    }
    listener l;
    l.where = where(n);
    l.name = fmt::format("listener_{}", index);
    mark name_at = l.where;
    bool listen_given = false;
    std::optional<mark> listen_at;
    bool protocol_ok = true;
    std::optional<mark> routes_key;
    std::optional<mark> upstream_key;
    std::optional<mark> upstream_value;
    std::vector<mark> http_only_keys;
    std::vector<std::pair<std::string, mark>> route_refs;

    read_map(n, "in listener",
             {
                 {"name",
                  [&](const Node& v) {
                    if (auto s = read_name(v, "listener name")) {
                      l.name = *s;
                      name_at = where(v);
                    }
                  }},
                 {"listen",
                  [&](const Node& v) {
                    listen_given = true;
                    if (auto a = read_address(v, "listen address", true)) {
                      l.listen = *a;
                      listen_at = where(v);
                    }
                  }},
                 {"protocol",
                  [&](const Node& v) {
                    auto p = read_enum<protocol>(v, "protocol", {{"http", protocol::http}, {"tcp", protocol::tcp}});
                    protocol_ok = p.has_value();
                    if (p) {
                      l.proto = *p;
                    }
                  }},
                 {"tls", [&](const Node& v) { l.tls = read_listener_tls(v); }},
                 {"routes",
                  [&](const Node& k, const Node& v) {
                    routes_key = where(k);
                    read_routes(v, l.routes, route_refs);
                  }},
                 {"upstream",
                  [&](const Node& k, const Node& v) {
                    upstream_key = where(k);
                    if (auto s = read_name(v, "upstream")) {
                      l.upstream = *s;
                      upstream_value = where(v);
                    }
                  }},
                 {"max_request_headers",
                  [&](const Node& k, const Node& v) {
                    http_only_keys.push_back(where(k));
                    if (auto s = read_size(v, "max_request_headers")) {
                      if (*s == 0) {
                        add(v, "max_request_headers must be greater than 0");
                      } else {
                        l.max_request_headers = *s;
                      }
                    }
                  }},
                 {"max_request_body",
                  [&](const Node& k, const Node& v) {
                    http_only_keys.push_back(where(k));
                    if (auto s = read_size(v, "max_request_body")) {
                      l.max_request_body = *s;
                    }
                  }},
                 {"max_request_header_fields",
                  [&](const Node& k, const Node& v) {
                    http_only_keys.push_back(where(k));
                    if (auto n = read_uint(v, "max_request_header_fields", 1, 10000)) {
                      l.max_request_header_fields = static_cast<std::uint32_t>(*n);
                    }
                  }},
                 {"max_connections",
                  [&](const Node& v) {
                    if (auto n = read_uint(v, "max_connections", 1, 1000000)) {
                      l.max_connections = static_cast<std::uint32_t>(*n);
                    }
                  }},
                 {"splice",
                  [&](const Node& v) {
                    if (auto b = read_bool(v, "splice")) {
                      l.splice = *b;
                    }
                  }},
             });

    if (!listen_given) {
      add(n, fmt::format("listener \"{}\" needs a \"listen\" address", l.name));
    }
    // Which of routes/upstream belongs depends on the protocol, which may come after them.
    if (protocol_ok && l.proto == protocol::http) {
      if (upstream_key) {
        add(*upstream_key,
            fmt::format("\"upstream\" is for tcp listeners; http listener \"{}\" uses \"routes\"", l.name));
      }
      if (!routes_key) {
        add(n, fmt::format("http listener \"{}\" needs at least one route", l.name));
      } else {
        for (auto& ref : route_refs) {
          upstream_refs_.push_back({std::move(ref.first), ref.second, "route"});
        }
      }
    } else if (protocol_ok && l.proto == protocol::tcp) {
      if (routes_key) {
        add(*routes_key,
            fmt::format("\"routes\" are for http listeners; tcp listener \"{}\" uses \"upstream\"", l.name));
      }
      for (const auto& k : http_only_keys) {
        add(k, fmt::format("request size limits apply to http listeners only; \"{}\" is tcp", l.name));
      }
      if (!upstream_key) {
        add(n, fmt::format("tcp listener \"{}\" needs an \"upstream\"", l.name));
      } else if (upstream_value) {
        upstream_refs_.push_back({l.upstream, *upstream_value, fmt::format("listener \"{}\"", l.name)});
      }
    }

    if (auto first = listener_names_.find(l.name); first != listener_names_.end()) {
      add(name_at, fmt::format("duplicate listener name \"{}\" (first at line {})", l.name, first->second.line));
    } else {
      listener_names_.emplace(l.name, name_at);
    }
    if (listen_at) {
      bindings_.push_back({l.listen, *listen_at, fmt::format("listener \"{}\"", l.name), true});
    }
    cfg_.listeners.push_back(std::move(l));
  }

  std::optional<listener_tls> read_listener_tls(const Node& v) {
    if (!expect(v, kind::map, "tls")) {
      return std::nullopt;
    }
    listener_tls tls;
    std::optional<mark> single_at;
    std::optional<mark> list_at;
    bool cert_given = false;
    bool key_given = false;
    bool ok = true;
    tls_certificate single;
    read_map(v, "in tls",
             {
                 {"cert",
                  [&](const Node& k, const Node& value) {
                    cert_given = true;
                    single_at = single_at.value_or(where(k));
                    single.cert_at = where(value);
                    auto p = read_file_path(value, "certificate");
                    ok = ok && p.has_value();
                    single.cert = p.value_or("");
                  }},
                 {"key",
                  [&](const Node& k, const Node& value) {
                    key_given = true;
                    single_at = single_at.value_or(where(k));
                    single.key_at = where(value);
                    auto p = read_file_path(value, "key");
                    ok = ok && p.has_value();
                    single.key = p.value_or("");
                  }},
                 {"certificates",
                  [&](const Node& k, const Node& value) {
                    list_at = where(k);
                    ok = read_certificates(value, tls.certificates) && ok;
                  }},
                 {"handshake_timeout",
                  [&](const Node& value) {
                    auto d = read_duration(value, "handshake_timeout", false);
                    ok = ok && d.has_value();
                    tls.handshake_timeout = d.value_or(tls.handshake_timeout);
                  }},
             });
    if (single_at && list_at) {
      add(std::max(*single_at, *list_at,
                   [](mark a, mark b) { return std::tie(a.line, a.col) < std::tie(b.line, b.col); }),
          "tls takes either cert and key, or certificates, not both");
      return std::nullopt;
    }
    if (!single_at && !list_at) {
      add(v, "tls needs a cert and a key (or a list of certificates)");
      return std::nullopt;
    }
    if (single_at) {
      if (!cert_given || !key_given) {
        add(v, fmt::format("tls needs both a cert and a key; \"{}\" is missing", cert_given ? "key" : "cert"));
        return std::nullopt;
      }
      tls.certificates.push_back(std::move(single));
    }
    if (!ok) {
      return std::nullopt;
    }
    return tls;
  }

  bool read_certificates(const Node& v, std::vector<tls_certificate>& out) {
    if (!expect(v, kind::list, "certificates")) {
      return false;
    }
    if (v.size() == 0) {
      add(v, "certificates must list at least one { cert, key }");
      return false;
    }
    bool ok = true;
    for (const auto& item : v) {
      if (!expect(item, kind::map, "each certificate")) {
        ok = false;
        continue;
      }
      tls_certificate c;
      bool cert_given = false;
      bool key_given = false;
      read_map(item, "in tls certificate",
               {
                   {"cert",
                    [&](const Node& value) {
                      cert_given = true;
                      c.cert_at = where(value);
                      auto p = read_file_path(value, "certificate");
                      ok = ok && p.has_value();
                      c.cert = p.value_or("");
                    }},
                   {"key",
                    [&](const Node& value) {
                      key_given = true;
                      c.key_at = where(value);
                      auto p = read_file_path(value, "key");
                      ok = ok && p.has_value();
                      c.key = p.value_or("");
                    }},
               });
      if (!cert_given || !key_given) {
        add(item, fmt::format("a tls certificate needs both a cert and a key; \"{}\" is missing",
                              cert_given ? "key" : "cert"));
        ok = false;
        continue;
      }
      out.push_back(std::move(c));
    }
    return ok;
  }

  // `refs` gets each route's upstream and its position, checked once every upstream is known.
  void read_routes(const Node& v, std::vector<route>& out, std::vector<std::pair<std::string, mark>>& refs) {
    if (!expect(v, kind::list, "routes")) {
      return;
    }
    if (v.size() == 0) {
      add(v, "routes must list at least one route");
      return;
    }
    for (const auto& item : v) {
      if (!expect(item, kind::map, "each route")) {
        continue;
      }
      route r;
      r.where = where(item);
      bool upstream_given = false;
      read_map(item, "in route",
               {
                   {"match", [&](const Node& value) { read_match(value, r.match); }},
                   {"upstream",
                    [&](const Node& value) {
                      upstream_given = true;
                      if (auto s = read_name(value, "upstream")) {
                        r.upstream = *s;
                        refs.emplace_back(*s, where(value));
                      }
                    }},
               });
      if (!upstream_given) {
        add(item, "route needs an \"upstream\"");
      }
      out.push_back(std::move(r));
    }
  }

  void read_match(const Node& v, route_match& m) {
    if (!expect(v, kind::map, "match")) {
      return;
    }
    read_map(v, "in match",
             {
                 {"host",
                  [&](const Node& value) {
                    auto s = read_name(value, "match host");
                    if (!s) {
                      return;
                    }
                    // Matching ignores the port of the Host header, so a port here could never match.
                    bool bracketed = s->front() == '[';
                    auto colon = s->rfind(':');
                    bool has_port = bracketed ? (s->find("]:") != std::string::npos) : colon != std::string::npos;
                    if (has_port) {
                      add(value,
                          fmt::format("match host {} must not include a port (the port is ignored when matching)",
                                      quote(*s)));
                      return;
                    }
                    if (!bracketed && !valid_hostname(*s) && !looks_like_ipv4(*s)) {
                      add(value, fmt::format("invalid match host {}: use letters, digits, '-' and '.'", quote(*s)));
                      return;
                    }
                    m.host = lower(*s);
                  }},
                 {"path_prefix",
                  [&](const Node& value) {
                    auto s = read_name(value, "path_prefix");
                    if (!s) {
                      return;
                    }
                    if (s->front() != '/') {
                      add(value, fmt::format("path_prefix {} must start with \"/\"", quote(*s)));
                      return;
                    }
                    m.path_prefix = *s;
                  }},
                 {"headers", [&](const Node& value) { read_header_matches(value, m.headers); }},
             });
  }

  void read_header_matches(const Node& v, std::vector<header_match>& out) {
    if (!expect(v, kind::map, "headers")) {
      return;
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
      const Node key = it->first;  // copies: `it->` yields a temporary proxy
      const Node value = it->second;
      if (!expect(key, kind::scalar, "a header name")) {
        continue;
      }
      // RFC 9110 token characters: anything else could never appear in a request.
      const auto& name = key.Scalar();
      bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
      });
      if (!valid) {
        add(key, fmt::format("invalid header name {}", quote(name)));
        continue;
      }
      std::string lowered = lower(name);
      if (std::any_of(out.begin(), out.end(), [&](const header_match& h) { return h.name == lowered; })) {
        add(key, fmt::format("header {} is matched twice", quote(name)));
        continue;
      }
      if (value.IsNull()) {
        add(key, fmt::format("header {} needs a value to match (quote it, e.g. \"1\")", quote(name)));
        continue;
      }
      if (!expect(value, kind::scalar, fmt::format("the value of header {}", quote(name)))) {
        continue;
      }
      out.push_back({std::move(lowered), value.Scalar()});
    }
  }

  // --- upstreams ---

  void read_upstreams(const Node& v) {
    if (!expect(v, kind::list, "upstreams")) {
      return;
    }
    for (const auto& item : v) {
      read_upstream(item);
    }
  }

  void read_upstream(const Node& n) {
    if (!expect(n, kind::map, "each upstream")) {
      return;
    }
    upstream up;
    up.where = where(n);
    bool name_given = false;
    std::optional<mark> name_at;
    bool backends_given = false;

    read_map(n, "in upstream",
             {
                 {"name",
                  [&](const Node& v) {
                    name_given = true;
                    if (auto s = read_name(v, "upstream name")) {
                      up.name = *s;
                      name_at = where(v);
                    }
                  }},
                 {"balance",
                  [&](const Node& v) {
                    auto b = read_enum<balance_policy>(v, "balance",
                                                       {{"least_request", balance_policy::least_request},
                                                        {"round_robin", balance_policy::round_robin},
                                                        {"random", balance_policy::random},
                                                        {"consistent_hash", balance_policy::consistent_hash}});
                    if (b) {
                      up.balance = *b;
                    }
                  }},
                 {"dns_refresh", to_duration(up.dns_refresh, "dns_refresh")},
                 {"max_response_headers",
                  [&](const Node& v) {
                    if (auto s = read_size(v, "max_response_headers")) {
                      if (*s == 0) {
                        add(v, "max_response_headers must be greater than 0");
                      } else {
                        up.max_response_headers = *s;
                      }
                    }
                  }},
                 {"max_response_header_fields",
                  [&](const Node& v) {
                    if (auto n = read_uint(v, "max_response_header_fields", 1, 10000)) {
                      up.max_response_header_fields = static_cast<std::uint32_t>(*n);
                    }
                  }},
                 {"slow_start", to_duration(up.slow_start, "slow_start", true)},
                 {"tls", [&](const Node& v) { up.tls = read_upstream_tls(v); }},
                 {"backends",
                  [&](const Node& v) {
                    backends_given = true;
                    read_backends(v, up);
                  }},
                 {"health_check", [&](const Node& v) { read_health_check(v, up.health); }},
                 {"outlier_detection", [&](const Node& v) { read_outlier_detection(v, up.outlier); }},
                 {"circuit_breaker", [&](const Node& v) { read_circuit_breaker(v, up.breaker); }},
                 {"limits", [&](const Node& v) { read_limits(v, up.limit); }},
                 {"retries", [&](const Node& v) { read_retries(v, up.retry); }},
                 {"timeouts", [&](const Node& v) { read_timeouts(v, up.timeout); }},
                 {"degradation", [&](const Node& v) { read_degradation(v, up.degrade); }},
             });

    std::string label = name_at ? fmt::format("upstream \"{}\"", up.name) : std::string("upstream");
    if (!name_given) {
      add(n, "upstream needs a \"name\"");
    }
    if (!backends_given) {
      add(n, fmt::format("{} needs at least one backend", label));
    }
    if (name_at) {
      if (auto first = upstream_names_.find(up.name); first != upstream_names_.end()) {
        add(*name_at, fmt::format("duplicate upstream name \"{}\" (first at line {})", up.name, first->second.line));
      } else {
        upstream_names_.emplace(up.name, *name_at);
      }
    }
    cfg_.upstreams.push_back(std::move(up));
  }

  std::optional<upstream_tls> read_upstream_tls(const Node& v) {
    if (!expect(v, kind::map, "upstream tls")) {
      return std::nullopt;
    }
    upstream_tls tls;
    read_map(v, "in upstream tls",
             {
                 {"ca",
                  [&](const Node& value) {
                    tls.ca_at = where(value);
                    if (auto p = read_file_path(value, "ca")) {
                      tls.ca = *p;
                    }
                  }},
                 {"verify",
                  [&](const Node& value) {
                    if (auto b = read_bool(value, "verify")) {
                      tls.verify = *b;
                    }
                  }},
                 {"sni",
                  [&](const Node& value) {
                    auto s = read_name(value, "sni");
                    if (!s) {
                      return;
                    }
                    // RFC 6066: SNI carries a DNS name, never an IP literal.
                    if (!valid_hostname(*s) || looks_like_ipv4(*s)) {
                      add(value, fmt::format("invalid sni {}: expected a DNS name", quote(*s)));
                      return;
                    }
                    tls.sni = *s;
                  }},
             });
    return tls;
  }

  void read_backends(const Node& v, upstream& up) {
    if (!expect(v, kind::list, "backends")) {
      return;
    }
    if (v.size() == 0) {
      add(v, "backends must list at least one backend");
      return;
    }
    bool all_ok = true;
    // Keyed by the address as the balancer will see it: "[::1]:80" and "[0::1]:80" are the same.
    std::map<std::string, int> seen;
    for (const auto& item : v) {
      auto b = read_backend(item);
      if (!b) {
        all_ok = false;
        continue;
      }
      std::string key = fmt::format("{}|{}", lower(b->addr.host), b->addr.port);
      if (auto k = bind_key_of(b->addr)) {
        key = fmt::format("{}|{}", std::string(k->bytes.begin(), k->bytes.end()), k->port);
      }
      if (auto first = seen.find(key); first != seen.end()) {
        add(b->where, fmt::format("backend {} is listed twice (first at line {})", b->addr.text, first->second));
        all_ok = false;
        continue;
      }
      seen.emplace(key, b->where.line);
      up.backends.push_back(std::move(*b));
    }
    // Only judged when every backend was readable, so that one bad address does not also claim
    // the upstream has no primaries.
    if (all_ok && std::all_of(up.backends.begin(), up.backends.end(), [](const backend& b) { return b.backup; })) {
      add(v, "backends are all backups: at least one must be a primary (backup: false)");
    }
  }

  std::optional<backend> read_backend(const Node& n) {
    if (!expect(n, kind::map, "each backend")) {
      return std::nullopt;
    }
    backend b;
    b.where = where(n);
    bool ok = true;
    bool address_given = false;
    read_map(n, "in backend",
             {
                 {"address",
                  [&](const Node& v) {
                    address_given = true;
                    auto a = read_address(v, "backend address", false);
                    ok = ok && a.has_value();
                    if (a) {
                      b.addr = *a;
                    }
                  }},
                 {"weight",
                  [&](const Node& v) {
                    auto w = read_uint(v, "weight", 1, 1000);
                    ok = ok && w.has_value();
                    b.weight = static_cast<std::uint32_t>(w.value_or(1));
                  }},
                 {"backup",
                  [&](const Node& v) {
                    auto x = read_bool(v, "backup");
                    ok = ok && x.has_value();
                    b.backup = x.value_or(false);
                  }},
             });
    if (!address_given) {
      add(n, "backend needs an \"address\"");
      return std::nullopt;
    }
    if (!ok) {
      return std::nullopt;
    }
    return b;
  }

  void read_health_check(const Node& v, health_check& hc) {
    if (is_false(v)) {
      hc.enabled = false;
      return;
    }
    if (!v.IsMap()) {
      add(v, fmt::format("health_check must be false or a map, got {}", describe(v)));
      return;
    }
    std::optional<mark> http_key;
    std::optional<mark> tcp_key;
    bool interval_ok = true;
    bool timeout_ok = true;
    std::optional<mark> timeout_at;
    read_map(v, "in health_check",
             {
                 {"http",
                  [&](const Node& k, const Node& value) {
                    http_key = where(k);
                    hc.type = health_check::kind::http;
                    read_http_check(value, hc);
                  }},
                 {"tcp",
                  [&](const Node& k, const Node& value) {
                    tcp_key = where(k);
                    hc.type = health_check::kind::tcp;
                    // `tcp: {}` and a bare `tcp:` both mean "connect and close"; there is nothing to set.
                    if (value.IsMap()) {
                      read_map(value, "in health_check tcp", {});
                    } else if (!value.IsNull()) {
                      add(value, fmt::format("health_check tcp must be {{}}, got {}", describe(value)));
                    }
                  }},
                 {"interval",
                  [&](const Node& value) {
                    auto d = read_duration(value, "interval", false);
                    interval_ok = d.has_value();
                    hc.interval = d.value_or(hc.interval);
                  }},
                 {"timeout",
                  [&](const Node& value) {
                    auto d = read_duration(value, "timeout", false);
                    timeout_ok = d.has_value();
                    timeout_at = where(value);
                    hc.timeout = d.value_or(hc.timeout);
                  }},
                 {"healthy_threshold", to_uint(hc.healthy_threshold, "healthy_threshold", 1, uint32_max)},
                 {"unhealthy_threshold", to_uint(hc.unhealthy_threshold, "unhealthy_threshold", 1, uint32_max)},
             });
    if (http_key && tcp_key) {
      add(std::max(*http_key, *tcp_key,
                   [](mark a, mark b) { return std::tie(a.line, a.col) < std::tie(b.line, b.col); }),
          "health_check takes http or tcp, not both");
    }
    // A probe that may outlive its interval would overlap the next one.
    if (interval_ok && timeout_ok && hc.timeout > hc.interval) {
      add(timeout_at.value_or(where(v)),
          fmt::format("health_check timeout ({}) must not be longer than its interval ({})", duration_text(hc.timeout),
                      duration_text(hc.interval)));
    }
  }

  void read_http_check(const Node& v, health_check& hc) {
    // `http: {}` (or a bare `http:`) probes the default path.
    if (v.IsNull()) {
      return;
    }
    if (!expect(v, kind::map, "health_check http")) {
      return;
    }
    read_map(v, "in health_check http",
             {
                 {"path",
                  [&](const Node& value) {
                    auto s = read_name(value, "health_check path");
                    if (s && s->front() != '/') {
                      add(value, fmt::format("health_check path {} must start with \"/\"", quote(*s)));
                    } else if (s) {
                      hc.http_path = *s;
                    }
                  }},
                 {"expect_status",
                  [&](const Node& value) { read_status_list(value, "expect_status", 100, hc.expect_status); }},
                 {"host",
                  [&](const Node& value) {
                    auto s = read_name(value, "health_check host");
                    if (s && !valid_hostname(*s)) {
                      add(value, fmt::format("invalid health_check host {}: expected a DNS name", quote(*s)));
                    } else if (s) {
                      hc.http_host = *s;
                    }
                  }},
             });
  }

  void read_outlier_detection(const Node& v, outlier_detection& od) {
    if (is_false(v)) {
      od.enabled = false;
      return;
    }
    if (!v.IsMap()) {
      add(v, fmt::format("outlier_detection must be false or a map, got {}", describe(v)));
      return;
    }
    read_map(v, "in outlier_detection",
             {
                 {"consecutive_failures", to_uint(od.consecutive_failures, "consecutive_failures", 1, uint32_max)},
                 {"ejection_time", to_duration(od.ejection_time, "ejection_time")},
                 {"max_ejection_percent",
                  [&](const Node& value) {
                    auto p = read_percent(value, "max_ejection_percent", true);
                    if (p && *p != std::floor(*p)) {
                      add(value, "max_ejection_percent must be a whole percentage");
                    } else if (p) {
                      od.max_ejection_percent = static_cast<std::uint32_t>(*p);
                    }
                  }},
             });
  }

  // A non-empty list of HTTP statuses, each at least `lowest`; `out` is set only when all are valid.
  void read_status_list(const Node& value, std::string_view what, unsigned lowest, std::vector<int>& out) {
    if (!expect(value, kind::list, what)) {
      return;
    }
    if (value.size() == 0) {
      add(value, fmt::format("{} must list at least one status", what));
      return;
    }
    std::vector<int> statuses;
    for (const auto& s : value) {
      if (auto code = read_uint(s, "status", lowest, 599)) {
        statuses.push_back(static_cast<int>(*code));
      }
    }
    if (statuses.size() == value.size()) {
      out = std::move(statuses);
    }
  }

  void read_circuit_breaker(const Node& v, circuit_breaker& cb) {
    if (is_false(v)) {
      cb.enabled = false;
      return;
    }
    if (!v.IsMap()) {
      add(v, fmt::format("circuit_breaker must be false or a map, got {}", describe(v)));
      return;
    }
    read_map(v, "in circuit_breaker",
             {
                 {"failure_rate", to_percent(cb.failure_rate, "failure_rate", false)},
                 {"slow_call_duration", to_duration(cb.slow_call_duration, "slow_call_duration")},
                 {"slow_call_rate", to_percent(cb.slow_call_rate, "slow_call_rate", false)},
                 {"window", to_duration(cb.window, "window")},
                 {"minimum_requests", to_uint(cb.minimum_requests, "minimum_requests", 1, uint32_max)},
                 {"open_duration", to_duration(cb.open_duration, "open_duration")},
                 {"half_open_requests", to_uint(cb.half_open_requests, "half_open_requests", 1, uint32_max)},
                 {"failure_status",
                  [&](const Node& value) { read_status_list(value, "failure_status", 400, cb.failure_status); }},
             });
  }

  void read_limits(const Node& v, limits& lim) {
    if (!expect(v, kind::map, "limits")) {
      return;
    }
    read_map(v, "in limits",
             {
                 {"max_connections", to_uint(lim.max_connections, "max_connections", 1, uint32_max)},
                 {"max_pending", to_uint(lim.max_pending, "max_pending", 1, uint32_max)},
                 {"max_requests", to_uint(lim.max_requests, "max_requests", 1, uint32_max)},
             });
  }

  void read_retries(const Node& v, retries& r) {
    if (is_false(v)) {
      r.attempts = 0;
      return;
    }
    if (!v.IsMap()) {
      add(v, fmt::format("retries must be false or a map, got {}", describe(v)));
      return;
    }
    read_map(v, "in retries",
             {
                 {"attempts", to_uint(r.attempts, "attempts", 0, 10)},
                 {"on", [&](const Node& value) { read_retry_on(value, r); }},
                 {"budget", to_percent(r.budget, "budget", true)},
                 {"per_try_timeout", to_duration(r.per_try_timeout, "per_try_timeout", true)},
             });
  }

  // A given `on` list replaces the defaults entirely: what is not listed is not retried.
  void read_retry_on(const Node& v, retries& r) {
    if (!expect(v, kind::list, "retries on")) {
      return;
    }
    static const std::vector<std::string_view> names = {"connect_failure", "reset", "timeout"};
    retries parsed;
    parsed.on_connect_failure = false;
    parsed.on_reset = false;
    parsed.on_timeout = false;
    parsed.on_status.clear();
    std::vector<std::string> seen;
    bool ok = true;
    for (const auto& item : v) {
      if (!expect(item, kind::scalar, "each retry condition")) {
        ok = false;
        continue;
      }
      const auto& s = item.Scalar();
      if (std::find(seen.begin(), seen.end(), s) != seen.end()) {
        add(item, fmt::format("retry condition {} is listed twice", quote(s)));
        ok = false;
        continue;
      }
      seen.push_back(s);
      if (all_digits(s)) {
        auto code = parse_unsigned(s);
        if (!code || *code < 500 || *code > 599) {
          add(item, fmt::format("invalid retry status {}: only 500..599 can be retried", s));
          ok = false;
          continue;
        }
        parsed.on_status.push_back(static_cast<int>(*code));
      } else if (s == "connect_failure") {
        parsed.on_connect_failure = true;
      } else if (s == "reset") {
        parsed.on_reset = true;
      } else if (s == "timeout") {
        parsed.on_timeout = true;
      } else {
        add(item, fmt::format("unknown retry condition {}: expected connect_failure, reset, timeout or a status "
                              "500..599{}",
                              quote(s), did_you_mean(s, names)));
        ok = false;
      }
    }
    if (ok) {
      r.on_connect_failure = parsed.on_connect_failure;
      r.on_reset = parsed.on_reset;
      r.on_timeout = parsed.on_timeout;
      r.on_status = std::move(parsed.on_status);
    }
  }

  void read_timeouts(const Node& v, timeouts& t) {
    if (!expect(v, kind::map, "timeouts")) {
      return;
    }
    read_map(v, "in timeouts",
             {
                 {"connect", to_duration(t.connect, "connect timeout")},
                 {"request", to_duration(t.request, "request timeout")},
                 {"header", to_duration(t.header, "header timeout")},
                 {"idle", to_duration(t.idle, "idle timeout")},
             });
  }

  void read_degradation(const Node& v, degradation& d) {
    if (!expect(v, kind::map, "degradation")) {
      return;
    }
    read_map(v, "in degradation",
             {
                 {"panic_threshold", to_percent(d.panic_threshold, "panic_threshold", true)},
                 // 0s is a valid Retry-After ("retry at once"), unlike a zero timeout.
                 {"retry_after", to_duration(d.retry_after, "retry_after", true)},
             });
  }

  // --- checks across sections ---

  void check_bindings() {
    std::stable_sort(bindings_.begin(), bindings_.end(), [](const binding& a, const binding& b) {
      return std::tie(a.at.line, a.at.col) < std::tie(b.at.line, b.at.col);
    });
    for (std::size_t i = 0; i < bindings_.size(); ++i) {
      auto ki = bind_key_of(bindings_[i].addr);
      if (!ki) {
        continue;
      }
      for (std::size_t j = 0; j < i; ++j) {
        auto kj = bind_key_of(bindings_[j].addr);
        if (!kj || !clashes(*ki, *kj)) {
          continue;
        }
        const auto& earlier = bindings_[j];
        std::string owner = earlier.explicit_in_file
                                ? fmt::format("{} (line {})", earlier.owner, earlier.at.line)
                                : fmt::format("{} (admin.listen defaults to {})", earlier.owner, default_admin_listen);
        bool same = ki->v6 == kj->v6 && ki->bytes == kj->bytes;
        if (same) {
          add(bindings_[i].at, fmt::format("listen address {} is already used by {}", bindings_[i].addr.text, owner));
        } else {
          add(bindings_[i].at,
              fmt::format("listen address {} overlaps {} of {}", bindings_[i].addr.text, earlier.addr.text, owner));
        }
        break;
      }
    }
  }

  void check_upstream_refs() {
    std::vector<std::string> names;
    for (const auto& [name, at] : upstream_names_) {
      names.push_back(name);
    }
    for (const auto& ref : upstream_refs_) {
      if (upstream_names_.count(ref.name) == 0) {
        add(ref.at,
            fmt::format("{} refers to unknown upstream {}{}", ref.who, quote(ref.name), did_you_mean(ref.name, names)));
      }
    }
  }

  struct binding {
    address addr;
    mark at;
    std::string owner;
    bool explicit_in_file = false;
  };

  struct upstream_ref {
    std::string name;
    mark at;
    std::string who;
  };

  std::string file_;
  std::filesystem::path base_dir_;
  config cfg_;
  std::vector<error> errors_;
  std::vector<std::pair<Node, mark>> null_values_;
  bool admin_given_ = false;
  std::vector<binding> bindings_;
  std::map<std::string, mark> listener_names_;
  std::map<std::string, mark> upstream_names_;
  std::vector<upstream_ref> upstream_refs_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

const upstream* config::find_upstream(const std::string& name) const {
  for (const auto& u : upstreams) {
    if (u.name == name) {
      return &u;
    }
  }
  return nullptr;
}

std::string error::str() const {
  // Problems with the file itself (cannot open it) have no position.
  if (line <= 0) {
    return fmt::format("{}: {}", file, message);
  }
  return fmt::format("{}:{}:{}: {}", file, line, col, message);
}

load_result load_string(const std::string& text, const std::string& file) {
  // The loader does not throw on bad input; this guard is for the unforeseen (allocation failure, a
  // yaml-cpp corner), since callers such as a live reload must never be taken down by a config.
  try {
    return loader(file).load(text);
  } catch (const std::exception& e) {
    load_result r;
    r.errors.push_back(error{file, 0, 0, fmt::format("internal error while loading the config: {}", e.what())});
    return r;
  } catch (...) {
    load_result r;
    r.errors.push_back(error{file, 0, 0, "internal error while loading the config"});
    return r;
  }
}

load_result load_file(const std::string& path) {
  auto fail = [&](std::string message) {
    load_result r;
    r.errors.push_back(error{path, 0, 0, std::move(message)});
    return r;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return fail(fmt::format("cannot open config file: {}", std::error_code(errno, std::generic_category()).message()));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return fail("cannot read config file: is a directory");
  }
  std::string text;
  std::array<char, 16384> buf{};
  for (;;) {
    auto n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      auto message = std::error_code(errno, std::generic_category()).message();
      ::close(fd);
      return fail(fmt::format("cannot read config file: {}", message));
    }
    if (n == 0) {
      break;
    }
    text.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return load_string(text, path);
}

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
    } else if (looks_like_ipv4(host)) {
      return fail(fmt::format("invalid IPv4 address \"{}\"", host));
    } else if (!valid_hostname(host)) {
      return fail(fmt::format("invalid hostname \"{}\": use letters, digits, '-' and '.'", host));
    }
  }
  auto p = parse_unsigned(port);
  if (port.empty()) {
    return fail("missing port after ':'");
  }
  if (!p || *p < 1 || *p > 65535) {
    return fail(fmt::format("invalid port \"{}\": expected 1..65535", port));
  }
  a.port = static_cast<std::uint16_t>(*p);
  return a;
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
  std::string_view s(text);
  std::size_t digits = 0;
  while (digits < s.size() && is_digit(s[digits])) {
    ++digits;
  }
  auto number = parse_unsigned(s.substr(0, digits));
  if (!number) {
    return std::nullopt;
  }
  // Binary multiples throughout, as nginx and HAProxy read "k" and "m".
  std::string unit = lower(s.substr(digits));
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

std::string summary(const config& cfg) {
  std::size_t backends = 0;
  for (const auto& u : cfg.upstreams) {
    backends += u.backends.size();
  }
  std::size_t routes = 0;
  for (const auto& l : cfg.listeners) {
    routes += l.routes.size();
  }
  return fmt::format("config OK: {}, {}, {}, {}", plural(cfg.listeners.size(), "listener", "listeners"),
                     plural(cfg.upstreams.size(), "upstream", "upstreams"), plural(backends, "backend", "backends"),
                     plural(routes, "route", "routes"));
}

}  // namespace spillway::config
