#include "tracing/span.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>

namespace spillway::tracing {

namespace {

// Bytes JSON lets stand as they are in a string: printable ASCII but '"' and '\\'. Everything
// else is escaped byte by byte (\u00XX), so the output is ASCII whatever the input.
constexpr std::array<bool, 256> plain_bytes = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7f; ++c) {
    t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  }
  return t;
}();

constexpr std::size_t max_escaped = 6;  // \u00XX

// Writes byte `c` escaped at `p` (room for max_escaped), returning the end.
char* escape(unsigned char c, char* p) {
  if (c == '"' || c == '\\') {
    *p++ = '\\';
    *p++ = static_cast<char>(c);
    return p;
  }
  constexpr char digits[] = "0123456789abcdef";
  const char escaped[max_escaped] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 15]};
  std::memcpy(p, escaped, max_escaped);
  return p + max_escaped;
}

template <std::size_t N>
bool zero(const std::array<std::uint8_t, N>& id) {
  return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

// Writes one span object into `out` through a pointer into a buffer on the stack, appended to
// `out` at once (or when the stack buffer is full: a long text); no formatting library, no length
// check per byte.
class json_writer {
 public:
  // `comma`: a span went before.
  json_writer(std::string& out, bool comma, const trace_id& trace, const span_id& id, const span_id& parent,
              span_kind kind, std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name);
  void attr(std::string_view key, std::string_view value);  // key: ASCII, nothing JSON escapes
  void attr(std::string_view key, std::int64_t value);
  void finish(bool error, std::string_view message);

 private:
  // Room for `n` more bytes in the stack buffer, moving what it holds to out_ when it has not.
  void room(std::size_t n);
  void raw(std::string_view s);   // room() first
  void text(std::string_view s);  // a JSON string, escaped; any length
  void number_text(std::int64_t v);
  template <std::size_t N>
  void hex_text(const std::array<std::uint8_t, N>& id);
  void key(std::string_view k);

  std::string& out_;
  bool first_attr_ = true;
  std::array<char, 2048> buf_;
  char* p_ = buf_.data();
};

}  // namespace

void json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t run = 0;  // start of the bytes that need no escape, appended at once
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (plain_bytes[c]) {
      continue;
    }
    out.append(s.data() + run, i - run);
    char escaped[max_escaped];
    out.append(escaped, static_cast<std::size_t>(escape(c, escaped) - escaped));
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void json_writer::room(std::size_t n) {
  if (static_cast<std::size_t>(buf_.data() + buf_.size() - p_) < n) {
    out_.append(buf_.data(), static_cast<std::size_t>(p_ - buf_.data()));
    p_ = buf_.data();
  }
}

void json_writer::raw(std::string_view s) {
  std::memcpy(p_, s.data(), s.size());
  p_ += s.size();
}

void json_writer::text(std::string_view s) {
  if (max_escaped * s.size() + 2 > buf_.size()) {  // too long for the buffer, whatever it holds
    room(buf_.size());
    json_string(out_, s);
    return;
  }
  room(max_escaped * s.size() + 2);
  *p_++ = '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (plain_bytes[c]) {
      *p_++ = ch;
    } else {
      p_ = escape(c, p_);
    }
  }
  *p_++ = '"';
}

void json_writer::number_text(std::int64_t v) {
  room(24);
  *p_++ = '"';
  p_ = std::to_chars(p_, p_ + 21, v).ptr;
  *p_++ = '"';
}

template <std::size_t N>
void json_writer::hex_text(const std::array<std::uint8_t, N>& id) {
  room(2 * N + 2);
  *p_++ = '"';
  to_hex(id.data(), N, p_);
  p_ += 2 * N;
  *p_++ = '"';
}

json_writer::json_writer(std::string& out, bool comma, const trace_id& trace, const span_id& id, const span_id& parent,
                         span_kind kind, std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name)
    : out_(out) {
  raw(comma ? R"(,{"traceId":)" : R"({"traceId":)");
  hex_text(trace);
  raw(R"(,"spanId":)");
  hex_text(id);
  if (!zero(parent)) {
    raw(R"(,"parentSpanId":)");
    hex_text(parent);
  }
  raw(R"(,"name":)");
  text(name);
  room(64);
  raw(kind == span_kind::server ? R"(,"kind":2,"startTimeUnixNano":)" : R"(,"kind":3,"startTimeUnixNano":)");
  number_text(start_unix_ns);
  room(64);
  raw(R"(,"endTimeUnixNano":)");
  number_text(end_unix_ns);
  room(32);
  raw(R"(,"attributes":[)");
}

