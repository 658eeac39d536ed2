/*
 * Test double: a fake libcuda.so.1 for machines without a GPU. It exports the driver entry points
 * the shim hooks and the test programs use, with the real signatures, names (_v2, _ptsz) and
 * CUresult codes, and simulates a device (fake_timeline.h): a kernel runs for the number of
 * nanoseconds in its first parameter (kernelParams[0] points to a uint64_t), streams serialize,
 * synchronize sleeps until the timeline has finished the work, events time the stream, memory is
 * counted against FAKE_GPU_MEMORY_MIB per device, graph capture records kernels into a graph.
 * cuGetProcAddress/_v2 resolve names the way the driver does (base name -> newest version at or
 * below the requested CUDA version, _ptsz with CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM).
 * With FAKE_CUDA_INTERNAL_POINTERS=1 it hands out, for launches, cuMemAlloc and cuMemGetInfo,
 * internal functions rather than the exported symbols (a driver is free to), to test callers that
 * must not rely on the two being the same.
 * Not modelled: several contexts per device, concurrent kernels, copies, real modules.
 */
#define _GNU_SOURCE
#include <cuda.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_timeline.h"

#undef cuGetProcAddress
#undef cuEventElapsedTime
CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);
CUresult CUDAAPI cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd);

#define FAKE_MAX_DEVICES 8
#define FAKE_DRIVER_VERSION 13000

struct fake_ctx {
    int device;
};
struct fake_stream {
    int device;
    uint64_t tail; /* when the last work on this stream ends */
    int capturing;
    struct fake_graph *capture;
};
struct fake_graph {
    uint64_t duration_ns;
};
struct fake_func {
    char name[64];
};
struct fake_event {
    uint64_t time;
    int recorded;
};

static struct {
    pthread_once_t once;
    int count;
    uint64_t memory_total;
    struct ft_device *timeline[FAKE_MAX_DEVICES];
    struct ft_proc *proc[FAKE_MAX_DEVICES];
    struct fake_ctx ctx[FAKE_MAX_DEVICES];
    struct fake_stream default_stream[FAKE_MAX_DEVICES];
    uint64_t proc_tail; /* when this process's last kernel ends */
    uint64_t next_addr;
    int init_ok;
} g = {.once = PTHREAD_ONCE_INIT};

static __thread struct fake_ctx *current_ctx;

/* Allocations of this process: address or handle -> (device, size). */
#define FAKE_ALLOCS 65536
static struct {
    uint64_t key;
    uint64_t size;
    int device;
} allocs[FAKE_ALLOCS];
static pthread_mutex_t allocs_lock = PTHREAD_MUTEX_INITIALIZER;

