// powercut.so: an LD_PRELOAD shim that keeps, beside a program's data directory, exactly what a
// power cut would leave of it, so a test can kill -9 the program and restart it on that state.
//
//   PARLEY_POWERCUT_DIR=/path/data  PARLEY_POWERCUT_SHADOW=/path/shadow  LD_PRELOAD=powercut.so prog
//
// The program runs on DIR as usual (its reads see everything it wrote). SHADOW/data is the disk
// after the cut, under the harshest model a journaling file system allows:
//   - a file's bytes (and its size) reach the shadow only when the program fsync()s or
//     fdatasync()s that file: whatever was written since the last sync is lost;
//   - a name (a file created, renamed or unlinked) changes in the shadow only when the program
//     fsync()s the directory holding it. A synced file whose directory was never synced has no name.
// Contents and names are kept apart as on a real file system: SHADOW/.inodes/<dev>-<ino> holds
// each file's synced bytes and the names under SHADOW/data are hard links to them. Directories
// are made when a name in them is first needed, and whatever DIR holds when the program starts counts as synced.
// Stats go to SHADOW/powercut.log at each sync, so a test can tell the shim really ran.
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536
#define MAX_INODES 4096
#define MAX_OPS 4096

enum { UNTRACKED = 0, TRACKED_FILE = 1, TRACKED_DIR = 2 };

struct inode {          // what has changed in one file since its last sync
    dev_t dev;
    ino_t ino;
    int used;
    off_t dirty_lo, dirty_hi;   // written bytes not yet synced: [lo, hi)
    off_t min_size;             // the smallest size a truncate left since the last sync (-1: none)
};

enum op_kind { OP_LINK, OP_RENAME, OP_UNLINK };
struct op {             // a name change waiting for its directory's fsync
    enum op_kind kind;
    char dir[PATH_MAX];         // the directory whose fsync makes it durable
    char from[PATH_MAX];        // paths relative to DIR
    char to[PATH_MAX];
    dev_t dev;
    ino_t ino;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char tracked[MAX_FD];
static struct inode inodes[MAX_INODES];
static struct op ops[MAX_OPS];
static int nops;
static char root[PATH_MAX], shadow[PATH_MAX], shadow_data[PATH_MAX], shadow_inodes[PATH_MAX];
static size_t root_len;
static int enabled;
static unsigned long syncs, dir_syncs, bytes_synced, names_applied;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);

static void die(const char *what) {
    char msg[PATH_MAX + 64];
    int n = snprintf(msg, sizeof msg, "powercut: %s: %s\n", what, strerror(errno));
    if (real_write) real_write(2, msg, (size_t)n);
    abort();
}

// The absolute path of an open descriptor; 0 if unknown.
static int fd_path(int fd, char *out) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, PATH_MAX - 1);
    if (n <= 0) return 0;
    out[n] = 0;
    return 1;
}

// The absolute path of `path` as seen from `dirfd` without following its last component.
static int abs_path(int dirfd, const char *path, char *out) {
    char base[PATH_MAX];
    if (path[0] == '/') {
        snprintf(base, sizeof base, "%s", path);
    } else {
        char dir[PATH_MAX];
        if (dirfd == AT_FDCWD) { if (!getcwd(dir, sizeof dir)) return 0; }
        else if (!fd_path(dirfd, dir)) return 0;
        snprintf(base, sizeof base, "%s/%s", dir, path);
    }
    // Resolve the parent (it exists), keep the last component as given.
    char *slash = strrchr(base, '/');
    char parent[PATH_MAX], resolved[PATH_MAX];
    if (slash == base) snprintf(parent, sizeof parent, "/");
    else { *slash = 0; snprintf(parent, sizeof parent, "%s", base); *slash = '/'; }
    if (!realpath(parent, resolved)) return 0;
    snprintf(out, PATH_MAX, "%s/%s", strcmp(resolved, "/") == 0 ? "" : resolved, slash + 1);
    return 1;
}

