#define _GNU_SOURCE
#include "CParleySys.h"
#include <sched.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <time.h>
#include <stdio.h>
#include <unistd.h>

int parley_set_sched_batch(void) {
    struct sched_param p = { .sched_priority = 0 };
    return sched_setscheduler(0, SCHED_BATCH, &p) == 0 ? 0 : errno;
}

int parley_accept_nonblocking(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int parley_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int parley_epoll_wait(int epfd, uint32_t *events, uint64_t *datas, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n;
    do { n = epoll_wait(epfd, evs, max, timeout_ms); } while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) { events[i] = evs[i].events; datas[i] = evs[i].data.u64; }
    return n;
}

int parley_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
int parley_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) { return parley_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events, data); }
int parley_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data) { return parley_epoll_ctl(epfd, EPOLL_CTL_MOD, fd, events, data); }
int parley_epoll_del(int epfd, int fd) { return parley_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0); }
int parley_read_int_file(const char *path, int fallback) {
    FILE *f = fopen(path, "r");
    if (!f) return fallback;
    int v = 0;
    int ok = fscanf(f, "%d", &v);
    fclose(f);
    return ok == 1 && v > 0 ? v : fallback;
}
int parley_EPOLLIN(void) { return EPOLLIN; }
int parley_EPOLLOUT(void) { return EPOLLOUT; }
int parley_EPOLLRDHUP(void) { return EPOLLRDHUP; }
int parley_EPOLLERR(void) { return EPOLLERR; }
int parley_EPOLLHUP(void) { return EPOLLHUP; }

uint64_t parley_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t parley_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t parley_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, rss = 0;
    int ok = fscanf(f, "%lu %lu", &size, &rss);
    fclose(f);
    if (ok != 2) return 0;
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

void parley_line_buffer_stdout(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}
