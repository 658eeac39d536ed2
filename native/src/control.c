/*
 * The allocation's two files (layout in sair_control.h): the limits file ($SAIR_LIMITS_FILE),
 * written by the node agent and mapped read-only here, read under a seqlock; and the state file
 * ($SAIR_STATE_FILE), mapped read-write: the shared limiter word, the memory lock and one usage
 * slot per process. A missing or malformed file never stops the application: without a limits
 * file the env limits (SAIR_GPU_CORES, SAIR_GPU_MEMORY) apply; without a state file the process
 * keeps its limiter and usage to itself. Both paths are looked at again every 100 ms, so a file
 * that appears later, or is replaced (a new inode), is picked up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

#define REFRESH_NS 100000000ull

struct limits_view {
    const struct sair_limits_file *lim;
    dev_t dev;
    ino_t ino;
};

struct state_view {
    struct sair_state_file *st;   /* the mapped file, or private_state */
    struct sair_usage_slot *slot; /* this process's slot */
    int fd;                       /* -1 without a file */
    dev_t dev;
    ino_t ino;
};

struct file_id {
    dev_t dev;
    ino_t ino;
};

static struct sair_limits env_limits = {.gpu_cores = 100, .memory_bytes = 0};
static struct sair_limits last_good;
static char limits_path[4096];
static char state_path[4096];
static struct sair_state_file private_state;
static struct state_view private_view = {.st = &private_state, .slot = &private_state.slots[0], .fd = -1};
static struct state_view *current = &private_view;
static struct limits_view *current_limits; /* NULL: env limits */
static uint64_t next_refresh_ns;
/* The last file of each kind found malformed, so it is reported once, not every 100 ms. */
static struct file_id failed_limits, failed_state;
static pthread_mutex_t alloc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t view_mu = PTHREAD_MUTEX_INITIALIZER;

static void path_from_env(const char *name, char *out, size_t size)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') return;
    if ((size_t)snprintf(out, size, "%s", v) >= size) {
        LOG_WARN("%s is longer than %zu bytes; ignoring it", name, size);
        out[0] = '\0';
    }
}

static void parse_env(void)
{
    const char *cores = getenv("SAIR_GPU_CORES");
    const char *mem = getenv("SAIR_GPU_MEMORY");
    if (cores != NULL && *cores != '\0') {
        char *end;
        long v = strtol(cores, &end, 10);
        if (*end != '\0' || v < 1 || v > 100) {
            LOG_WARN("SAIR_GPU_CORES=\"%s\" is not an integer from 1 to 100; no core limit from the env", cores);
        } else {
            env_limits.gpu_cores = (uint32_t)v;
        }
    }
    if (mem != NULL && *mem != '\0') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(mem, &end, 10);
        if (*end != '\0' || errno != 0 || mem[0] == '-') {
            LOG_WARN("SAIR_GPU_MEMORY=\"%s\" is not a decimal byte count (0 = no quota); no memory quota from the env", mem);
        } else {
            env_limits.memory_bytes = v;
        }
    }
    path_from_env("SAIR_LIMITS_FILE", limits_path, sizeof limits_path);
    path_from_env("SAIR_STATE_FILE", state_path, sizeof state_path);
}

/* Seqlock read of the node agent's limits; -1 when a write stays in progress or the values are invalid. */
static int read_limits(const struct sair_limits_file *c, struct sair_limits *out)
{
    for (int attempt = 0; attempt < 64; attempt++) {
        uint32_t s1 = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1u) continue;
        uint32_t cores = __atomic_load_n(&c->gpu_cores, __ATOMIC_RELAXED);
        uint64_t mem = __atomic_load_n(&c->memory_bytes, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&c->seq, __ATOMIC_RELAXED) != s1) continue;
        if (cores < 1 || cores > 100) return -1;
        out->gpu_cores = cores;
        out->memory_bytes = mem;
        return 0;
    }
    return -1;
}

static int lock_range(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len, .l_pid = 0};
    int rc;
    while ((rc = fcntl(fd, cmd, &fl)) != 0 && errno == EINTR) {
    }
    return rc;
}