void json_writer::key(std::string_view k) {
  room(k.size() + 64);
  raw(first_attr_ ? R"({"key":")" : R"(,{"key":")");
  first_attr_ = false;
  raw(k);  // a name of ours: nothing to escape
}

void json_writer::attr(std::string_view k, std::string_view value) {
  key(k);
  raw(R"(","value":{"stringValue":)");
  text(value);
  room(2);
  raw("}}");
}

void json_writer::attr(std::string_view k, std::int64_t value) {
  key(k);
  raw(R"(","value":{"intValue":)");
  number_text(value);
  room(2);
  raw("}}");
}

void json_writer::finish(bool error, std::string_view message) {
  room(64);
  if (error) {
    raw(R"(],"status":{"code":2,"message":)");
    text(message);
    room(2);
    raw("}}");
  } else {
    raw("]}");
  }
  out_.append(buf_.data(), static_cast<std::size_t>(p_ - buf_.data()));
  p_ = buf_.data();
}

// Records: a span is its head, then items, each a tag byte, until tag_end or tag_error.
//   head:   kind (1), trace id (16), span id (8), parent (8), start (8), end (8), name (text)
//   text:   length (4), the bytes
//   items:  tag_string key (1) text | tag_int key (1) value (8) | tag_end | tag_error message (text)
// Native byte order, unaligned: written and read by the same process.
namespace {

enum : std::uint8_t { tag_string = 1, tag_int, tag_end, tag_error };

constexpr std::array<std::string_view, static_cast<std::size_t>(attribute::count_)> attribute_names = {
    "http.request.method", "url.path",        "http.response.status_code",
    "spillway.listener",   "spillway.route",  "spillway.upstream",
    "spillway.request_id", "spillway.reason", "spillway.try",
    "spillway.backend",    "error.type",      "spillway.retry_reason",
};

template <typename T>
char* put(char* p, const T& v) {
  std::memcpy(p, &v, sizeof v);
  return p + sizeof v;
}

void put_text(std::string& out, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(s.size(), UINT32_MAX));
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out.append(s.data(), n);
}

// Reads records back; any short or unknown field ends them (`ok` false): they are the process's
// own, so that is a bug, and what was read whole is kept.
struct record_reader {
  std::string_view in;
  bool ok = true;

  template <typename T>
  T get() {
    T v{};
    if (in.size() < sizeof v) {
      ok = false;
      in = {};
      return v;
    }
    std::memcpy(&v, in.data(), sizeof v);
    in.remove_prefix(sizeof v);
    return v;
  }
  std::string_view text() {
    const auto n = get<std::uint32_t>();
    if (in.size() < n) {
      ok = false;
      in = {};
      return {};
    }
    const auto s = in.substr(0, n);
    in.remove_prefix(n);
    return s;
  }
};

}  // namespace

std::string_view name_of(attribute a) { return attribute_names[static_cast<std::size_t>(a)]; }

span_writer::span_writer(std::string& out, const trace_id& trace, const span_id& id, const span_id& parent,
                         span_kind kind, std::int64_t start_unix_ns, std::int64_t end_unix_ns, std::string_view name)
    : out_(out) {
  char head[1 + 16 + 8 + 8 + 8 + 8];
  char* p = head;
  p = put(p, kind);
  p = put(p, trace);
  p = put(p, id);
  p = put(p, parent);
  p = put(p, start_unix_ns);
  p = put(p, end_unix_ns);
  out_.append(head, static_cast<std::size_t>(p - head));
  put_text(out_, name);
}

void span_writer::attr(attribute key, std::string_view value) {
  const char item[2] = {static_cast<char>(tag_string), static_cast<char>(key)};
  out_.append(item, sizeof item);
  put_text(out_, value);
}

void span_writer::attr(attribute key, std::int64_t value) {
  char item[2 + sizeof value] = {static_cast<char>(tag_int), static_cast<char>(key)};
  put(item + 2, value);
  out_.append(item, sizeof item);
}

void span_writer::finish(bool error, std::string_view message) {
  out_.push_back(static_cast<char>(error ? tag_error : tag_end));
  if (error) {
    put_text(out_, message);
  }
}

std::size_t spans_json(std::string_view records, std::string& out, bool after_spans) {
  record_reader r{records};
  std::size_t spans = 0;
  while (!r.in.empty() && r.ok) {
    const auto kind = r.get<span_kind>();
    const auto trace = r.get<trace_id>();
    const auto id = r.get<span_id>();
    const auto parent = r.get<span_id>();
    const auto start = r.get<std::int64_t>();
    const auto end = r.get<std::int64_t>();
    const auto name = r.text();
    if (!r.ok) {
      break;
    }
    json_writer w(out, after_spans || spans > 0, trace, id, parent, kind, start, end, name);
    for (;;) {
      const auto tag = r.get<std::uint8_t>();
      if (tag == tag_end || tag == tag_error) {
        const auto message = tag == tag_error ? r.text() : std::string_view();
        w.finish(tag == tag_error, message);
        ++spans;
        break;
      }
      const auto key = r.get<std::uint8_t>();
      if (!r.ok || (tag != tag_string && tag != tag_int) || key >= attribute_names.size()) {
        r.ok = false;
        w.finish(false, {});  // what it has so far: the JSON stays whole
        ++spans;
        break;
      }
      if (tag == tag_string) {
        w.attr(attribute_names[key], r.text());
      } else {
        w.attr(attribute_names[key], r.get<std::int64_t>());
      }
    }
  }
  return spans;
}

std::string otlp_document_head(std::string_view service_name, std::string_view version) {
  std::string out;
  out.append(R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":)");
  json_string(out, service_name);
  out.append(R"(}}]},"scopeSpans":[{"scope":{"name":"spillway","version":)");
  json_string(out, version);
  out.append(R"(},"spans":[)");
  return out;
}

std::string otlp_document(std::string_view spans, std::string_view service_name, std::string_view version) {
  auto out = otlp_document_head(service_name, version);
  out.append(spans);
  out.append(otlp_document_tail);
  return out;
}

}  // namespace spillway::tracing