// The path relative to DIR ("" for DIR itself), or NULL when outside it.
static const char *relative(const char *abs) {
    if (strncmp(abs, root, root_len) != 0) return NULL;
    if (abs[root_len] == 0) return "";
    if (abs[root_len] != '/') return NULL;
    return abs + root_len + 1;
}

static void parent_of(const char *rel, char *out) {
    const char *slash = strrchr(rel, '/');
    if (!slash) out[0] = 0;
    else { memcpy(out, rel, (size_t)(slash - rel)); out[slash - rel] = 0; }
}

static void inode_file(dev_t dev, ino_t ino, char *out) {
    snprintf(out, PATH_MAX, "%s/%lx-%lx", shadow_inodes, (unsigned long)dev, (unsigned long)ino);
}

static struct inode *inode_for(dev_t dev, ino_t ino, int create) {
    struct inode *free_slot = NULL;
    for (int i = 0; i < MAX_INODES; i++) {
        if (inodes[i].used && inodes[i].dev == dev && inodes[i].ino == ino) return &inodes[i];
        if (!inodes[i].used && !free_slot) free_slot = &inodes[i];
    }
    if (!create) return NULL;
    if (!free_slot) { errno = ENOMEM; die("too many files"); }
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->used = 1; free_slot->dev = dev; free_slot->ino = ino;
    free_slot->dirty_lo = -1; free_slot->min_size = -1;
    return free_slot;
}

// The shadow copy of an inode's synced bytes, created empty when it has none yet.
static int open_inode_file(dev_t dev, ino_t ino) {
    char p[PATH_MAX];
    inode_file(dev, ino, p);
    int fd = real_open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) die("open shadow inode");
    return fd;
}

static void mkdirs(const char *p) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", p);
    for (char *s = tmp + 1; *s; s++) {
        if (*s == '/') { *s = 0; mkdir(tmp, 0755); *s = '/'; }
    }
    mkdir(tmp, 0755);
}

static void note_write(int fd, off_t at, ssize_t n) {
    if (n <= 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&lock);
    struct inode *in = inode_for(st.st_dev, st.st_ino, 1);
    if (in->dirty_lo < 0 || at < in->dirty_lo) in->dirty_lo = at;
    if (at + n > in->dirty_hi) in->dirty_hi = at + n;
    pthread_mutex_unlock(&lock);
}

// Replaced whole (temp file, rename), so a kill at any moment leaves a complete line.
static void write_stats(void) {
    char p[PATH_MAX], tmp[PATH_MAX], line[256];
    snprintf(p, sizeof p, "%s/powercut.log", shadow);
    snprintf(tmp, sizeof tmp, "%s/powercut.log.tmp", shadow);
    int fd = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    int n = snprintf(line, sizeof line, "syncs=%lu dir_syncs=%lu bytes=%lu names=%lu\n", syncs, dir_syncs, bytes_synced, names_applied);
    real_write(fd, line, (size_t)n);
    real_close(fd);
    real_rename(tmp, p);
}

// fsync/fdatasync of a file: its written bytes and its size become what the shadow holds.
static void sync_file(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&lock);
    struct inode *in = inode_for(st.st_dev, st.st_ino, 0);
    int sfd = open_inode_file(st.st_dev, st.st_ino);
    struct stat sst;
    if (fstat(sfd, &sst) != 0) die("stat shadow inode");
    if (in && in->min_size >= 0 && in->min_size < sst.st_size) real_ftruncate(sfd, in->min_size);
    real_ftruncate(sfd, st.st_size);
    if (in && in->dirty_lo >= 0) {
        off_t lo = in->dirty_lo, hi = in->dirty_hi < st.st_size ? in->dirty_hi : st.st_size;
        char buf[65536], self[64];
        // The program's descriptor may be write-only: read the bytes through one of our own.
        snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
        int rfd = real_open(self, O_RDONLY | O_CLOEXEC);
        if (rfd < 0) die("reopen for reading");
        while (lo < hi) {
            size_t want = (size_t)(hi - lo) < sizeof buf ? (size_t)(hi - lo) : sizeof buf;
            ssize_t r = pread(rfd, buf, want, lo);
            if (r <= 0) break;
            if (real_pwrite(sfd, buf, (size_t)r, lo) != r) die("write shadow inode");
            lo += r;
            bytes_synced += (unsigned long)r;
        }
        real_close(rfd);
    }
    if (in) { in->dirty_lo = -1; in->dirty_hi = 0; in->min_size = -1; }
    real_close(sfd);
    syncs++;
    write_stats();
    pthread_mutex_unlock(&lock);
}