static off_t slot_offset(unsigned i)
{
    return (off_t)(offsetof(struct sair_state_file, slots) + i * sizeof(struct sair_usage_slot));
}

static void clear_slot(struct sair_usage_slot *s)
{
    __atomic_store_n(&s->memory_bytes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->kernel_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->throttled_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->heartbeat_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->launches, 0, __ATOMIC_RELAXED);
}

/* Opens a regular file of exactly `size` bytes and maps it; MAP_FAILED (and the reason) when unusable. */
static void *map_exact(const char *path, int writable, size_t size, struct stat *st, struct file_id *failed, int *fd_out,
                       const char **problem)
{
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    *problem = NULL;
    if (fd < 0) {
        if (errno != ENOENT) LOG_WARN("%s: cannot open (errno %d)", path, errno);
        return MAP_FAILED;
    }
    if (fstat(fd, st) != 0 || (st->st_dev == failed->dev && st->st_ino == failed->ino)) {
        close(fd);
        return MAP_FAILED;
    }
    void *p = MAP_FAILED;
    if (!S_ISREG(st->st_mode)) *problem = "not a regular file";
    else if (st->st_size != (off_t)size) *problem = "not the size of the layout";
    else if ((p = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) *problem = "cannot be mapped";
    if (*problem != NULL) {
        failed->dev = st->st_dev;
        failed->ino = st->st_ino;
        close(fd);
        return MAP_FAILED;
    }
    *fd_out = fd;
    return p;
}

/* Map and validate the limits file; NULL (and env limits) when unusable. */
static struct limits_view *map_limits(const char *path)
{
    struct stat st;
    int fd = -1;
    const char *problem;
    const struct sair_limits_file *c = map_exact(path, 0, sizeof *c, &st, &failed_limits, &fd, &problem);
    struct sair_limits l;
    if (c != MAP_FAILED) {
        close(fd);
        if (c->magic != SAIR_LIMITS_MAGIC) problem = "bad magic";
        else if (c->version != SAIR_CONTROL_VERSION) problem = "unknown version";
        else if (c->size != SAIR_LIMITS_FILE_SIZE) problem = "unexpected size";
        else if (read_limits(c, &l) != 0) problem = "invalid limits";
        if (problem != NULL) {
            failed_limits.dev = st.st_dev;
            failed_limits.ino = st.st_ino;
            munmap((void *)c, sizeof *c);
        }
    }
    if (problem != NULL) {
        LOG_WARN("limits file %s is malformed (%s); env limits apply (cores %u, memory %llu)", path, problem, env_limits.gpu_cores,
                 (unsigned long long)env_limits.memory_bytes);
        return NULL;
    }
    if (c == MAP_FAILED) return NULL;
    struct limits_view *v = calloc(1, sizeof *v);
    if (v == NULL) {
        munmap((void *)c, sizeof *c);
        return NULL;
    }
    v->lim = c;
    v->dev = st.st_dev;
    v->ino = st.st_ino;
    return v;
}

/* Map and validate the state file and claim a slot in it; NULL when unusable. */
static struct state_view *map_state(const char *path)
{
    struct stat st;
    int fd = -1;
    const char *problem;
    struct sair_state_file *c = map_exact(path, 1, sizeof *c, &st, &failed_state, &fd, &problem);
    if (c != MAP_FAILED) {
        if (c->magic != SAIR_STATE_MAGIC) problem = "bad magic";
        else if (c->version != SAIR_CONTROL_VERSION) problem = "unknown version";
        else if (c->header_size != SAIR_STATE_HEADER_SIZE || c->slot_count != SAIR_STATE_SLOTS || c->slot_size != SAIR_STATE_SLOT_SIZE) problem = "unexpected sizes";
        if (problem != NULL) {
            failed_state.dev = st.st_dev;
            failed_state.ino = st.st_ino;
            munmap(c, sizeof *c);
            close(fd);
        }
    }
    if (problem != NULL) {
        LOG_WARN("state file %s is malformed (%s); this process keeps its limiter and usage to itself", path, problem);
        return NULL;
    }
    if (c == MAP_FAILED) return NULL;
    struct state_view *v = calloc(1, sizeof *v);
    if (v == NULL) {
        munmap(c, sizeof *c);
        close(fd);
        return NULL;
    }
    v->st = c;
    v->fd = fd;
    v->dev = st.st_dev;
    v->ino = st.st_ino;
    v->slot = NULL;
    for (unsigned i = 0; i < SAIR_STATE_SLOTS; i++) {
        /* Holding the slot's lock is owning it; getting it means no live process holds it. */
        if (lock_range(fd, F_OFD_SETLK, F_WRLCK, slot_offset(i), SAIR_STATE_SLOT_SIZE) != 0) continue;
        struct sair_usage_slot *s = &c->slots[i];
        int32_t old = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        if (old != 0) LOG_INFO("state file: reclaimed slot %u of exited pid %d", i, old);
        clear_slot(s);
        __atomic_store_n(&s->heartbeat_ns, sair_realtime(), __ATOMIC_RELAXED);
        __atomic_store_n(&s->pid, (int32_t)getpid(), __ATOMIC_RELEASE);
        v->slot = s;
        break;
    }
    if (v->slot == NULL) {
        LOG_WARN("state file %s: all %u usage slots are held by live processes; this process's usage is not shared", path,
                 SAIR_STATE_SLOTS);
        v->slot = &private_state.slots[0];
    }
    return v;
}

static void publish(struct state_view *next)
{
    struct state_view *old = current;
    uint64_t carried = __atomic_load_n(&old->slot->memory_bytes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&next->slot->memory_bytes, carried, __ATOMIC_RELAXED);
    __atomic_store_n(&current, next, __ATOMIC_RELEASE);
    if (old->fd >= 0) {
        /* Threads may still hold the old view, so its mapping stays; its slot and lock go. */
        clear_slot(old->slot);
        __atomic_store_n(&old->slot->pid, 0, __ATOMIC_RELEASE);
        close(old->fd);
    } else {
        sair_atomic_sub_sat(&old->slot->memory_bytes, carried);
    }
}

/* Whether `path` names a file other than the one mapped (dev/ino), or one exists where none is mapped. */
static int replaced(const char *path, int mapped, dev_t dev, ino_t ino)
{
    struct stat st;
    if (path[0] == '\0' || stat(path, &st) != 0) return 0;
    return !mapped || st.st_ino != ino || st.st_dev != dev;
}

static void refresh(uint64_t now)
{
    if (pthread_mutex_trylock(&view_mu) != 0) return;
    __atomic_store_n(&next_refresh_ns, now + REFRESH_NS, __ATOMIC_RELAXED);
    struct limits_view *lv = current_limits;
    if (replaced(limits_path, lv != NULL, lv ? lv->dev : 0, lv ? lv->ino : 0)) {
        /* The old mapping stays: threads may still read it. */
        struct limits_view *next = map_limits(limits_path);
        if (next != NULL) {
            LOG_INFO("limits file %s mapped", limits_path);
            read_limits(next->lim, &last_good);
            __atomic_store_n(&current_limits, next, __ATOMIC_RELEASE);
        }
    }
    struct state_view *sv = current;
    if (replaced(state_path, sv->fd >= 0, sv->dev, sv->ino)) {
        struct state_view *next = map_state(state_path);
        if (next != NULL) {
            LOG_INFO("state file %s mapped (slot %ld)", state_path,
                     next->slot >= next->st->slots && next->slot < next->st->slots + SAIR_STATE_SLOTS ? (long)(next->slot - next->st->slots) : -1L);
            publish(next);
        }
    }
    pthread_mutex_unlock(&view_mu);
}

void sair_control_init(void)
{
    parse_env();
    memset(&private_state, 0, sizeof private_state);
    private_state.slots[0].pid = (int32_t)getpid();
    last_good = env_limits;
    if (limits_path[0] == '\0') LOG_INFO("no SAIR_LIMITS_FILE; env limits apply");
    refresh(sair_now());
}

struct sair_limits sair_limits_now(uint64_t now)
{
    if (now >= __atomic_load_n(&next_refresh_ns, __ATOMIC_RELAXED)) refresh(now);
    struct limits_view *v = __atomic_load_n(&current_limits, __ATOMIC_ACQUIRE);
    if (v == NULL) return env_limits;
    struct sair_limits l;
    if (read_limits(v->lim, &l) == 0) return l;
    return last_good;
}

uint64_t *sair_limiter_word(void)
{
    return &__atomic_load_n(&current, __ATOMIC_ACQUIRE)->st->limiter_state;
}

struct sair_usage_slot *sair_own_slot(void)
{
    return __atomic_load_n(&current, __ATOMIC_ACQUIRE)->slot;
}

void sair_alloc_lock(void)
{
    pthread_mutex_lock(&alloc_mu);
    struct state_view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd >= 0 && lock_range(v->fd, F_OFD_SETLKW, F_WRLCK, offsetof(struct sair_state_file, alloc_lock), 8) != 0) {
        LOG_WARN("state file: allocation lock failed (errno %d); quota check is per process this time", errno);
    }
}

