/*
 * The pod's control file ($SAIR_CONTROL_DIR/control, layout in sair_control.h): limits written by
 * the node agent, read here under a seqlock; the shared limiter word; one usage slot per process.
 * A missing or malformed file never stops the application: the env limits (SAIR_GPU_CORES,
 * SAIR_GPU_MEMORY) apply to the process alone, and the file is looked for again every 100 ms, as
 * is a replaced one (the node agent recreates files by rename, which gives a new inode).
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

struct view {
    struct sair_control *ctl;     /* the mapped file, or private_ctl */
    struct sair_usage_slot *slot; /* this process's slot */
    int fd;                       /* -1 without a file */
    dev_t dev;
    ino_t ino;
};

static struct sair_limits env_limits = {.gpu_cores = 100, .memory_bytes = 0};
static struct sair_limits last_good;
static char control_path[4096];
static struct sair_control private_ctl;
static struct view private_view = {.ctl = &private_ctl, .slot = &private_ctl.slots[0], .fd = -1};
static struct view *current = &private_view;
static uint64_t next_refresh_ns;
static dev_t failed_dev;
static ino_t failed_ino;
static pthread_mutex_t alloc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t view_mu = PTHREAD_MUTEX_INITIALIZER;

static void parse_env(void)
{
    const char *cores = getenv("SAIR_GPU_CORES");
    const char *mem = getenv("SAIR_GPU_MEMORY");
    const char *dir = getenv("SAIR_CONTROL_DIR");
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
    if (dir != NULL && *dir != '\0') {
        if ((size_t)snprintf(control_path, sizeof control_path, "%s/%s", dir, SAIR_CONTROL_FILE_NAME) >= sizeof control_path) {
            LOG_WARN("SAIR_CONTROL_DIR is longer than %zu bytes; ignoring it", sizeof control_path);
            control_path[0] = '\0';
        }
    }
}

/* Seqlock read of the node agent's limits; -1 when a write stays in progress or the values are invalid. */
static int read_limits(struct sair_control *c, struct sair_limits *out)
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
    return (off_t)(offsetof(struct sair_control, slots) + i * sizeof(struct sair_usage_slot));
}

static void clear_slot(struct sair_usage_slot *s)
{
    __atomic_store_n(&s->memory_bytes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->kernel_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->throttled_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->heartbeat_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->launches, 0, __ATOMIC_RELAXED);
}

/* Map and validate the control file and claim a slot in it; NULL (and env limits) when unusable. */
static struct view *map_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) LOG_WARN("control file %s: cannot open (errno %d); env limits apply", path, errno);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    if (st.st_dev == failed_dev && st.st_ino == failed_ino) {
        close(fd);
        return NULL;
    }
    const char *problem = NULL;
    struct sair_control *c = MAP_FAILED;
    if (st.st_size < (off_t)sizeof(struct sair_control)) {
        problem = "shorter than the layout";
    } else {
        c = mmap(NULL, sizeof(struct sair_control), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        struct sair_limits l;
        if (c == MAP_FAILED) problem = "cannot be mapped";
        else if (c->magic != SAIR_CONTROL_MAGIC) problem = "bad magic";
        else if (c->version != SAIR_CONTROL_VERSION) problem = "unknown version";
        else if (c->header_size != SAIR_CONTROL_HEADER_SIZE || c->slot_count != SAIR_CONTROL_SLOTS || c->slot_size != SAIR_CONTROL_SLOT_SIZE) problem = "unexpected sizes";
        else if (read_limits(c, &l) != 0) problem = "invalid limits";
    }
    if (problem != NULL) {
        LOG_WARN("control file %s is malformed (%s); env limits apply (cores %u, memory %llu)", path, problem,
                 env_limits.gpu_cores, (unsigned long long)env_limits.memory_bytes);
        failed_dev = st.st_dev;
        failed_ino = st.st_ino;
        if (c != MAP_FAILED) munmap(c, sizeof(struct sair_control));
        close(fd);
        return NULL;
    }
    struct view *v = calloc(1, sizeof *v);
    if (v == NULL) {
        munmap(c, sizeof(struct sair_control));
        close(fd);
        return NULL;
    }
    v->ctl = c;
    v->fd = fd;
    v->dev = st.st_dev;
    v->ino = st.st_ino;
    v->slot = NULL;
    for (unsigned i = 0; i < SAIR_CONTROL_SLOTS; i++) {
        /* Holding the slot's lock is owning it; getting it means no live process holds it. */
        if (lock_range(fd, F_OFD_SETLK, F_WRLCK, slot_offset(i), SAIR_CONTROL_SLOT_SIZE) != 0) continue;
        struct sair_usage_slot *s = &c->slots[i];
        int32_t old = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        if (old != 0) LOG_INFO("control file: reclaimed slot %u of exited pid %d", i, old);
        clear_slot(s);
        __atomic_store_n(&s->heartbeat_ns, sair_realtime(), __ATOMIC_RELAXED);
        __atomic_store_n(&s->pid, (int32_t)getpid(), __ATOMIC_RELEASE);
        v->slot = s;
        break;
    }
    if (v->slot == NULL) {
        LOG_WARN("control file %s: all %u usage slots are held by live processes; this process's usage is not shared",
                 path, SAIR_CONTROL_SLOTS);
        v->slot = &private_ctl.slots[0];
    }
    return v;
}

