// libFuzzer target: the HTTP/1 response parser on arbitrary backend bytes, split into chunks and
// several responses as the input chooses, with set_no_body (a HEAD's response) on some of them
// (layout and invariants: parser_driver.h).

#include "parser_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  spillway::fuzz::run_parser(spillway::http::parser::kind::response, data, size);
  return 0;
}