// The shadow path of a name; its directory is made if missing (directories count as durable).
static void shadow_name(const char *rel, char *out) {
    snprintf(out, PATH_MAX, "%s/%s", shadow_data, rel);
    char *slash = strrchr(out, '/');
    *slash = 0;
    if (access(out, F_OK) != 0) mkdirs(out);
    *slash = '/';
}

static void link_name(const char *rel, dev_t dev, ino_t ino) {
    char src[PATH_MAX], dst[PATH_MAX];
    int sfd = open_inode_file(dev, ino);
    real_close(sfd);
    inode_file(dev, ino, src);
    shadow_name(rel, dst);
    real_unlink(dst);
    if (link(src, dst) != 0) die("link shadow name");
}

// fsync of a directory: the name changes made in it become durable, in the order they were made.
static void sync_dir(const char *rel) {
    pthread_mutex_lock(&lock);
    int kept = 0;
    for (int i = 0; i < nops; i++) {
        struct op *o = &ops[i];
        if (strcmp(o->dir, rel) != 0) { ops[kept++] = *o; continue; }
        char a[PATH_MAX], b[PATH_MAX];
        switch (o->kind) {
        case OP_LINK:
            link_name(o->to, o->dev, o->ino);
            break;
        case OP_RENAME:
            shadow_name(o->from, a);
            shadow_name(o->to, b);
            if (access(a, F_OK) == 0) { if (real_rename(a, b) != 0) die("rename shadow name"); }
            else link_name(o->to, o->dev, o->ino);
            break;
        case OP_UNLINK:
            shadow_name(o->to, b);
            real_unlink(b);
            break;
        }
        names_applied++;
    }
    nops = kept;
    dir_syncs++;
    write_stats();
    pthread_mutex_unlock(&lock);
}

static void add_op(enum op_kind kind, const char *from, const char *to, dev_t dev, ino_t ino) {
    pthread_mutex_lock(&lock);
    if (nops == MAX_OPS) { errno = ENOMEM; die("too many name changes without a directory fsync"); }
    struct op *o = &ops[nops++];
    o->kind = kind;
    parent_of(to, o->dir);
    snprintf(o->from, PATH_MAX, "%s", from ? from : "");
    snprintf(o->to, PATH_MAX, "%s", to);
    o->dev = dev; o->ino = ino;
    pthread_mutex_unlock(&lock);
}

static int copy_initial(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)ftw;
    const char *rel = relative(path);
    if (!rel || !*rel) return 0;
    char dst[PATH_MAX];
    shadow_name(rel, dst);
    if (type == FTW_D) { mkdirs(dst); return 0; }
    if (type != FTW_F || !S_ISREG(st->st_mode)) return 0;
    int in = real_open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) return 0;
    int out = open_inode_file(st->st_dev, st->st_ino);
    char buf[65536];
    ssize_t n;
    off_t at = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) { real_pwrite(out, buf, (size_t)n, at); at += n; }
    real_close(in);
    real_close(out);
    link_name(rel, st->st_dev, st->st_ino);
    return 0;
}

// The next definitions of what this file wraps; resolved on first use (another library's
// constructor may open a file before ours runs).
static void resolve(void) {
    if (real_close) return;
#define REAL(f) real_##f = dlsym(RTLD_NEXT, #f)
    REAL(open); REAL(open64); REAL(openat); REAL(openat64); REAL(write); REAL(pwrite);
    REAL(pwrite64); REAL(writev); REAL(pwritev); REAL(ftruncate); REAL(ftruncate64); REAL(fsync);
    REAL(fdatasync); REAL(rename); REAL(renameat); REAL(unlink); REAL(unlinkat);
    REAL(close);  // last: the others are set once this one is
}
#define RESOLVE() do { if (!real_close) resolve(); } while (0)

