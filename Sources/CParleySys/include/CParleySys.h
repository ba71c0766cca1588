#ifndef PARLEY_SYS_H
#define PARLEY_SYS_H
#include <stdint.h>
#include <stddef.h>

// Small OS helpers whose constants or macros Swift cannot import cleanly.

/// Puts the calling process under SCHED_BATCH (no wake-up preemption). Call before
/// Dispatch starts its threads so they inherit it. Returns 0 or errno.
int parley_set_sched_batch(void);
/* Line-buffered stdout (C's `stdout` is a mutable global Swift 6 will not touch). */
void parley_line_buffer_stdout(void);

/// accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC. Returns fd or -1 (errno set).
int parley_accept_nonblocking(int listen_fd);

/// epoll helpers: the epoll_event struct is packed on x86_64, so build it in C.
int parley_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// Waits without blocking; fills parallel arrays. Returns count or -1.
int parley_epoll_wait(int epfd, uint32_t *events, uint64_t *datas, int max, int timeout_ms);

int parley_epoll_create(void);
int parley_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int parley_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int parley_epoll_del(int epfd, int fd);
/// fscanf-free read of an int from a /proc file; returns fallback on failure.
int parley_read_int_file(const char *path, int fallback);
int parley_EPOLLIN(void);
int parley_EPOLLOUT(void);
int parley_EPOLLRDHUP(void);
int parley_EPOLLERR(void);
int parley_EPOLLHUP(void);

/// Monotonic milliseconds.
uint64_t parley_now_ms(void);
/// Monotonic nanoseconds.
uint64_t parley_now_ns(void);

/// Current RSS in bytes from /proc/self/statm (0 if unavailable).
uint64_t parley_rss_bytes(void);
#endif