void sair_alloc_unlock(void)
{
    struct state_view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd >= 0) lock_range(v->fd, F_OFD_SETLK, F_UNLCK, offsetof(struct sair_state_file, alloc_lock), 8);
    pthread_mutex_unlock(&alloc_mu);
}

uint64_t sair_pod_memory(int reclaim)
{
    struct state_view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd < 0) return __atomic_load_n(&v->slot->memory_bytes, __ATOMIC_RELAXED);
    uint64_t sum = 0;
    int own_in_file = 0;
    for (unsigned i = 0; i < SAIR_STATE_SLOTS; i++) {
        struct sair_usage_slot *s = &v->st->slots[i];
        if (s == v->slot) own_in_file = 1;
        int32_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        if (pid == 0) continue;
        if (reclaim && s != v->slot && lock_range(v->fd, F_OFD_SETLK, F_WRLCK, slot_offset(i), SAIR_STATE_SLOT_SIZE) == 0) {
            LOG_INFO("state file: reclaimed %llu bytes of exited pid %d", (unsigned long long)s->memory_bytes, pid);
            clear_slot(s);
            __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
            lock_range(v->fd, F_OFD_SETLK, F_UNLCK, slot_offset(i), SAIR_STATE_SLOT_SIZE);
            continue;
        }
        sum += __atomic_load_n(&s->memory_bytes, __ATOMIC_RELAXED);
    }
    if (!own_in_file) sum += __atomic_load_n(&v->slot->memory_bytes, __ATOMIC_RELAXED);
    return sum;
}

