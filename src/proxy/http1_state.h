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

// What any request needs while it is under way, whatever its protocol: the record, the facts of
// its head, rewrite scratch and the ids made for it. An HTTP/2 stream to an HTTP/2 backend needs
// nothing else, so it takes only this (a few hundred bytes from the heap, several to a page) from
// the worker's recycler, not a whole http1_state (a page of its own per stream: at 2,560 streams
// in flight, a TLB entry and cold lines each).
struct request_state {
  // Makes a recycled state as good as new for another request (strings keep their capacity).
  void reset() {
    replay.clear();
    facts = upstream_head_facts{};
    have_request_id = false;
    rec = http_request_record{};
  }

  bool have_request_id = false;
  std::array<char, 36> request_id{};  // generated X-Request-Id of the current request, if any
  std::string host_scratch;
  std::string rate_key;  // a rate limit's key for this request
  rewrite_scratch scratch;
  std::vector<http::header> h2_fields;  // a head for (or from) HTTP/2, see h2_request_fields
  upstream_head_facts facts;            // of the current request (shape, client, upgrade, request id)
  std::string replay;                   // the current request's body as sent (raw framing), while it fits
  http_request_record rec;
};

// An HTTP/1 connection's whole per-request state: the request's (above) and the wire's, the two
// parsers and buffers. An HTTP/2 stream takes one too, for an exchange with an HTTP/1 backend.
struct http1_state : request_state {
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
    reset_wire();
    request_state::reset();
  }
  // The wire's fields without the parsers, for an HTTP/2 stream's exchange with an HTTP/1 backend:
  // it never uses request_parser, and resets response_parser when the exchange begins. (Each
  // parser's reset touches its llhttp state, a cache miss apiece in a state last used hundreds of
  // streams ago.)
  void reset_wire() {
    dbegin = dend = ubegin = uend = 0;
    upstream_drained = false;
    out.clear();
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
  // stream's exchange with an HTTP/1 backend (which never uses dbuf) one, instead of a page for
  // each group of fields between the buffers.
  http::parser request_parser{http::parser::kind::request};
  http::parser response_parser{http::parser::kind::response};
  std::size_t dbegin = 0;  // dbuf[dbegin, dend): downstream bytes received and not yet consumed
  std::size_t dend = 0;
  std::size_t ubegin = 0;  // ubuf[ubegin, uend): upstream bytes received and not yet consumed
  std::size_t uend = 0;
  // The last read from the backend returned less than ubuf holds (the socket was left empty), and
  // nothing was awaited since: the connection can be watched while idle (idle_watch.h).
  bool upstream_drained = false;
  std::string out;               // a head being written; reused so that a warm connection does not allocate
  std::array<char, 16384> ubuf;  // upstream bytes (see ubegin)
  std::array<char, 16384> dbuf;  // downstream bytes (see dbegin)
};

}  // namespace spillway::proxy
