// libFuzzer target: the HTTP/1 request parser on arbitrary client bytes, split into chunks and
// pipelined messages as the input chooses (layout and invariants: parser_driver.h).

#include "parser_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  spillway::fuzz::run_parser(spillway::http::parser::kind::request, data, size);
  return 0;
}