static struct ft_proc *join_timeline(struct ft_device *dev)
{
    int32_t me = (int32_t)getpid();
    for (int i = 0; i < FT_MAX_PROCS; i++) {
        struct ft_proc *p = &dev->procs[i];
        int32_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
        /* -1: another process is claiming this slot right now. */
        if (pid < 0 || (pid != 0 && ft_pid_alive(pid))) continue;
        if (!__atomic_compare_exchange_n(&p->pid, &pid, -1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        p->scheduled_ns = 0;
        p->memory_bytes = 0;
        p->ring_next = 0;
        memset(p->ring, 0, sizeof p->ring);
        p->first_ns = ft_now();
        __atomic_store_n(&p->pid, me, __ATOMIC_RELEASE);
        return p;
    }
    fprintf(stderr, "fake gpu: more than %d live processes on one device\n", FT_MAX_PROCS);
    return NULL;
}

static void after_fork_child(void)
{
    /* A child starts with no device state of its own, like a real forked process. */
    for (int d = 0; d < g.count; d++) {
        if (g.timeline[d] != NULL) g.proc[d] = join_timeline(g.timeline[d]);
        g.default_stream[d].tail = 0;
    }
    g.proc_tail = 0;
    memset(allocs, 0, sizeof allocs);
    pthread_mutex_init(&allocs_lock, NULL);
}

static void init_once(void)
{
    const char *n = getenv("FAKE_GPU_COUNT");
    const char *mib = getenv("FAKE_GPU_MEMORY_MIB");
    g.count = n != NULL && *n != '\0' ? atoi(n) : 1;
    if (g.count < 0) g.count = 0;
    if (g.count > FAKE_MAX_DEVICES) g.count = FAKE_MAX_DEVICES;
    g.memory_total = (uint64_t)(mib != NULL && *mib != '\0' ? strtoull(mib, NULL, 10) : 16384) << 20;
    g.next_addr = 0x7f0000000000ull;
    for (int d = 0; d < g.count; d++) {
        g.timeline[d] = ft_map((unsigned)d);
        if (g.timeline[d] == NULL) return;
        g.proc[d] = join_timeline(g.timeline[d]);
        if (g.proc[d] == NULL) return;
        g.ctx[d].device = d;
        g.default_stream[d].device = d;
    }
    pthread_atfork(NULL, NULL, after_fork_child);
    g.init_ok = 1;
}

static int ready(void)
{
    return g.init_ok;
}

static struct fake_stream *stream_of(CUstream s)
{
    if (s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) {
        return &g.default_stream[current_ctx != NULL ? current_ctx->device : 0];
    }
    return (struct fake_stream *)s;
}

static void atomic_max(uint64_t *p, uint64_t v)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
    }
}