__attribute__((constructor)) static void init(void) {
    resolve();
    const char *d = getenv("PARLEY_POWERCUT_DIR"), *s = getenv("PARLEY_POWERCUT_SHADOW");
    if (!d || !s) return;
    mkdirs(d);
    if (!realpath(d, root)) die("PARLEY_POWERCUT_DIR");
    root_len = strlen(root);
    mkdirs(s);
    if (!realpath(s, shadow)) die("PARLEY_POWERCUT_SHADOW");
    snprintf(shadow_data, sizeof shadow_data, "%s/data", shadow);
    snprintf(shadow_inodes, sizeof shadow_inodes, "%s/.inodes", shadow);
    mkdirs(shadow_data);
    mkdirs(shadow_inodes);
    nftw(root, copy_initial, 32, FTW_PHYS);
    enabled = 1;
    write_stats();
}

// Called after a successful open: track files and directories under DIR, note a new name.
static int opened(int fd, int existed, const char *abs) {
    if (!enabled || fd < 0 || fd >= MAX_FD) return fd;
    const char *rel = abs ? relative(abs) : NULL;
    if (!rel) { tracked[fd] = UNTRACKED; return fd; }
    struct stat st;
    if (fstat(fd, &st) != 0) return fd;
    if (S_ISDIR(st.st_mode)) { tracked[fd] = TRACKED_DIR; return fd; }
    if (!S_ISREG(st.st_mode)) { tracked[fd] = UNTRACKED; return fd; }
    tracked[fd] = TRACKED_FILE;
    if (!existed) add_op(OP_LINK, NULL, rel, st.st_dev, st.st_ino);
    return fd;
}

static int do_open(int dirfd, const char *path, int flags, mode_t mode, int (*real)(int, const char *, int, ...), int (*real_noat)(const char *, int, ...)) {
    char abs[PATH_MAX];
    int have = enabled && abs_path(dirfd, path, abs);
    int existed = 1;
    if (have && (flags & O_CREAT)) existed = access(abs, F_OK) == 0;
    int fd = real ? real(dirfd, path, flags, mode) : real_noat(path, flags, mode);
    if (fd >= 0) opened(fd, existed, have ? abs : NULL);
    return fd;
}

#define MODE_ARG mode_t mode = 0; if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); }
int open(const char *path, int flags, ...) { RESOLVE(); MODE_ARG return do_open(AT_FDCWD, path, flags, mode, NULL, real_open); }
int open64(const char *path, int flags, ...) { RESOLVE(); MODE_ARG return do_open(AT_FDCWD, path, flags, mode, NULL, real_open64 ? real_open64 : real_open); }
int openat(int dirfd, const char *path, int flags, ...) { RESOLVE(); MODE_ARG return do_open(dirfd, path, flags, mode, real_openat, NULL); }
int openat64(int dirfd, const char *path, int flags, ...) { RESOLVE(); MODE_ARG return do_open(dirfd, path, flags, mode, real_openat64 ? real_openat64 : real_openat, NULL); }
int creat(const char *path, mode_t mode) { RESOLVE(); return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { RESOLVE(); return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode); }

int close(int fd) { RESOLVE();
    if (fd >= 0 && fd < MAX_FD) tracked[fd] = UNTRACKED;
    return real_close(fd);
}

static int is_file(int fd) { return enabled && fd >= 0 && fd < MAX_FD && tracked[fd] == TRACKED_FILE; }

