/*
 * Test program: nanoseconds per cuLaunchKernel call, the host-side cost an application pays per
 * launch. Kernels take 0 ns on the fake device, so with the shim and a core limit every launch is
 * under the limit. Prints {"ns_per_launch":[...runs]} for <runs> runs of <n> launches each.
 * Usage: prog_overhead <n> <runs>
 */
#define _GNU_SOURCE
#include <cuda.h>

#include "prog_common.h"

int main(int argc, char **argv)
{
    if (argc != 3) DIE("usage: prog_overhead <n> <runs>");
    long n = atol(argv[1]);
    int runs = atoi(argv[2]);
    CUdevice dev;
    CUcontext ctx;
    CUstream s;
    CUfunction kernel = prog_sleep_kernel(&dev, &ctx);
    CHECK(cuStreamCreate(&s, 0));
    uint64_t ns = 0;
    void *params[] = {&ns};
    for (long i = 0; i < n; i++) CHECK(cuLaunchKernel(kernel, 1, 1, 1, 32, 1, 1, 0, s, params, NULL));
    printf("{\"ns_per_launch\":[");
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = ft_now();
        for (long i = 0; i < n; i++) CHECK(cuLaunchKernel(kernel, 1, 1, 1, 32, 1, 1, 0, s, params, NULL));
        uint64_t t1 = ft_now();
        printf("%s%.1f", r > 0 ? "," : "", (double)(t1 - t0) / (double)n);
    }
    printf("]}\n");
    CHECK(cuStreamSynchronize(s));
    return 0;
}
