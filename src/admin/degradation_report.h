#pragma once
// The degradation report (GET /degradation): every incident the journal holds, per backend — when
// it started failing, how long until it was out of rotation, how many requests failed or were
// retried meanwhile, when it came back and when it took traffic again.

#include "admin/state.h"

#include <string>

namespace spillway::admin {

// As JSON: {"incidents":[...]} and a newline. An empty list without a journal. Any thread (the
// journal locks).
std::string degradation_json(const state& s);

// As a fixed-width table for people (GET /degradation?format=text), with a legend after it; the
// header row alone without a journal. Any thread.
std::string degradation_text(const state& s);

}  // namespace spillway::admin
