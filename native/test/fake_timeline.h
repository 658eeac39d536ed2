/*
 * Test double: the shared device timeline of a fake GPU, used by the fake libcuda.so.1 (which puts
 * kernels on it) and the fake libnvidia-ml.so.1 (which reports utilization and memory from it).
 *
 * One file per device, $FAKE_GPU_DIR/gpu<index>.timeline (default dir /tmp/sair-fake-gpu), mapped
 * shared by every process that uses the device, so several processes really contend for one GPU.
 * The device runs one kernel at a time in submission order (a time-sliced GPU without MPS): a
 * launch at time t of a kernel of d ns starts at max(t, device_tail) and ends d ns later. The file
 * starts as zeros, which is a valid empty timeline, so creating it needs no lock.
 */
#ifndef FAKE_TIMELINE_H
#define FAKE_TIMELINE_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FT_MAX_PROCS 64
#define FT_RING 4096
#define FT_DEFAULT_DIR "/tmp/sair-fake-gpu"

struct ft_interval {
    uint64_t start;
    uint64_t end;
};

/* One process on the device. Written by that process only; read by NVML in any process. */
struct ft_proc {
    int32_t pid;
    uint32_t reserved;
    uint64_t first_ns;     /* when the process joined the device */
    uint64_t scheduled_ns; /* total duration of every kernel it launched */
    uint64_t memory_bytes; /* device memory it holds */
    uint64_t ring_next;    /* next index into ring (mod FT_RING) */
    struct ft_interval ring[FT_RING]; /* its most recent kernels, to tell finished work from queued */
};

struct ft_device {
    uint64_t device_tail; /* when the device finishes everything submitted so far */
    uint64_t launches;
    struct ft_proc procs[FT_MAX_PROCS];
};

static inline uint64_t ft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ft_realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000u;
}

/* Sleep (never spin) until CLOCK_MONOTONIC reaches t. */
static inline void ft_sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static inline struct ft_device *ft_map(unsigned index)
{
    const char *dir = getenv("FAKE_GPU_DIR");
    char path[512];
    if (dir == NULL || dir[0] == '\0') {
        dir = FT_DEFAULT_DIR;
        mkdir(dir, 0777);
    }
    snprintf(path, sizeof path, "%s/gpu%u.timeline", dir, index);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        fprintf(stderr, "fake gpu: cannot open %s: errno %d\n", path, errno);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_size < (off_t)sizeof(struct ft_device) && ftruncate(fd, sizeof(struct ft_device)) != 0)) {
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, sizeof(struct ft_device), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : (struct ft_device *)p;
}

static inline int ft_pid_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* GPU time the process's kernels have received by time t: everything scheduled minus what is still
 * queued or running after t (only the last FT_RING kernels can be; deeper queues are not modelled). */
static inline uint64_t ft_busy_until(const struct ft_proc *p, uint64_t t)
{
    uint64_t scheduled = __atomic_load_n(&p->scheduled_ns, __ATOMIC_ACQUIRE);
    uint64_t next = __atomic_load_n(&p->ring_next, __ATOMIC_ACQUIRE);
    uint64_t pending = 0;
    uint64_t n = next < FT_RING ? next : FT_RING;
    for (uint64_t i = 0; i < n; i++) {
        const struct ft_interval *iv = &p->ring[(next - 1 - i) % FT_RING];
        uint64_t start = __atomic_load_n(&iv->start, __ATOMIC_RELAXED);
        uint64_t end = __atomic_load_n(&iv->end, __ATOMIC_RELAXED);
        if (end <= t) continue;
        pending += end - (start > t ? start : t);
    }
    return pending > scheduled ? 0 : scheduled - pending;
}

#endif
