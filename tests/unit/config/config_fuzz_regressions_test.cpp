// Inputs fuzz_config (tests/fuzz) found, replayed as found; the same bytes are in
// tests/fuzz/corpus/fuzz_config/crash-*.

#include "config/config.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::config {
namespace {

// yaml-cpp's LoadAll() never returned on these (it built empty documents until memory ran out): a
// reload or `spillway validate` of such a file hung. They are refused with a position instead.
TEST(config_fuzz_regressions, streams_yaml_cpp_loads_forever_are_refused) {
  const std::string inputs[] = {
      ",isteners: []\nlisetners: []\nupstreams:U[ { ae:m na, name: b } ]\n",
      std::string("!s27.0.0.8:10,2\x01\x00 half\xff\xff\xff\xff\xff"
                  "0,2s, h\n",
                  35),
      ",\n",
  };
  for (const auto& text : inputs) {
    auto r = load_string(text, "fuzz.yaml");
    EXPECT_FALSE(r.cfg.has_value());
    ASSERT_FALSE(r.errors.empty());
    for (const auto& e : r.errors) {
      EXPECT_GE(e.line, 1) << e.str();
      EXPECT_GE(e.col, 1) << e.str();
    }
  }
}

// The bounded look for a second document still finds one, where its root starts.
TEST(config_fuzz_regressions, a_second_document_is_still_an_error) {
  auto r = load_string("listeners: []\n---\nupstreams: []\n", "fuzz.yaml");
  EXPECT_FALSE(r.cfg.has_value());
  bool found = false;
  for (const auto& e : r.errors) {
    if (e.message.find("only one YAML document") != std::string::npos) {
      found = true;
      EXPECT_EQ(e.line, 3) << e.str();
      EXPECT_EQ(e.col, 1) << e.str();
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace spillway::config
