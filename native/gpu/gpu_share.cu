/*
 * Real-GPU benchmark program (needs a GPU and its driver; built by `make -C native gpu` with nvcc):
 * the share of a real GPU that a pod of <procs> processes gets under the shim. Each worker, forked
 * before any CUDA call, launches busy kernels that spin on the GPU's global timer for <kernel_us>
 * through the CUDA runtime (so the shim sees them through cuGetProcAddress, as with PyTorch),
 * keeping 64 queued. The parent, which never touches CUDA, polls NVML's device utilization (the
 * percent of time a kernel was running) every 100 ms over <measure_ms> after <warmup_ms> and prints
 * the mean as one JSON line. The pod must be the only user of the GPU.
 * Usage: gpu_share <procs> <kernel_us> <warmup_ms> <measure_ms>
 */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern "C" {
#include "../test/nvml_min.h"
}

#define DEPTH 64

__global__ void busy(unsigned long long ns)
{
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}

static volatile sig_atomic_t stop;
static void on_term(int) { stop = 1; }

static void die(const char *what, int code)
{
    fprintf(stderr, "gpu_share: %s failed with %d\n", what, code);
    exit(2);
}

#define CHECK_CUDA(call)                                                                                     \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess) die(#call, (int)e_);                                                          \
    } while (0)

static void worker(unsigned long long kernel_ns)
{
    signal(SIGTERM, on_term);
    cudaStream_t s;
    cudaEvent_t done[DEPTH];
    CHECK_CUDA(cudaSetDevice(0));
    CHECK_CUDA(cudaStreamCreate(&s));
    for (int i = 0; i < DEPTH; i++) CHECK_CUDA(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming));
    for (unsigned long n = 0; !stop; n++) {
        CHECK_CUDA(cudaEventSynchronize(done[n % DEPTH]));
        busy<<<1, 1, 0, s>>>(kernel_ns);
        CHECK_CUDA(cudaGetLastError());
        CHECK_CUDA(cudaEventRecord(done[n % DEPTH], s));
    }
    CHECK_CUDA(cudaStreamSynchronize(s));
    _exit(0);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1e3), (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: gpu_share <procs> <kernel_us> <warmup_ms> <measure_ms>\n");
        return 2;
    }
    int procs = atoi(argv[1]);
    unsigned long long kernel_ns = strtoull(argv[2], NULL, 10) * 1000ull;
    double warmup = atof(argv[3]), measure = atof(argv[4]);
    if (procs < 1 || procs > 32) die("procs in 1..32", procs);
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (lib == NULL) die("dlopen libnvidia-ml.so.1", 0);
    __typeof__(&nvmlInit_v2) init = (__typeof__(&nvmlInit_v2))dlsym(lib, "nvmlInit_v2");
    __typeof__(&nvmlDeviceGetHandleByIndex_v2) handle = (__typeof__(&nvmlDeviceGetHandleByIndex_v2))dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    __typeof__(&nvmlDeviceGetUtilizationRates) util = (__typeof__(&nvmlDeviceGetUtilizationRates))dlsym(lib, "nvmlDeviceGetUtilizationRates");
    if (init == NULL || handle == NULL || util == NULL) die("NVML symbols", 0);
    pid_t pids[32];
    for (int i = 0; i < procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) die("fork", 0);
        if (pids[i] == 0) worker(kernel_ns);
    }
    nvmlDevice_t dev;
    int rc = init();
    if (rc != NVML_SUCCESS) die("nvmlInit_v2", rc);
    rc = handle(0, &dev);
    if (rc != NVML_SUCCESS) die("nvmlDeviceGetHandleByIndex_v2", rc);
    sleep_ms(warmup);
    double end = now_ms() + measure, sum = 0;
    int samples = 0;
    while (now_ms() < end) {
        nvmlUtilization_t u;
        if (util(dev, &u) == NVML_SUCCESS) {
            sum += u.gpu;
            samples++;
        }
        sleep_ms(100);
    }
    for (int i = 0; i < procs; i++) kill(pids[i], SIGTERM);
    int failed = 0;
    for (int i = 0; i < procs; i++) {
        int status;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    printf("{\"procs\":%d,\"kernel_us\":%llu,\"samples\":%d,\"share\":%.4f}\n", procs, kernel_ns / 1000, samples,
           samples > 0 ? sum / samples / 100.0 : -1.0);
    return failed == 0 && samples > 0 ? 0 : 1;
}
