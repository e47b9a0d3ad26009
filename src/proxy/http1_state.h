#pragma once
// What an HTTP/1 connection needs only while a request is under way: the two parsers, the two
// 16 KiB buffers, the head being written, rewrite scratch and the request's record. An idle
// keep-alive connection owns none of it (see http_session::park): it is taken from the
// worker's recycler when the client's next bytes can be read and given back when the connection
// is idle again with nothing buffered, so that an idle connection costs a few hundred bytes
// instead of 33 KiB, and a warm worker does not allocate per request.

#include "common/error.h"
#include "http/parser.h"
#include "proxy/http1_rewrite.h"
#include "proxy/request_record.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace spillway::proxy {

struct http1_state {
  http1_state() { out.reserve(1024); }  // grows once for bigger heads; the state is reused

  // States live in their own pages (mmap), so that those freed after a burst go back to the
  // system at once instead of staying in the heap as free chunks that count as resident memory.
  // The worker's recycler keeps the ones in steady use, so this costs a system call only when a
  // burst outgrows it; when mmap fails (vm.max_map_count), the heap. (Sanitized builds always use
  // the heap, where the sanitizers can see overflows.)
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  // Makes a recycled state as good as new for another connection (buffers and strings keep their
  // capacity).
  void reset() {
    request_parser.reset();
    response_parser.reset();
    reset_fields();
  }
  // The same without the parsers, for an HTTP/2 stream: it never uses request_parser, and resets
  // response_parser when an exchange with an HTTP/1 backend begins. (Each parser's reset touches
  // its llhttp state, a cache miss apiece in a state last used hundreds of streams ago: with HTTP/2
  // backends reset() was 5% of the proxy's samples.)
  void reset_fields() {
    dbegin = dend = ubegin = uend = 0;
    upstream_drained = false;
    out.clear();
    replay.clear();
    facts = upstream_head_facts{};
    have_request_id = false;
    rec = http_request_record{};
  }

  // The backend's answer (response_parser's) was read to its end, and its connection can carry
  // another request: the backend keeps it alive, the answer was not delimited by its close, nothing
  // beyond it was read, and no body was claimed by a 1xx or 204 (the client was not given one, so
  // its bytes may still come). `request_whole`: the request went out whole.
  bool upstream_reusable(bool request_whole) const {
    const auto& resp = response_parser.head();
    const bool claimed_body = (resp.status < 200 || resp.status == 204) && (resp.chunked || resp.content_length > 0);
    return resp.keep_alive && request_whole && !response_parser.body_until_close() && ubegin == uend && !claimed_body;
  }

  // The fields first, the buffers last (ubuf before dbuf): a request with a small head touches two
  // pages of the state (the fields with the start of ubuf, and the start of dbuf), an HTTP/2
  // stream (which never uses dbuf) one, instead of a page for each group of fields between the
  // buffers. Fewer page faults for a state new from mmap (a burst of new HTTP/2 streams takes one
  // each) and fewer TLB entries for the states in use at once.
  http::parser request_parser{http::parser::kind::request};
  http::parser response_parser{http::parser::kind::response};
  std::size_t dbegin = 0;  // dbuf[dbegin, dend): downstream bytes received and not yet consumed
  std::size_t dend = 0;
  std::size_t ubegin = 0;  // ubuf[ubegin, uend): upstream bytes received and not yet consumed
  std::size_t uend = 0;
  // The last read from the backend returned less than ubuf holds (the socket was left empty), and
  // nothing was awaited since: the connection can be watched while idle (idle_watch.h).
  bool upstream_drained = false;
  bool have_request_id = false;
  std::array<char, 36> request_id{};  // generated X-Request-Id of the current request, if any
  std::string out;                    // a head being written; reused so that a warm connection does not allocate
  std::string host_scratch;
  std::string rate_key;  // a rate limit's key for this request
  rewrite_scratch scratch;
  std::vector<http::header> h2_fields;  // a head for (or from) HTTP/2, see h2_request_fields
  upstream_head_facts facts;            // of the current request (shape, client, upgrade, request id)
  std::string replay;                   // the current request's body as sent (raw framing), while it fits
  http_request_record rec;
  std::array<char, 16384> ubuf;  // upstream bytes (see ubegin)
  std::array<char, 16384> dbuf;  // downstream bytes (see dbegin)
};

}  // namespace spillway::proxy
