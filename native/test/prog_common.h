/*
 * Shared helpers of the test programs: checked driver calls, a kernel "image" for the fake driver
 * (kernelParams[0] points to the kernel's duration in ns), and the device timeline, read directly
 * so that programs report the GPU time they really got rather than what the shim believes.
 */
#ifndef PROG_COMMON_H
#define PROG_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cuda.h>

#include "fake_timeline.h"

#define DIE(...)                                                                                             \
    do {                                                                                                     \
        fprintf(stderr, __VA_ARGS__);                                                                        \
        fputc('\n', stderr);                                                                                 \
        exit(2);                                                                                             \
    } while (0)

#define CHECK(call)                                                                                          \
    do {                                                                                                     \
        int rc_ = (int)(call);                                                                               \
        if (rc_ != 0) DIE("%s:%d: %s failed with %d", __FILE__, __LINE__, #call, rc_);                      \
    } while (0)

/*
 * How every linked test program starts: device 0, its primary context current on this thread, and
 * the fake driver's "sleep_kernel" (kernelParams[0] points to the duration in ns).
 */
static inline CUfunction prog_sleep_kernel(CUdevice *dev, CUcontext *ctx)
{
    CUmodule mod;
    CUfunction kernel;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(ctx, *dev));
    CHECK(cuCtxSetCurrent(*ctx));
    CHECK(cuModuleLoadData(&mod, "fake-module"));
    CHECK(cuModuleGetFunction(&kernel, mod, "sleep_kernel"));
    return kernel;
}

/* This process's entry on fake device 0's timeline (NULL on a real GPU). */
static inline struct ft_proc *prog_timeline_proc(pid_t pid)
{
    static struct ft_device *dev;
    if (dev == NULL) dev = ft_map(0);
    if (dev == NULL) return NULL;
    for (int i = 0; i < FT_MAX_PROCS; i++) {
        if (__atomic_load_n(&dev->procs[i].pid, __ATOMIC_ACQUIRE) == (int32_t)pid) return &dev->procs[i];
    }
    return NULL;
}

#endif