/* Put d ns of work on the device behind everything already submitted. */
static CUresult run_on_device(struct fake_stream *st, uint64_t d)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (st->capturing) {
        __atomic_add_fetch(&st->capture->duration_ns, d, __ATOMIC_RELAXED);
        return CUDA_SUCCESS;
    }
    struct ft_device *dev = g.timeline[st->device];
    struct ft_proc *me = g.proc[st->device];
    uint64_t now = ft_now();
    uint64_t tail = __atomic_load_n(&dev->device_tail, __ATOMIC_RELAXED);
    uint64_t start, end;
    do {
        start = tail > now ? tail : now;
        end = start + d;
    } while (!__atomic_compare_exchange_n(&dev->device_tail, &tail, end, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    uint64_t slot = __atomic_fetch_add(&me->ring_next, 1, __ATOMIC_ACQ_REL) % FT_RING;
    __atomic_store_n(&me->ring[slot].start, start, __ATOMIC_RELAXED);
    __atomic_store_n(&me->ring[slot].end, end, __ATOMIC_RELAXED);
    __atomic_add_fetch(&me->scheduled_ns, d, __ATOMIC_RELEASE);
    __atomic_add_fetch(&dev->launches, 1, __ATOMIC_RELAXED);
    atomic_max(&st->tail, end);
    atomic_max(&g.proc_tail, end);
    return CUDA_SUCCESS;
}

static uint64_t kernel_ns(void **params)
{
    return params != NULL && params[0] != NULL ? *(const uint64_t *)params[0] : 0;
}

/* ---- init, devices, contexts ---- */

CUresult CUDAAPI cuInit(unsigned int flags)
{
    (void)flags;
    pthread_once(&g.once, init_once);
    return g.init_ok ? CUDA_SUCCESS : CUDA_ERROR_NO_DEVICE;
}

CUresult CUDAAPI cuDriverGetVersion(int *version)
{
    if (version == NULL) return CUDA_ERROR_INVALID_VALUE;
    *version = FAKE_DRIVER_VERSION;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetCount(int *count)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
    *count = g.count;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (device == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (ordinal < 0 || ordinal >= g.count) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char *name, int len, CUdevice dev)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g.count) return CUDA_ERROR_INVALID_DEVICE;
    if (name == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "SAIR Fake GPU");
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g.count) return CUDA_ERROR_INVALID_DEVICE;
    if (bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
    *bytes = g.memory_total;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (dev < 0 || dev >= g.count) return CUDA_ERROR_INVALID_DEVICE;
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    *pctx = (CUcontext)&g.ctx[dev];
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    if (dev < 0 || dev >= g.count) return CUDA_ERROR_INVALID_DEVICE;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    current_ctx = (struct fake_ctx *)ctx;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetCurrent(CUcontext *pctx)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (pctx == NULL) return CUDA_ERROR_INVALID_VALUE;
    *pctx = (CUcontext)current_ctx;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetDevice(CUdevice *device)
{
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    *device = current_ctx->device;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSynchronize(void)
{
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    ft_sleep_until(__atomic_load_n(&g.proc_tail, __ATOMIC_ACQUIRE));
    return CUDA_SUCCESS;
}

/* ---- modules and functions: any image loads; any name is a kernel ---- */

CUresult CUDAAPI cuModuleLoadData(CUmodule *module, const void *image)
{
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (module == NULL || image == NULL) return CUDA_ERROR_INVALID_VALUE;
    *module = (CUmodule)calloc(1, 16);
    return *module != NULL ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult CUDAAPI cuModuleUnload(CUmodule module)
{
    free(module);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction *fn, CUmodule module, const char *name)
{
    if (fn == NULL || module == NULL || name == NULL) return CUDA_ERROR_INVALID_VALUE;
    struct fake_func *f = calloc(1, sizeof *f);
    if (f == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    snprintf(f->name, sizeof f->name, "%s", name);
    *fn = (CUfunction)f;
    return CUDA_SUCCESS;
}

/* ---- streams, events, graphs ---- */

CUresult CUDAAPI cuStreamCreate(CUstream *stream, unsigned int flags)
{
    (void)flags;
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (stream == NULL) return CUDA_ERROR_INVALID_VALUE;
    struct fake_stream *s = calloc(1, sizeof *s);
    if (s == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    s->device = current_ctx->device;
    *stream = (CUstream)s;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamDestroy_v2(CUstream stream)
{
    if (stream == NULL) return CUDA_ERROR_INVALID_HANDLE;
    free(stream);
    return CUDA_SUCCESS;
}

static CUresult stream_sync(CUstream stream)
{
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    ft_sleep_until(__atomic_load_n(&stream_of(stream)->tail, __ATOMIC_ACQUIRE));
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuStreamSynchronize(CUstream stream) { return stream_sync(stream); }
CUresult CUDAAPI cuStreamSynchronize_ptsz(CUstream stream) { return stream_sync(stream); }

CUresult CUDAAPI cuStreamQuery(CUstream stream)
{
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    return ft_now() >= __atomic_load_n(&stream_of(stream)->tail, __ATOMIC_ACQUIRE) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

static CUresult begin_capture(CUstream stream)
{
    if (stream == NULL || stream == CU_STREAM_LEGACY) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    struct fake_stream *s = stream_of(stream);
    if (s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    s->capture = calloc(1, sizeof *s->capture);
    if (s->capture == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    s->capturing = 1;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode mode) { (void)mode; return begin_capture(s); }
CUresult CUDAAPI cuStreamBeginCapture_v2_ptsz(CUstream s, CUstreamCaptureMode mode) { (void)mode; return begin_capture(s); }

static CUresult end_capture(CUstream stream, CUgraph *graph)
{
    struct fake_stream *s = stream_of(stream);
    if (graph == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (!s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    s->capturing = 0;
    *graph = (CUgraph)s->capture;
    s->capture = NULL;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuStreamEndCapture(CUstream s, CUgraph *graph) { return end_capture(s, graph); }
CUresult CUDAAPI cuStreamEndCapture_ptsz(CUstream s, CUgraph *graph) { return end_capture(s, graph); }

static CUresult is_capturing(CUstream stream, CUstreamCaptureStatus *status)
{
    if (status == NULL) return CUDA_ERROR_INVALID_VALUE;
    *status = stream_of(stream)->capturing ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *st) { return is_capturing(s, st); }
CUresult CUDAAPI cuStreamIsCapturing_ptsz(CUstream s, CUstreamCaptureStatus *st) { return is_capturing(s, st); }

CUresult CUDAAPI cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph graph, unsigned long long flags)
{
    (void)flags;
    if (exec == NULL || graph == NULL) return CUDA_ERROR_INVALID_VALUE;
    struct fake_graph *e = malloc(sizeof *e);
    if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
    *e = *(struct fake_graph *)graph;
    *exec = (CUgraphExec)e;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuGraphDestroy(CUgraph graph) { free(graph); return CUDA_SUCCESS; }
CUresult CUDAAPI cuGraphExecDestroy(CUgraphExec exec) { free(exec); return CUDA_SUCCESS; }

static CUresult graph_launch(CUgraphExec exec, CUstream stream)
{
    if (exec == NULL) return CUDA_ERROR_INVALID_VALUE;
    return run_on_device(stream_of(stream), ((struct fake_graph *)exec)->duration_ns);
}
CUresult CUDAAPI cuGraphLaunch(CUgraphExec exec, CUstream s) { return graph_launch(exec, s); }
CUresult CUDAAPI cuGraphLaunch_ptsz(CUgraphExec exec, CUstream s) { return graph_launch(exec, s); }

CUresult CUDAAPI cuEventCreate(CUevent *event, unsigned int flags)
{
    (void)flags;
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (event == NULL) return CUDA_ERROR_INVALID_VALUE;
    *event = (CUevent)calloc(1, sizeof(struct fake_event));
    return *event != NULL ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult CUDAAPI cuEventDestroy_v2(CUevent event)
{
    if (event == NULL) return CUDA_ERROR_INVALID_HANDLE;
    free(event);
    return CUDA_SUCCESS;
}

/* An event completes when the work submitted to its stream before it has finished. */
static CUresult event_record(CUevent event, CUstream stream)
{
    if (event == NULL) return CUDA_ERROR_INVALID_HANDLE;
    struct fake_event *e = (struct fake_event *)event;
    struct fake_stream *s = stream_of(stream);
    if (s->capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    uint64_t now = ft_now();
    uint64_t tail = __atomic_load_n(&s->tail, __ATOMIC_ACQUIRE);
    __atomic_store_n(&e->time, tail > now ? tail : now, __ATOMIC_RELEASE);
    __atomic_store_n(&e->recorded, 1, __ATOMIC_RELEASE);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuEventRecord(CUevent e, CUstream s) { return event_record(e, s); }
CUresult CUDAAPI cuEventRecord_ptsz(CUevent e, CUstream s) { return event_record(e, s); }

CUresult CUDAAPI cuEventQuery(CUevent event)
{
    if (event == NULL) return CUDA_ERROR_INVALID_HANDLE;
    struct fake_event *e = (struct fake_event *)event;
    if (!__atomic_load_n(&e->recorded, __ATOMIC_ACQUIRE)) return CUDA_SUCCESS;
    return ft_now() >= __atomic_load_n(&e->time, __ATOMIC_ACQUIRE) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

CUresult CUDAAPI cuEventSynchronize(CUevent event)
{
    if (event == NULL) return CUDA_ERROR_INVALID_HANDLE;
    struct fake_event *e = (struct fake_event *)event;
    if (__atomic_load_n(&e->recorded, __ATOMIC_ACQUIRE)) ft_sleep_until(__atomic_load_n(&e->time, __ATOMIC_ACQUIRE));
    return CUDA_SUCCESS;
}

static CUresult elapsed(float *ms, CUevent start, CUevent end)
{
    if (ms == NULL) return CUDA_ERROR_INVALID_VALUE;
    if (start == NULL || end == NULL) return CUDA_ERROR_INVALID_HANDLE;
    struct fake_event *a = (struct fake_event *)start, *b = (struct fake_event *)end;
    if (!a->recorded || !b->recorded) return CUDA_ERROR_INVALID_HANDLE;
    uint64_t now = ft_now();
    if (now < a->time || now < b->time) return CUDA_ERROR_NOT_READY;
    *ms = (float)((double)((int64_t)(b->time - a->time)) / 1e6);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuEventElapsedTime(float *ms, CUevent a, CUevent b) { return elapsed(ms, a, b); }
CUresult CUDAAPI cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b) { return elapsed(ms, a, b); }

/* ---- launches ---- */

static CUresult launch(CUfunction f, CUstream stream, void **params)
{
    if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
    return run_on_device(stream_of(stream), kernel_ns(params));
}

#define LAUNCH_ARGS                                                                                             \
    CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,      \
        unsigned int bz, unsigned int shmem, CUstream stream, void **params
#define UNUSED_DIMS (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz, (void)shmem

CUresult CUDAAPI cuLaunchKernel(LAUNCH_ARGS, void **extra) { (void)extra; UNUSED_DIMS; return launch(f, stream, params); }
CUresult CUDAAPI cuLaunchKernel_ptsz(LAUNCH_ARGS, void **extra) { (void)extra; UNUSED_DIMS; return launch(f, stream, params); }
CUresult CUDAAPI cuLaunchCooperativeKernel(LAUNCH_ARGS) { UNUSED_DIMS; return launch(f, stream, params); }
CUresult CUDAAPI cuLaunchCooperativeKernel_ptsz(LAUNCH_ARGS) { UNUSED_DIMS; return launch(f, stream, params); }

static CUresult launch_ex(const CUlaunchConfig *config, CUfunction f, void **params)
{
    if (config == NULL) return CUDA_ERROR_INVALID_VALUE;
    return launch(f, config->hStream, params);
}
CUresult CUDAAPI cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **p, void **extra) { (void)extra; return launch_ex(c, f, p); }
CUresult CUDAAPI cuLaunchKernelEx_ptsz(const CUlaunchConfig *c, CUfunction f, void **p, void **extra) { (void)extra; return launch_ex(c, f, p); }

/* ---- memory ---- */

static CUresult track(uint64_t key, uint64_t size)
{
    int device = current_ctx->device;
    struct ft_proc *me = g.proc[device];
    uint64_t used = 0;
    for (int i = 0; i < FT_MAX_PROCS; i++) {
        struct ft_proc *p = &g.timeline[device]->procs[i];
        int32_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
        if (pid > 0 && ft_pid_alive(pid)) used += __atomic_load_n(&p->memory_bytes, __ATOMIC_RELAXED);
    }
    if (used + size > g.memory_total) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&allocs_lock);
    for (uint64_t i = 0; i < FAKE_ALLOCS; i++) {
        uint64_t h = (key / 256 + i) % FAKE_ALLOCS;
        if (allocs[h].key == 0) {
            allocs[h].key = key;
            allocs[h].size = size;
            allocs[h].device = device;
            __atomic_add_fetch(&me->memory_bytes, size, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&allocs_lock);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&allocs_lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

static CUresult untrack(uint64_t key)
{
    pthread_mutex_lock(&allocs_lock);
    for (uint64_t i = 0; i < FAKE_ALLOCS; i++) {
        uint64_t h = (key / 256 + i) % FAKE_ALLOCS;
        if (allocs[h].key == key) {
            __atomic_sub_fetch(&g.proc[allocs[h].device]->memory_bytes, allocs[h].size, __ATOMIC_RELAXED);
            /* Keep the probe chain intact: re-insert the entries that follow. */
            allocs[h].key = 0;
            for (uint64_t j = (h + 1) % FAKE_ALLOCS; allocs[j].key != 0; j = (j + 1) % FAKE_ALLOCS) {
                uint64_t k = allocs[j].key, s = allocs[j].size;
                int d = allocs[j].device;
                allocs[j].key = 0;
                for (uint64_t m = (k / 256) % FAKE_ALLOCS;; m = (m + 1) % FAKE_ALLOCS) {
                    if (allocs[m].key == 0) {
                        allocs[m].key = k;
                        allocs[m].size = s;
                        allocs[m].device = d;
                        break;
                    }
                }
            }
            pthread_mutex_unlock(&allocs_lock);
            return CUDA_SUCCESS;
        }
        if (allocs[h].key == 0) break;
    }
    pthread_mutex_unlock(&allocs_lock);
    return CUDA_ERROR_INVALID_VALUE;
}

static CUresult alloc(CUdeviceptr *dptr, size_t size)
{
    if (!ready()) return CUDA_ERROR_NOT_INITIALIZED;
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (dptr == NULL || size == 0) return CUDA_ERROR_INVALID_VALUE;
    uint64_t addr = __atomic_fetch_add(&g.next_addr, (size + 511) & ~511ull, __ATOMIC_RELAXED);
    CUresult rc = track(addr, size);
    if (rc == CUDA_SUCCESS) *dptr = (CUdeviceptr)addr;
    return rc;
}

CUresult CUDAAPI cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) { return alloc(dptr, size); }
CUresult CUDAAPI cuMemAllocManaged(CUdeviceptr *dptr, size_t size, unsigned int flags) { (void)flags; return alloc(dptr, size); }
CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s) { (void)s; return alloc(dptr, size); }
CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size, CUstream s) { (void)s; return alloc(dptr, size); }
CUresult CUDAAPI cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s) { (void)pool; (void)s; return alloc(dptr, size); }
CUresult CUDAAPI cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s) { (void)pool; (void)s; return alloc(dptr, size); }

CUresult CUDAAPI cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int elem)
{
    (void)elem;
    if (pitch == NULL || width == 0 || height == 0) return CUDA_ERROR_INVALID_VALUE;
    size_t p = (width + 511) & ~(size_t)511;
    CUresult rc = alloc(dptr, p * height);
    if (rc == CUDA_SUCCESS) *pitch = p;
    return rc;
}

static CUresult mem_free(CUdeviceptr dptr)
{
    if (dptr == 0) return CUDA_SUCCESS;
    return untrack((uint64_t)dptr);
}
CUresult CUDAAPI cuMemFree_v2(CUdeviceptr dptr) { return mem_free(dptr); }
CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream s) { (void)s; return mem_free(dptr); }
CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream s) { (void)s; return mem_free(dptr); }

CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop, unsigned long long flags)
{
    (void)prop;
    (void)flags;
    CUdeviceptr id;
    CUresult rc = alloc(&id, size);
    if (rc == CUDA_SUCCESS) *handle = (CUmemGenericAllocationHandle)id;
    return rc;
}
CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle handle) { return untrack((uint64_t)handle); }

static CUresult internal_mem_info(size_t *free_bytes, size_t *total_bytes);

CUresult CUDAAPI cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes)
{
    return internal_mem_info(free_bytes, total_bytes);
}

static CUresult internal_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    if (current_ctx == NULL) return CUDA_ERROR_INVALID_CONTEXT;
    if (free_bytes == NULL || total_bytes == NULL) return CUDA_ERROR_INVALID_VALUE;
    uint64_t used = 0;
    for (int i = 0; i < FT_MAX_PROCS; i++) {
        struct ft_proc *p = &g.timeline[current_ctx->device]->procs[i];
        int32_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
        if (pid > 0 && ft_pid_alive(pid)) used += __atomic_load_n(&p->memory_bytes, __ATOMIC_RELAXED);
    }
    *total_bytes = g.memory_total;
    *free_bytes = used > g.memory_total ? 0 : g.memory_total - used;
    return CUDA_SUCCESS;
}

/* ---- errors ---- */

CUresult CUDAAPI cuGetErrorString(CUresult error, const char **str)
{
    if (str == NULL) return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
    case CUDA_SUCCESS: *str = "no error"; break;
    case CUDA_ERROR_INVALID_VALUE: *str = "invalid argument"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *str = "out of memory"; break;
    case CUDA_ERROR_NOT_INITIALIZED: *str = "initialization error"; break;
    case CUDA_ERROR_NOT_READY: *str = "device not ready"; break;
    case CUDA_ERROR_NOT_FOUND: *str = "named symbol not found"; break;
    default: *str = "unknown error"; return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGetErrorName(CUresult error, const char **str)
{
    if (str == NULL) return CUDA_ERROR_INVALID_VALUE;
    switch (error) {
    case CUDA_SUCCESS: *str = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_INVALID_VALUE: *str = "CUDA_ERROR_INVALID_VALUE"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *str = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case CUDA_ERROR_NOT_INITIALIZED: *str = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case CUDA_ERROR_NOT_READY: *str = "CUDA_ERROR_NOT_READY"; break;
    case CUDA_ERROR_NOT_FOUND: *str = "CUDA_ERROR_NOT_FOUND"; break;
    default: *str = "CUDA_ERROR_UNKNOWN"; return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* ---- cuGetProcAddress: base name + CUDA version -> versioned entry point, like the driver ---- */

struct proc_entry {
    const char *name;    /* the name applications ask for */
    int min_version;     /* the CUDA version that introduced this variant */
    void *fn;            /* default-stream (legacy) variant */
    void *ptsz;          /* per-thread-default-stream variant, or NULL when the same */
};

#define E(n, v, f, p) {n, v, (void *)(f), (void *)(p)}
static const struct proc_entry proc_table[] = {
    /* Newer variants first: the first entry at or below the requested version wins. */
    E("cuGetProcAddress", 12000, cuGetProcAddress_v2, NULL),
    E("cuGetProcAddress", 11030, cuGetProcAddress, NULL),
    E("cuInit", 2000, cuInit, NULL),
    E("cuDriverGetVersion", 2020, cuDriverGetVersion, NULL),
    E("cuDeviceGetCount", 2000, cuDeviceGetCount, NULL),
    E("cuDeviceGet", 2000, cuDeviceGet, NULL),
    E("cuDeviceGetName", 2000, cuDeviceGetName, NULL),
    E("cuDeviceTotalMem", 3020, cuDeviceTotalMem_v2, NULL),
    E("cuDevicePrimaryCtxRetain", 7000, cuDevicePrimaryCtxRetain, NULL),
    E("cuDevicePrimaryCtxRelease", 11000, cuDevicePrimaryCtxRelease_v2, NULL),
    E("cuCtxSetCurrent", 4000, cuCtxSetCurrent, NULL),
    E("cuCtxGetCurrent", 4000, cuCtxGetCurrent, NULL),
    E("cuCtxGetDevice", 2000, cuCtxGetDevice, NULL),
    E("cuCtxSynchronize", 2000, cuCtxSynchronize, NULL),
    E("cuModuleLoadData", 2000, cuModuleLoadData, NULL),
    E("cuModuleUnload", 2000, cuModuleUnload, NULL),
    E("cuModuleGetFunction", 2000, cuModuleGetFunction, NULL),
    E("cuStreamCreate", 2000, cuStreamCreate, NULL),
    E("cuStreamDestroy", 4000, cuStreamDestroy_v2, NULL),
    E("cuStreamSynchronize", 2000, cuStreamSynchronize, cuStreamSynchronize_ptsz),
    E("cuStreamQuery", 2000, cuStreamQuery, NULL),
    E("cuStreamBeginCapture", 10010, cuStreamBeginCapture_v2, cuStreamBeginCapture_v2_ptsz),
    E("cuStreamEndCapture", 10000, cuStreamEndCapture, cuStreamEndCapture_ptsz),
    E("cuStreamIsCapturing", 10000, cuStreamIsCapturing, cuStreamIsCapturing_ptsz),
    E("cuGraphInstantiate", 11040, cuGraphInstantiateWithFlags, NULL),
    E("cuGraphInstantiateWithFlags", 11040, cuGraphInstantiateWithFlags, NULL),
    E("cuGraphDestroy", 10000, cuGraphDestroy, NULL),
    E("cuGraphExecDestroy", 10000, cuGraphExecDestroy, NULL),
    E("cuGraphLaunch", 10000, cuGraphLaunch, cuGraphLaunch_ptsz),
    E("cuEventCreate", 2000, cuEventCreate, NULL),
    E("cuEventDestroy", 4000, cuEventDestroy_v2, NULL),
    E("cuEventRecord", 2000, cuEventRecord, cuEventRecord_ptsz),
    E("cuEventQuery", 2000, cuEventQuery, NULL),
    E("cuEventSynchronize", 2000, cuEventSynchronize, NULL),
    E("cuEventElapsedTime", 12080, cuEventElapsedTime_v2, NULL),
    E("cuEventElapsedTime", 2000, cuEventElapsedTime, NULL),
    E("cuLaunchKernel", 4000, cuLaunchKernel, cuLaunchKernel_ptsz),
    E("cuLaunchKernelEx", 11060, cuLaunchKernelEx, cuLaunchKernelEx_ptsz),
    E("cuLaunchCooperativeKernel", 9000, cuLaunchCooperativeKernel, cuLaunchCooperativeKernel_ptsz),
    E("cuMemAlloc", 3020, cuMemAlloc_v2, NULL),
    E("cuMemAllocPitch", 3020, cuMemAllocPitch_v2, NULL),
    E("cuMemAllocManaged", 6000, cuMemAllocManaged, NULL),
    E("cuMemAllocAsync", 11020, cuMemAllocAsync, cuMemAllocAsync_ptsz),
    E("cuMemAllocFromPoolAsync", 11020, cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync_ptsz),
    E("cuMemFree", 3020, cuMemFree_v2, NULL),
    E("cuMemFreeAsync", 11020, cuMemFreeAsync, cuMemFreeAsync_ptsz),
    E("cuMemCreate", 10020, cuMemCreate, NULL),
    E("cuMemRelease", 10020, cuMemRelease, NULL),
    E("cuMemGetInfo", 3020, cuMemGetInfo_v2, NULL),
    E("cuGetErrorString", 6000, cuGetErrorString, NULL),
    E("cuGetErrorName", 6000, cuGetErrorName, NULL),
};
#undef E

/* Internal entry points: same behaviour, different addresses, not interposable. */
static CUresult internal_launch(LAUNCH_ARGS, void **extra) { (void)extra; UNUSED_DIMS; return launch(f, stream, params); }
static CUresult internal_alloc(CUdeviceptr *dptr, size_t size) { return alloc(dptr, size); }

static void *internal_pointer(void *fn)
{
    static int enabled = -1;
    if (enabled < 0) {
        const char *v = getenv("FAKE_CUDA_INTERNAL_POINTERS");
        enabled = v != NULL && strcmp(v, "1") == 0;
    }
    if (!enabled) return fn;
    if (fn == (void *)cuLaunchKernel || fn == (void *)cuLaunchKernel_ptsz) return (void *)internal_launch;
    if (fn == (void *)cuMemAlloc_v2) return (void *)internal_alloc;
    if (fn == (void *)cuMemGetInfo_v2) return (void *)internal_mem_info;
    return fn;
}

static CUresult get_proc(const char *symbol, void **pfn, int version, cuuint64_t flags, CUdriverProcAddressQueryResult *status)
{
    if (symbol == NULL || pfn == NULL) return CUDA_ERROR_INVALID_VALUE;
    int seen = 0;
    for (size_t i = 0; i < sizeof proc_table / sizeof proc_table[0]; i++) {
        const struct proc_entry *e = &proc_table[i];
        if (strcmp(e->name, symbol) != 0) continue;
        seen = 1;
        if (e->min_version > version) continue;
        *pfn = internal_pointer((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && e->ptsz != NULL ? e->ptsz : e->fn);
        if (status != NULL) *status = CU_GET_PROC_ADDRESS_SUCCESS;
        return CUDA_SUCCESS;
    }
    *pfn = NULL;
    if (status != NULL) *status = seen ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_ERROR_NOT_FOUND;
}

CUresult CUDAAPI cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags, CUdriverProcAddressQueryResult *status)
{
    return get_proc(symbol, pfn, version, flags, status);
}

CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int version, cuuint64_t flags)
{
    return get_proc(symbol, pfn, version, flags, NULL);
}