void sair_control_fork_prepare(void)
{
    pthread_mutex_lock(&alloc_mu);
    pthread_mutex_lock(&view_mu);
}

void sair_control_fork_parent(void)
{
    pthread_mutex_unlock(&view_mu);
    pthread_mutex_unlock(&alloc_mu);
}

void sair_control_fork_child(void)
{
    pthread_mutex_init(&view_mu, NULL);
    pthread_mutex_init(&alloc_mu, NULL);
    /* The inherited descriptor shares the parent's lock; dropping it keeps the parent's slot the
     * parent's. The child holds no device memory and takes a slot of its own when it next calls in.
     * The limits mapping is read-only and stays. */
    if (current->fd >= 0) close(current->fd);
    memset(&private_state.slots[0], 0, sizeof private_state.slots[0]);
    private_state.slots[0].pid = (int32_t)getpid();
    failed_state.dev = 0;
    failed_state.ino = 0;
    __atomic_store_n(&current, &private_view, __ATOMIC_RELEASE);
    __atomic_store_n(&next_refresh_ns, 0, __ATOMIC_RELAXED);
}

void sair_control_exit(void)
{
    struct state_view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd < 0) return;
    clear_slot(v->slot);
    __atomic_store_n(&v->slot->pid, 0, __ATOMIC_RELEASE);
}
