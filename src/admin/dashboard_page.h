#pragma once
// The dashboard (GET / on the admin API): src/admin/dashboard.html, compiled into the binary at
// build time (see CMakeLists.txt) so the page needs no file at run time and fetches nothing outside.

namespace spillway::admin {
extern const char dashboard_page[];
}
