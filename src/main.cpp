// spillway: the command line (SPEC section 1).

#include "common/log.h"
#include "common/version.h"
#include "config/config.h"
#include "server/server.h"
#include "tls/context.h"
#include "upstream/host.h"
#include "upstream/srv.h"

#include <fmt/format.h>
#include <llhttp.h>
#include <openssl/crypto.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using spillway::version;

// Every client and backend connection is a file descriptor, and the soft limit most shells and
// service managers start a process with (often 1024) would cap a proxy far below what listeners'
// max_connections allow. Like HAProxy and NGINX's worker_rlimit_nofile, take what the hard limit
// allows.
void raise_open_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) {
    return;
  }
  const auto was = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &lim) == 0) {
    spillway::log::info("open files: limit raised from {} to {}", was, lim.rlim_cur);
  }
}

// validate: what each hostname backend resolves to from here, each address a backend of its own
// (the running Spillway looks names up again every dns_refresh). A name that does not resolve here
// is reported, not an error: it may resolve only where Spillway runs.
void print_names(const spillway::config::config& cfg) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  for (const auto& u : cfg.upstreams) {
    for (const auto& b : u.backends) {
      if (b.addr.is_ip) {
        continue;
      }
      boost::system::error_code ec;
      std::vector<std::string> addresses;
      auto add = [&](std::string text) {
        if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
          addresses.push_back(std::move(text));
        }
      };
      if (b.addr.srv) {
        std::vector<spillway::upstream::srv_address> found;
        ec = spillway::upstream::lookup_srv(b.addr.host, found);
        for (const auto& a : found) {
          add(fmt::format("{} ({} weight {}{})", spillway::upstream::endpoint_text(a.endpoint), a.target, a.weight,
                          a.backup ? ", backup" : ""));
        }
      } else {
        for (const auto& r : resolver.resolve(b.addr.host, std::to_string(b.addr.port), ec)) {
          add(spillway::upstream::endpoint_text(r.endpoint()));
        }
      }
      std::sort(addresses.begin(), addresses.end());
      if (ec || addresses.empty()) {
        std::printf("upstream \"%s\": %s does not resolve here (%s); Spillway keeps it out of traffic until it does\n",
                    u.name.c_str(), b.addr.text.c_str(), ec ? ec.message().c_str() : "no addresses");
        continue;
      }
      std::string list;
      for (const auto& a : addresses) {
        list += list.empty() ? a : ", " + a;
      }
      std::printf("upstream \"%s\": %s resolves to %s (each address a backend)\n", u.name.c_str(), b.addr.text.c_str(),
                  list.c_str());
    }
  }
}

void usage(FILE* out) {
  std::fprintf(out,
               "Spillway %s: an L4/L7 load balancer\n"
               "\n"
               "usage: spillway <command> [options]\n"
               "\n"
               "commands:\n"
               "  run -c FILE        run the balancer with that config until SIGTERM/SIGINT\n"
               "                     (SIGHUP reloads the config; SIGTERM/SIGINT drain, then exit 0)\n"
               "  validate -c FILE   check a config: exit 0 and a summary, or exit 1 and one\n"
               "                     FILE:LINE:COL: message line per problem\n"
               "  version            print the version and the library versions it was built with\n"
               "\n"
               "Run `spillway <command> --help` for the command's options.\n",
               version);
}

void command_usage(std::string_view cmd, FILE* out) {
  if (cmd == "run") {
    std::fprintf(out,
                 "usage: spillway run -c FILE [--log-level debug|info|warn|error]\n"
                 "  -c, --config FILE   the YAML config (see README)\n"
                 "  --log-level LEVEL   lowest level logged to stderr (default info)\n");
  } else if (cmd == "validate") {
    std::fprintf(out,
                 "usage: spillway validate -c FILE [--diff OLD]\n"
                 "  -c, --config FILE   the YAML config to check\n"
                 "  --diff OLD          also print what reloading FILE over OLD would change\n"
                 "exit 0 and a one-line summary if valid; exit 1 and FILE:LINE:COL: message lines if not\n");
  } else {
    std::fprintf(out, "usage: spillway version\n");
  }
}

struct options {
  std::string config;
  std::string diff_against;
  std::string log_level = "info";
  bool help = false;
  std::string error;
};

options parse_options(std::string_view cmd, const std::vector<std::string_view>& args) {
  options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto a = args[i];
    if (a == "--help" || a == "-h") {
      o.help = true;
    } else if ((a == "-c" || a == "--config") && i + 1 < args.size()) {
      o.config = std::string(args[++i]);
    } else if (a.starts_with("--config=")) {
      o.config = std::string(a.substr(9));
    } else if (cmd == "validate" && a == "--diff" && i + 1 < args.size()) {
      o.diff_against = std::string(args[++i]);
    } else if (cmd == "run" && a == "--log-level" && i + 1 < args.size()) {
      o.log_level = std::string(args[++i]);
    } else {
      o.error = "unknown or incomplete option: " + std::string(a);
      return o;
    }
  }
  if (!o.help && cmd != "version" && o.config.empty()) {
    o.error = "missing -c FILE";
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  // A flat dispatch over the commands and their options (SPEC section 1), kept in one place so
  // that usage and behaviour can be read side by side.
  using namespace spillway;
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string_view cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    usage(stdout);
    return 0;
  }
  if (cmd == "--version") {
    cmd = "version";
  }
  if (cmd != "run" && cmd != "validate" && cmd != "version") {
    std::fprintf(stderr, "spillway: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
  }
  std::vector<std::string_view> args(argv + 2, argv + argc);
  auto opts = parse_options(cmd, args);
  if (opts.help) {
    command_usage(cmd, stdout);
    return 0;
  }
  if (!opts.error.empty()) {
    std::fprintf(stderr, "spillway %s: %s\n", std::string(cmd).c_str(), opts.error.c_str());
    command_usage(cmd, stderr);
    return 2;
  }

  if (cmd == "version") {
    std::printf("spillway %s\nOpenSSL %s\nBoost %d.%d.%d\nllhttp %d.%d.%d\n", version,
                OpenSSL_version(OPENSSL_VERSION_STRING), BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000,
                BOOST_VERSION % 100, LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
    return 0;
  }

  if (cmd == "validate") {
    auto result = config::load_file(opts.config);
    if (result.cfg) {
      // Certificates, keys and CA files are read as `run` would read them.
      tls::build(*result.cfg, result.errors);
      if (!result.errors.empty()) {
        result.cfg.reset();
      }
    }
    if (!result.cfg) {
      for (const auto& e : result.errors) {
        std::printf("%s\n", e.str().c_str());
      }
      return 1;
    }
    std::printf("%s: %s\n", opts.config.c_str(), config::summary(*result.cfg).c_str());
    print_names(*result.cfg);
    if (!opts.diff_against.empty()) {
      auto old = config::load_file(opts.diff_against);
      if (!old.cfg) {
        for (const auto& e : old.errors) {
          std::printf("%s\n", e.str().c_str());
        }
        return 1;
      }
      auto changes = config::diff(*old.cfg, *result.cfg);
      if (changes.empty()) {
        std::printf("no changes against %s\n", opts.diff_against.c_str());
      }
      for (const auto& line : changes) {
        std::printf("%s\n", line.c_str());
      }
    }
    return 0;
  }

  log::level lvl;
  if (!log::parse_level(opts.log_level, lvl)) {
    std::fprintf(stderr, "spillway run: unknown log level \"%s\"\n", opts.log_level.c_str());
    return 2;
  }
  log::set_level(lvl);
  raise_open_file_limit();
  server::server s(opts.config);
  return s.run();
}
