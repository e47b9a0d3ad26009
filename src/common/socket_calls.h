#pragma once
// recv(2), send(2) and sendmsg(2) on the per-request path, without glibc's cancellation-point
// wrappers. In a process with more than one thread, glibc's recv and send switch the calling
// thread to asynchronous cancellation around the system call and back (two atomic
// compare-and-swap loops on the thread's cancellation word per call), for pthread_cancel, which
// Spillway never uses: 0.5% of the proxy's CPU at wrk -c256, four calls per request. syscall(2)
// makes the same system call and sets errno the same way. Sanitizer builds keep glibc's calls,
// which ASan and TSan intercept (to check the buffers, and to see the kernel write them).

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPILLWAY_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SPILLWAY_SANITIZED 1
#endif
#endif

namespace spillway::socket_calls {

#ifdef SPILLWAY_SANITIZED
inline ssize_t recv(int fd, void* buf, std::size_t len, int flags) noexcept { return ::recv(fd, buf, len, flags); }
inline ssize_t send(int fd, const void* buf, std::size_t len, int flags) noexcept {
  return ::send(fd, buf, len, flags);
}
inline ssize_t sendmsg(int fd, const msghdr* msg, int flags) noexcept { return ::sendmsg(fd, msg, flags); }
#else
inline ssize_t recv(int fd, void* buf, std::size_t len, int flags) noexcept {
  return ::syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
}

inline ssize_t send(int fd, const void* buf, std::size_t len, int flags) noexcept {
  return ::syscall(SYS_sendto, fd, buf, len, flags, nullptr, 0);
}

inline ssize_t sendmsg(int fd, const msghdr* msg, int flags) noexcept { return ::syscall(SYS_sendmsg, fd, msg, flags); }
#endif

}  // namespace spillway::socket_calls
