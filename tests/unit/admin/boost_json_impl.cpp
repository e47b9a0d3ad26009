// Boost.JSON, header-only, compiled once for the unit tests that parse what the admin API renders
// (a real parser says whether the output is valid JSON; Spillway itself only writes JSON).
#include <boost/json/src.hpp>
