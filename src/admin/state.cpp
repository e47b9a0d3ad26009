#include "admin/state.h"

namespace spillway::admin {

const char* trigger_name(reload_trigger t) {
  switch (t) {
    case reload_trigger::file:
      return "file";
    case reload_trigger::poll:
      return "poll";
    case reload_trigger::signal:
      return "signal";
    case reload_trigger::api:
      return "api";
    case reload_trigger::count_:
      break;
  }
  return "unknown";
}

}  // namespace spillway::admin