ssize_t write(int fd, const void *buf, size_t n) { RESOLVE();
    if (!is_file(fd)) return real_write(fd, buf, n);
    ssize_t r = real_write(fd, buf, n);
    if (r > 0) note_write(fd, lseek(fd, 0, SEEK_CUR) - r, r);
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) { RESOLVE();
    if (!is_file(fd)) return real_writev(fd, iov, cnt);
    ssize_t r = real_writev(fd, iov, cnt);
    if (r > 0) note_write(fd, lseek(fd, 0, SEEK_CUR) - r, r);
    return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t at) { RESOLVE();
    ssize_t r = real_pwrite(fd, buf, n, at);
    if (is_file(fd)) note_write(fd, at, r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t at) { RESOLVE();
    ssize_t r = (real_pwrite64 ? real_pwrite64 : real_pwrite)(fd, buf, n, at);
    if (is_file(fd)) note_write(fd, at, r);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t at) { RESOLVE();
    ssize_t r = real_pwritev(fd, iov, cnt, at);
    if (is_file(fd)) note_write(fd, at, r);
    return r;
}

static void note_truncate(int fd, off_t len) {
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&lock);
    struct inode *in = inode_for(st.st_dev, st.st_ino, 1);
    if (in->min_size < 0 || len < in->min_size) in->min_size = len;
    pthread_mutex_unlock(&lock);
}

int ftruncate(int fd, off_t len) { RESOLVE();
    int r = real_ftruncate(fd, len);
    if (r == 0 && is_file(fd)) note_truncate(fd, len);
    return r;
}

int ftruncate64(int fd, off_t len) { RESOLVE();
    int r = (real_ftruncate64 ? real_ftruncate64 : real_ftruncate)(fd, len);
    if (r == 0 && is_file(fd)) note_truncate(fd, len);
    return r;
}

static void synced(int fd) {
    if (!enabled || fd < 0 || fd >= MAX_FD) return;
    if (tracked[fd] == TRACKED_FILE) sync_file(fd);
    else if (tracked[fd] == TRACKED_DIR) {
        char abs[PATH_MAX];
        const char *rel = fd_path(fd, abs) ? relative(abs) : NULL;
        if (rel) sync_dir(rel);
    }
}

// The sync itself runs first: the shadow never holds more than the real disk was told to keep.
int fsync(int fd) { RESOLVE(); int r = real_fsync(fd); if (r == 0) synced(fd); return r; }
int fdatasync(int fd) { RESOLVE(); int r = real_fdatasync(fd); if (r == 0) synced(fd); return r; }

static int do_rename(int olddirfd, const char *from, int newdirfd, const char *to) {
    char a[PATH_MAX], b[PATH_MAX];
    int have = enabled && abs_path(olddirfd, from, a) && abs_path(newdirfd, to, b);
    struct stat st;
    int known = have && lstat(a, &st) == 0;
    int r = olddirfd == AT_FDCWD && newdirfd == AT_FDCWD ? real_rename(from, to) : real_renameat(olddirfd, from, newdirfd, to);
    if (r == 0 && known && S_ISREG(st.st_mode)) {
        const char *ra = relative(a), *rb = relative(b);
        if (ra && rb) add_op(OP_RENAME, ra, rb, st.st_dev, st.st_ino);
        else if (rb) add_op(OP_LINK, NULL, rb, st.st_dev, st.st_ino);
        else if (ra) add_op(OP_UNLINK, NULL, ra, 0, 0);
    }
    return r;
}

int rename(const char *from, const char *to) { RESOLVE(); return do_rename(AT_FDCWD, from, AT_FDCWD, to); }
int renameat(int od, const char *from, int nd, const char *to) { RESOLVE(); return do_rename(od, from, nd, to); }

static int do_unlink(int dirfd, const char *path, int flags) {
    char a[PATH_MAX];
    int have = enabled && !(flags & AT_REMOVEDIR) && abs_path(dirfd, path, a);
    int r = dirfd == AT_FDCWD && flags == 0 ? real_unlink(path) : real_unlinkat(dirfd, path, flags);
    if (r == 0 && have) {
        const char *ra = relative(a);
        if (ra) add_op(OP_UNLINK, NULL, ra, 0, 0);
    }
    return r;
}

int unlink(const char *path) { RESOLVE(); return do_unlink(AT_FDCWD, path, 0); }
int unlinkat(int dirfd, const char *path, int flags) { RESOLVE(); return do_unlink(dirfd, path, flags); }
