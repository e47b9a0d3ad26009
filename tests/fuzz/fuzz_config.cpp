// libFuzzer target: the config loader (config::load_string) on arbitrary text. It must never throw,
// never report an internal error (an exception it did not foresee), and every error must point at
// a line and column inside the text. A config it accepts must summarise and diff against itself.

#include "config/config.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "invariant broken: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // A directory that does not exist: relative certificate paths in the text resolve into it.
  const std::string file = "/nonexistent/spillway-fuzz/config.yaml";
  int lines = 1;
  for (char c : text) {
    lines += c == '\n' ? 1 : 0;
  }
  auto r = spillway::config::load_string(text, file);
  if (r.cfg.has_value() == !r.errors.empty()) {
    fail("a config and errors, or neither", std::to_string(r.errors.size()));
  }
  for (const auto& e : r.errors) {
    const auto shown = e.str();
    // load_string() turns an exception it did not foresee into this (at line 0).
    if (e.message.rfind("internal error while loading the config", 0) == 0) {
      fail("the loader threw", shown);
    }
    if (e.file != file) {
      fail("error names another file", shown);
    }
    // yaml-cpp may point one past the last line (an unexpected end of input).
    if (e.line < 1 || e.line > lines + 1 || e.col < 1) {
      fail("error position outside the text", shown);
    }
    if (e.message.empty()) {
      fail("error without a message", shown);
    }
  }
  if (r.cfg) {
    (void)spillway::config::summary(*r.cfg);
    if (!spillway::config::diff(*r.cfg, *r.cfg).empty()) {
      fail("a config differs from itself", spillway::config::summary(*r.cfg));
    }
  }
  return 0;
}
