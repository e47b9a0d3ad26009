// The public entry points (load_file, load_string, summary, ...) and the loader's driver: parse
// the YAML, read the top level (top_level.cpp and the section files), then run the checks that
// need the whole file (listen-address clashes, references to upstreams), and sort the errors.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <system_error>
#include <tuple>

#include "config/loader.h"

namespace spillway::config {

namespace detail {

namespace {

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

// yaml-cpp's messages for a tab in the indentation ("illegal block entry", ...) do not say what
// is wrong, and the tab is invisible in most editors.
std::string tab_hint(const std::string& text, const YAML::Mark& m) {
  if (m.pos < 0 || static_cast<std::size_t>(m.pos) > text.size()) {
    return {};
  }
  auto line_start = text.rfind('\n', m.pos == 0 ? 0 : static_cast<std::size_t>(m.pos) - 1);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  auto indent_end = text.find_first_not_of(" \t", line_start);
  auto indent = text.substr(line_start, indent_end == std::string::npos ? std::string::npos : indent_end - line_start);
  return indent.find('\t') == std::string::npos ? std::string() : " (tabs are not allowed in indentation)";
}

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace

loader::loader(std::string file) : file_(std::move(file)) {
  std::error_code ec;
  auto dir = std::filesystem::path(file_).parent_path();
  auto absolute_dir = std::filesystem::absolute(dir, ec);
  base_dir_ = ec ? dir : absolute_dir;
}

load_result loader::load(const std::string& text) {
  load_result result;
  Node root;
  YAML::Mark second_document = YAML::Mark::null_mark();
  try {
    // Not YAML::LoadAll(): yaml-cpp 0.7 (Debian 12) loops forever there, building empty
    // documents, on some malformed streams (e.g. `,isteners: []\n...`, found by fuzz_config;
    // fixed upstream in yaml-cpp PR #1319). Load() reads the first document; a second one is
    // looked for with at most two passes of the event parser.
    root = YAML::Load(text);
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
  if (root.IsNull()) {
    add(mark{1, 1}, "the config is empty: it needs at least \"listeners\" and \"upstreams\"");
  } else if (expect(root, kind::map, "the config")) {
    read_top(root);
  }
  check_bindings();
  check_upstream_refs();
  check_rate_limit_refs();

  std::stable_sort(errors_.begin(), errors_.end(),
                   [](const error& a, const error& b) { return std::tie(a.line, a.col) < std::tie(b.line, b.col); });
  result.errors = std::move(errors_);
  if (result.errors.empty()) {
    cfg_.path = file_;
    result.cfg = std::move(cfg_);
  }
  return result;
}

// Every listener and the admin API against those before it in the file: the later one is wrong.
void loader::check_bindings() {
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

void loader::check_upstream_refs() {
  std::vector<std::string_view> names;
  for (const auto& [name, at] : upstream_names_) {
    names.push_back(name);
  }
  for (const auto& ref : upstream_refs_) {
    if (upstream_names_.count(ref.name) == 0) {
      add(ref.at,
          fmt::format("{} refers to unknown upstream {}{}", ref.who, quote(ref.name), did_you_mean(ref.name, names)));
    }
  }
  for (const auto& u : cfg_.upstreams) {
    if (u.health.enabled && u.health.type == health_check::kind::grpc && u.protocol != upstream_protocol::http2) {
      add(*u.health.grpc_at,
          fmt::format("upstream {}: a grpc health check needs protocol: http2 (gRPC is HTTP/2)", quote(u.name)));
    }
    if (u.protocol != upstream_protocol::http2) {
      continue;
    }
    for (const auto& l : cfg_.listeners) {
      if (l.proto == protocol::tcp && l.upstream == u.name) {
        add(u.protocol_at, fmt::format("upstream {} speaks http2, but tcp listener {} relays bytes to it: protocol: "
                                       "http2 is for upstreams of http listeners",
                                       quote(u.name), quote(l.name)));
      }
    }
  }
}

}  // namespace detail

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
    return detail::loader(file).load(text);
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

// read(2) on an O_NONBLOCK descriptor rather than std::ifstream: a FIFO or a directory named as
// the config gives an error, not a hang.
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

std::string summary(const config& cfg) {
  std::size_t backends = 0;
  for (const auto& u : cfg.upstreams) {
    backends += u.backends.size();
  }
  std::size_t routes = 0;
  for (const auto& l : cfg.listeners) {
    routes += l.routes.size();
  }
  return fmt::format("config OK: {}, {}, {}, {}", detail::plural(cfg.listeners.size(), "listener", "listeners"),
                     detail::plural(cfg.upstreams.size(), "upstream", "upstreams"),
                     detail::plural(backends, "backend", "backends"), detail::plural(routes, "route", "routes"));
}

}  // namespace spillway::config
