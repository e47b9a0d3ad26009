#pragma once
// The admin API's routes: (method, path) -> handler. A handler turns a request into a whole
// response; the server does the I/O. Routing is pure, so it is tested without sockets.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::admin {

// What a handler sees of a request (already admitted, see request_checks.h).
struct request {
  std::string_view method;  // GET, HEAD or POST
  std::string_view path;    // the target up to '?'
  std::string_view query;   // after '?' (empty without one)
};

struct response {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
};

using handler = std::function<response(const request&)>;

class route_table {
 public:
  enum class match { found, method_not_allowed, not_found };

  // Adds a route. A GET route answers HEAD too (the server then sends the head only). Routes are
  // added before the server starts; the table is read-only afterwards.
  void add(std::string method, std::string path, handler h);

  // Looks up `method` and `path` (exact, case-sensitive). `h` is set only when found: a path that
  // has a route under another method is method_not_allowed, any other not_found.
  match find(std::string_view method, std::string_view path, const handler** h = nullptr) const;

  // The route's response, or 405 "method not allowed" / 404 "not found" (text/plain).
  // Control thread (handlers read the server's state).
  response dispatch(const request& r) const;

 private:
  struct route {
    std::string method;
    std::string path;
    handler fn;
  };
  std::vector<route> routes_;  // a handful: a linear scan is the simplest lookup
};

}  // namespace spillway::admin
