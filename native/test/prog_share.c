/*
 * Test program: the GPU share a pod of several processes really gets. Forks <procs> workers (before
 * any CUDA call, as a serving container starts its workers), each launching kernels of <kernel_us>
 * back to back on its own stream; once all are on the device, it waits <warmup_ms>, reads the
 * device timeline over <measure_ms> and prints the pod's share of the GPU and each worker's, as
 * one JSON line.
 * Usage: prog_share <procs> <kernel_us> <warmup_ms> <measure_ms>
 */
#define _GNU_SOURCE
#include <cuda.h>
#include <signal.h>
#include <sys/wait.h>

#include "prog_common.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* Launch back to back, keeping at most DEPTH kernels queued (waiting on the event of the launch
 * DEPTH back, as a serving loop bounds its queue without draining it), until told to stop. */
#define DEPTH 64

static void worker(uint64_t kernel_ns)
{
    CUdevice dev;
    CUcontext ctx;
    CUstream s;
    CUevent done[DEPTH];
    signal(SIGTERM, on_term);
    CUfunction kernel = prog_sleep_kernel(&dev, &ctx);
    CHECK(cuStreamCreate(&s, 0));
    for (int i = 0; i < DEPTH; i++) CHECK(cuEventCreate(&done[i], CU_EVENT_DEFAULT));
    for (unsigned long n = 0; !stop; n++) {
        CHECK(cuEventSynchronize(done[n % DEPTH]));
        uint64_t ns = kernel_ns;
        void *params[] = {&ns};
        CHECK(cuLaunchKernel(kernel, 1, 1, 1, 32, 1, 1, 0, s, params, NULL));
        CHECK(cuEventRecord(done[n % DEPTH], s));
    }
    CHECK(cuStreamSynchronize(s));
    _exit(0);
}

static pid_t pids[32];
static int started;

/* Fail without leaving workers behind (they hold the caller's pipes open). */
static void fail(const char *why, pid_t pid)
{
    for (int i = 0; i < started; i++) kill(pids[i], SIGKILL);
    DIE("%s (worker %d)", why, (int)pid);
}

int main(int argc, char **argv)
{
    if (argc != 5) DIE("usage: prog_share <procs> <kernel_us> <warmup_ms> <measure_ms>");
    int procs = atoi(argv[1]);
    uint64_t kernel_ns = strtoull(argv[2], NULL, 10) * 1000ull;
    uint64_t warmup = strtoull(argv[3], NULL, 10) * 1000000ull;
    uint64_t measure = strtoull(argv[4], NULL, 10) * 1000000ull;
    if (procs < 1 || procs > 32) DIE("procs must be 1..32");
    for (int i = 0; i < procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) fail("fork failed", 0);
        if (pids[i] == 0) worker(kernel_ns);
        started++;
    }
    /* The window starts once every worker is on the device, however slowly a busy machine starts them. */
    struct ft_proc *p[32];
    uint64_t give_up = ft_now() + 30000000000ull;
    for (int i = 0; i < procs; i++) {
        while ((p[i] = prog_timeline_proc(pids[i])) == NULL) {
            int status;
            if (waitpid(pids[i], &status, WNOHANG) == pids[i]) fail("a worker exited before reaching the device", pids[i]);
            if (ft_now() > give_up) fail("a worker never reached the device", pids[i]);
            ft_sleep_until(ft_now() + 1000000ull);
        }
    }
    uint64_t from = ft_now() + warmup, to = from + measure;
    ft_sleep_until(from);
    uint64_t b0[32], total = 0;
    for (int i = 0; i < procs; i++) b0[i] = ft_busy_until(p[i], from);
    ft_sleep_until(to);
    printf("{\"procs\":%d,\"kernel_us\":%llu,\"per_proc\":[", procs, (unsigned long long)(kernel_ns / 1000));
    for (int i = 0; i < procs; i++) {
        uint64_t busy = ft_busy_until(p[i], to) - b0[i];
        total += busy;
        printf("%s%.4f", i > 0 ? "," : "", (double)busy / (double)measure);
    }
    printf("],\"share\":%.4f}\n", (double)total / (double)measure);
    fflush(stdout);
    int failed = 0;
    for (int i = 0; i < procs; i++) kill(pids[i], SIGTERM);
    for (int i = 0; i < procs; i++) {
        int status;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    return failed == 0 ? 0 : 1;
}
