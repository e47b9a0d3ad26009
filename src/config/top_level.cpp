// The top level of a config file: workers, drain_timeout, drain_delay, metrics, admin, access_log
// and tracing, and the dispatch to listeners.cpp, upstreams.cpp and rate_limits.cpp.

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "config/loader.h"

namespace spillway::config::detail {

void loader::read_top(const Node& root) {
  bool have_listeners = false;
  read_map(root, "",
           {
               {"workers", [this](const Node& v) { read_workers(v); }},
               {"drain_timeout", to_duration(cfg_.drain_timeout, "drain_timeout", true)},
               {"drain_delay", to_duration(cfg_.drain_delay, "drain_delay", true)},
               {"admin", [this](const Node& v) { read_admin(v); }},
               {"listeners",
                [&](const Node& v) {
                  have_listeners = true;
                  read_listeners(v);
                }},
               {"upstreams", [this](const Node& v) { read_upstreams(v); }},
               {"rate_limits", [this](const Node& v) { read_rate_limits(v); }},
               {"tracing", [this](const Node& v) { read_tracing(v); }},
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
    use_default_admin_listen();
  }
}

void loader::read_workers(const Node& v) {
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

// The default admin address is bound like any other, so a listener on 127.0.0.1:9901 clashes
// with it (check_bindings names it as the default).
void loader::use_default_admin_listen() {
  cfg_.admin_api.listen = *parse_address(std::string(default_admin_listen));
  bindings_.push_back({cfg_.admin_api.listen, mark{}, "the admin API", false});
}

void loader::read_admin(const Node& v) {
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
               {"open_probes",
                [&](const Node& value) {
                  if (auto b = read_bool(value, "admin open_probes")) {
                    cfg_.admin_api.open_probes = *b;
                  }
                }},
           });
  if (!listen_given) {
    use_default_admin_listen();
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
void loader::read_admin_token(const Node& value) {
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

void loader::read_access_log(const Node& v) {
  if (!expect(v, kind::map, "access_log")) {
    return;
  }
  struct access_log log;
  bool path_given = false;
  read_map(v, "in access_log",
           {
               {"path",
                [&](const Node& value) {
                  // Not read_file_path(): the file need not exist yet (it is created when opened).
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

void loader::read_tracing(const Node& v) {
  if (!expect(v, kind::map, "tracing")) {
    return;
  }
  tracing_config t;
  t.where = where(v);
  read_map(v, "in tracing",
           {
               {"sample", to_percent(t.sample, "tracing sample", true)},
               {"otlp",
                [&](const Node& value) {
                  auto s = read_name(value, "tracing otlp");
                  if (!s) {
                    return;
                  }
                  std::string why;
                  std::string path;
                  auto a = parse_service_url(*s, "http://", 0, &path, &why);
                  if (!a) {
                    add(value, fmt::format("invalid tracing otlp {}: expected http://HOST:PORT/PATH, an OTLP/HTTP "
                                           "collector; https is not supported ({})",
                                           quote(*s), why));
                    return;
                  }
                  t.otlp = *a;
                  t.otlp_path = path.empty() ? "/v1/traces" : path;
                  t.otlp_text = *s;
                }},
               {"service_name",
                [&](const Node& value) {
                  if (auto s = read_name(value, "tracing service_name")) {
                    t.service_name = *s;
                  }
                }},
               {"max_queue", to_uint(t.max_queue, "tracing max_queue", 1, 1000000)},
           });
  cfg_.tracing = std::move(t);
}

// A template names known fields in braces: "{client} {status} {duration_ms}".
void loader::check_log_template(const Node& v, const std::string& format) {
  if (format == "json") {
    return;
  }
  for (std::size_t i = format.find('{'); i != std::string::npos; i = format.find('{', i + 1)) {
    auto end = format.find('}', i);
    if (end == std::string::npos) {
      add(v, "access_log format has a \"{\" without its \"}\"");
      return;
    }
    auto name = format.substr(i + 1, end - i - 1);
    if (std::none_of(std::begin(access_log_fields), std::end(access_log_fields),
                     [&](const char* known) { return name == known; })) {
      add(v, fmt::format("access_log format: unknown field {{{}}}", name));
    }
  }
}

}  // namespace spillway::config::detail
