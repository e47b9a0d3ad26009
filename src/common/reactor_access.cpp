#include "common/reactor_access.h"

#include <sys/epoll.h>

namespace spillway::reactor_access {

namespace {

// Private members of Asio's reactor, reached the one way the language allows: the address of a
// member named in an explicit instantiation is not access-checked, and the instantiation hands it
// to a friend function of a tag type.
template <typename Tag, typename Tag::type Member>
struct expose {
  friend typename Tag::type member_of(Tag) { return Member; }
};

struct epoll_fd_tag {
  using type = int asio::detail::epoll_reactor::*;
  friend type member_of(epoll_fd_tag);
};
template struct expose<epoll_fd_tag, &asio::detail::epoll_reactor::epoll_fd_>;

struct registered_events_tag {
  using type = std::uint32_t asio::detail::epoll_reactor::descriptor_state::*;
  friend type member_of(registered_events_tag);
};
template struct expose<registered_events_tag, &asio::detail::epoll_reactor::descriptor_state::registered_events_>;

// A descriptor's state is a scheduler operation whose result, between a report and the next, is
// the events epoll reported.
struct task_result_tag {
  using type = unsigned int asio::detail::scheduler_operation::*;
  friend type member_of(task_result_tag);
};
template struct expose<task_result_tag, &asio::detail::scheduler_operation::task_result_>;

struct op_queues_tag {
  using type = asio::detail::op_queue<asio::detail::reactor_op> (
      asio::detail::epoll_reactor::descriptor_state::*)[asio::detail::epoll_reactor::max_ops];
  friend type member_of(op_queues_tag);
};
template struct expose<op_queues_tag, &asio::detail::epoll_reactor::descriptor_state::op_queue_>;

struct descriptor_mutex_tag {
  using type = asio::detail::conditionally_enabled_mutex asio::detail::epoll_reactor::descriptor_state::*;
  friend type member_of(descriptor_mutex_tag);
};
template struct expose<descriptor_mutex_tag, &asio::detail::epoll_reactor::descriptor_state::mutex_>;

// The frame on top of an awaitable thread's stack: the coroutine that awaits.
struct top_of_stack_tag {
  using type = asio::detail::awaitable_frame_base<asio::any_io_executor>* entry_frame::*;
  friend type member_of(top_of_stack_tag);
};
template struct expose<top_of_stack_tag, &entry_frame::top_of_stack_>;

}  // namespace

void resume_lines(entry_frame* bottom, const void** lines) {
  auto* const& top = bottom->*member_of(top_of_stack_tag{});
  const auto frame = reinterpret_cast<std::uintptr_t>(top);
  lines[0] = &top;
  lines[1] = bottom;
  // `top` is the coroutine's promise; before it in its frame, the resume and destroy functions.
  lines[2] = reinterpret_cast<const void*>(frame - 2 * sizeof(void*));
  lines[3] = reinterpret_cast<const void*>(frame + 48);  // the rest of the promise
}

bool withdraw_read(descriptor d, asio::detail::reactor_op* op) {
  auto& queue = (d->*member_of(op_queues_tag{}))[reactor::read_op];
  bool found = false;
  {
    asio::detail::conditionally_enabled_mutex::scoped_lock lock(d->*member_of(descriptor_mutex_tag{}));
    asio::detail::op_queue<asio::detail::reactor_op> others;
    while (auto* o = queue.front()) {
      queue.pop();
      if (o == op) {
        found = true;
      } else {
        others.push(o);
      }
    }
    queue.push(others);
  }
  return found;
}

std::uint32_t last_events(descriptor d) {
  // A C-style cast reaches the private base (descriptor_state : operation).
  return ((asio::detail::scheduler_operation*)d)->*member_of(task_result_tag{});  // NOLINT
}

bool watch_rdhup(reactor& r, descriptor d, int fd) {
  auto& registered = d->*member_of(registered_events_tag{});
  if (registered == 0) {
    return false;  // not a descriptor epoll takes (Asio's own reads handle it)
  }
  if ((registered & EPOLLRDHUP) != 0) {
    return true;
  }
  epoll_event ev{};
  ev.events = registered | EPOLLRDHUP;
  ev.data.ptr = d;
  if (::epoll_ctl(r.*member_of(epoll_fd_tag{}), EPOLL_CTL_MOD, fd, &ev) != 0) {
    return false;
  }
  registered = ev.events;  // Asio's own later changes (adding EPOLLOUT) keep it
  return true;
}

void mark_rdhup(descriptor d) {
  auto& registered = d->*member_of(registered_events_tag{});
  if (registered != 0) {
    registered |= EPOLLRDHUP;
  }
}

}  // namespace spillway::reactor_access
