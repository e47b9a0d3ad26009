#include "admin/route_table.h"

namespace spillway::admin {

void route_table::add(std::string method, std::string path, handler h) {
  routes_.push_back({std::move(method), std::move(path), std::move(h)});
}

route_table::match route_table::find(std::string_view method, std::string_view path, const handler** h) const {
  const std::string_view as = method == "HEAD" ? std::string_view("GET") : method;
  bool path_known = false;
  for (const auto& r : routes_) {
    if (r.path != path) {
      continue;
    }
    if (r.method == method || r.method == as) {
      if (h != nullptr) {
        *h = &r.fn;
      }
      return match::found;
    }
    path_known = true;
  }
  return path_known ? match::method_not_allowed : match::not_found;
}

response route_table::dispatch(const request& r) const {
  const handler* h = nullptr;
  switch (find(r.method, r.path, &h)) {
    case match::found:
      return (*h)(r);
    case match::method_not_allowed:
      return {405, "text/plain", "method not allowed\n"};
    case match::not_found:
      break;
  }
  return {404, "text/plain", "not found\n"};
}

}  // namespace spillway::admin