static void publish(struct view *next)
{
    struct view *old = current;
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

static void refresh(uint64_t now)
{
    if (pthread_mutex_trylock(&view_mu) != 0) return;
    __atomic_store_n(&next_refresh_ns, now + REFRESH_NS, __ATOMIC_RELAXED);
    struct stat st;
    struct view *v = current;
    if (control_path[0] != '\0' && stat(control_path, &st) == 0 && (v->fd < 0 || st.st_ino != v->ino || st.st_dev != v->dev)) {
        struct view *next = map_file(control_path);
        if (next != NULL) {
            LOG_INFO("control file %s mapped (slot %ld)", control_path,
                     next->slot >= next->ctl->slots && next->slot < next->ctl->slots + SAIR_CONTROL_SLOTS ? (long)(next->slot - next->ctl->slots) : -1L);
            publish(next);
            read_limits(next->ctl, &last_good);
        }
    }
    pthread_mutex_unlock(&view_mu);
}

void sair_control_init(void)
{
    parse_env();
    memset(&private_ctl, 0, sizeof private_ctl);
    private_ctl.gpu_cores = env_limits.gpu_cores;
    private_ctl.memory_bytes = env_limits.memory_bytes;
    private_ctl.slots[0].pid = (int32_t)getpid();
    last_good = env_limits;
    if (control_path[0] == '\0') LOG_INFO("no SAIR_CONTROL_DIR; env limits apply");
    refresh(sair_now());
}

struct sair_limits sair_limits_now(uint64_t now)
{
    if (now >= __atomic_load_n(&next_refresh_ns, __ATOMIC_RELAXED)) refresh(now);
    struct view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd < 0) return env_limits;
    struct sair_limits l;
    if (read_limits(v->ctl, &l) == 0) return l;
    return last_good;
}

uint64_t *sair_limiter_word(void)
{
    return &__atomic_load_n(&current, __ATOMIC_ACQUIRE)->ctl->limiter_state;
}

struct sair_usage_slot *sair_own_slot(void)
{
    return __atomic_load_n(&current, __ATOMIC_ACQUIRE)->slot;
}

void sair_alloc_lock(void)
{
    pthread_mutex_lock(&alloc_mu);
    struct view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd >= 0 && lock_range(v->fd, F_OFD_SETLKW, F_WRLCK, offsetof(struct sair_control, alloc_lock), 8) != 0) {
        LOG_WARN("control file: pod allocation lock failed (errno %d); quota check is per process this time", errno);
    }
}

void sair_alloc_unlock(void)
{
    struct view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd >= 0) lock_range(v->fd, F_OFD_SETLK, F_UNLCK, offsetof(struct sair_control, alloc_lock), 8);
    pthread_mutex_unlock(&alloc_mu);
}

uint64_t sair_pod_memory(int reclaim)
{
    struct view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd < 0) return __atomic_load_n(&v->slot->memory_bytes, __ATOMIC_RELAXED);
    uint64_t sum = 0;
    int own_in_file = 0;
    for (unsigned i = 0; i < SAIR_CONTROL_SLOTS; i++) {
        struct sair_usage_slot *s = &v->ctl->slots[i];
        if (s == v->slot) own_in_file = 1;
        int32_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        if (pid == 0) continue;
        if (reclaim && s != v->slot && lock_range(v->fd, F_OFD_SETLK, F_WRLCK, slot_offset(i), SAIR_CONTROL_SLOT_SIZE) == 0) {
            LOG_INFO("control file: reclaimed %llu bytes of exited pid %d", (unsigned long long)s->memory_bytes, pid);
            clear_slot(s);
            __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
            lock_range(v->fd, F_OFD_SETLK, F_UNLCK, slot_offset(i), SAIR_CONTROL_SLOT_SIZE);
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
     * parent's. The child holds no device memory and takes a slot of its own when it next calls in. */
    if (current->fd >= 0) close(current->fd);
    memset(&private_ctl.slots[0], 0, sizeof private_ctl.slots[0]);
    private_ctl.slots[0].pid = (int32_t)getpid();
    failed_dev = 0;
    failed_ino = 0;
    __atomic_store_n(&current, &private_view, __ATOMIC_RELEASE);
    __atomic_store_n(&next_refresh_ns, 0, __ATOMIC_RELAXED);
}

void sair_control_exit(void)
{
    struct view *v = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (v->fd < 0) return;
    clear_slot(v->slot);
    __atomic_store_n(&v->slot->pid, 0, __ATOMIC_RELEASE);
}
