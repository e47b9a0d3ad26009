#pragma once
// Standard reason phrases, shared by everything that writes a status line.

namespace spillway::http {

// Returns the reason phrase of `status` ("Service Unavailable" for 503), or a generic word for
// codes without a well-known phrase. Any thread.
const char* reason_phrase(int status);

}  // namespace spillway::http
