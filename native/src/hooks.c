/*
 * The hooked driver entry points, in one table, and the one place that resolves the real ones.
 *
 * Applications reach the driver three ways, and each leads here:
 *  - direct calls: this library is LD_PRELOADed, so its exported names come before libcuda's;
 *  - cuGetProcAddress/_v2 (the CUDA runtime 11.3+ path): the hook asks the real driver, then
 *    hands out our wrapper when the pointer it got is one of the real entry points we hook;
 *  - dlsym on the handle from dlopen("libcuda.so.1"): dlsym on a library handle searches only that
 *    library, so we interpose dlopen instead of dlsym. For libcuda we load the real library
 *    RTLD_GLOBAL and return the main program's handle, on which dlsym searches the global scope:
 *    the preloaded shim first, then libcuda. dlsym itself is never overridden, which is what
 *    deadlocks or breaks dlsym(RTLD_NEXT, ...) callers in shims that do.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "shim.h"

#undef cuGetProcAddress
CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags);
/* Per-thread-default-stream variants, declared by cuda.h only in per-thread builds. */
CUresult CUDAAPI cuLaunchKernel_ptsz(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **);
CUresult CUDAAPI cuLaunchKernelEx_ptsz(const CUlaunchConfig *, CUfunction, void **, void **);
CUresult CUDAAPI cuLaunchCooperativeKernel_ptsz(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **);
CUresult CUDAAPI cuGraphLaunch_ptsz(CUgraphExec, CUstream);
CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr *, size_t, CUstream);
CUresult CUDAAPI cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *, size_t, CUmemoryPool, CUstream);
CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr, CUstream);
CUresult CUDAAPI cuStreamBeginCapture_v2_ptsz(CUstream, CUstreamCaptureMode);
CUresult CUDAAPI cuStreamEndCapture_ptsz(CUstream, CUgraph *);

#define HOOKED(X)                                                                                            \
    X(cuGetProcAddress)                                                                                      \
    X(cuGetProcAddress_v2)                                                                                   \
    X(cuLaunchKernel)                                                                                        \
    X(cuLaunchKernel_ptsz)                                                                                   \
    X(cuLaunchKernelEx)                                                                                      \
    X(cuLaunchKernelEx_ptsz)                                                                                 \
    X(cuLaunchCooperativeKernel)                                                                             \
    X(cuLaunchCooperativeKernel_ptsz)                                                                        \
    X(cuGraphLaunch)                                                                                         \
    X(cuGraphLaunch_ptsz)                                                                                    \
    X(cuMemAlloc_v2)                                                                                         \
    X(cuMemAllocPitch_v2)                                                                                    \
    X(cuMemAllocManaged)                                                                                     \
    X(cuMemAllocAsync)                                                                                       \
    X(cuMemAllocAsync_ptsz)                                                                                  \
    X(cuMemAllocFromPoolAsync)                                                                               \
    X(cuMemAllocFromPoolAsync_ptsz)                                                                          \
    X(cuMemFree_v2)                                                                                          \
    X(cuMemFreeAsync)                                                                                        \
    X(cuMemFreeAsync_ptsz)                                                                                   \
    X(cuMemCreate)                                                                                           \
    X(cuMemRelease)                                                                                          \
    X(cuMemGetInfo_v2)                                                                                       \
    X(cuDeviceTotalMem_v2)                                                                                   \
    X(cuStreamBeginCapture_v2)                                                                               \
    X(cuStreamBeginCapture_v2_ptsz)                                                                          \
    X(cuStreamEndCapture)                                                                                    \
    X(cuStreamEndCapture_ptsz)

#define DECLARE_REAL(n) static __typeof__(&n) real_##n;
/* Read a real entry point (written by any thread that resolves; all write the same value). */
#define REAL(n) __atomic_load_n(&real_##n, __ATOMIC_RELAXED)
#define REAL_PTR(p) __atomic_load_n((p), __ATOMIC_RELAXED)
HOOKED(DECLARE_REAL)

struct sair_real sair_real;

static void *(*real_dlopen)(const char *, int);
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int resolved; /* 0: not yet, 1: libcuda and its entry points found, -1: unusable */
static int set_up;

static void resolve_dlopen(void)
{
    real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
}

static void fork_prepare(void)
{
    sair_control_fork_prepare();
    sair_limiter_fork_prepare();
    sair_mem_fork_prepare();
}

static void fork_parent(void)
{
    sair_mem_fork_parent();
    sair_limiter_fork_parent();
    sair_control_fork_parent();
}

static void fork_child(void)
{
    sair_mem_fork_child();
    sair_limiter_fork_child();
    sair_control_fork_child();
}

static void *real_symbol(void *lib, const char *name)
{
    return dlsym(lib, name);
}

#define STORE(ptr, value) __atomic_store_n(&(ptr), (__typeof__(ptr))(value), __ATOMIC_RELAXED)

/* Find libcuda and the real entry points. No lock is held here: a thread may arrive holding the
 * loader's lock (a library constructor calling CUDA inside someone's dlopen) while another is
 * here, and a lock around dlopen/dlsym would then deadlock the two, the import-torch hang. So
 * every thread that finds the work not done does it; all compute the same values. */
static void resolve(void)
{
    if (real_dlopen == NULL) resolve_dlopen();
    void *lib = real_dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) lib = real_dlopen("libcuda.so.1", RTLD_NOW);
    if (lib == NULL) {
        LOG_ERROR("cannot load libcuda.so.1 (%s); hooked calls return CUDA_ERROR_NOT_INITIALIZED", dlerror());
        __atomic_store_n(&resolved, -1, __ATOMIC_RELEASE);
        return;
    }
#define RESOLVE(n) STORE(real_##n, real_symbol(lib, #n));
    HOOKED(RESOLVE)
#undef RESOLVE
    void *elapsed = real_symbol(lib, "cuEventElapsedTime_v2");
    STORE(sair_real.cuEventCreate, real_symbol(lib, "cuEventCreate"));
    STORE(sair_real.cuEventDestroy_v2, real_symbol(lib, "cuEventDestroy_v2"));
    STORE(sair_real.cuEventRecord, real_symbol(lib, "cuEventRecord"));
    STORE(sair_real.cuEventQuery, real_symbol(lib, "cuEventQuery"));
    STORE(sair_real.cuEventElapsedTime, elapsed != NULL ? elapsed : real_symbol(lib, "cuEventElapsedTime"));
    STORE(sair_real.cuStreamIsCapturing, real_symbol(lib, "cuStreamIsCapturing"));
    STORE(sair_real.cuCtxGetCurrent, real_symbol(lib, "cuCtxGetCurrent"));
    if (sair_real.cuEventCreate == NULL || sair_real.cuEventDestroy_v2 == NULL || sair_real.cuEventRecord == NULL ||
        sair_real.cuEventQuery == NULL || sair_real.cuEventElapsedTime == NULL || sair_real.cuCtxGetCurrent == NULL) {
        LOG_ERROR("libcuda.so.1 lacks the event API the limiter times kernels with; not intercepting");
        __atomic_store_n(&resolved, -1, __ATOMIC_RELEASE);
        return;
    }
    __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
}

/* One-time setup that makes no loader calls, so holding pthread_once's lock here is safe. */
static void setup(void)
{
    sair_control_init();
    sair_limiter_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&set_up, 1, __ATOMIC_RELEASE);
    LOG_INFO("intercepting libcuda.so.1");
}

int sair_init(void)
{
    int r = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE);
    if (r == 0) {
        resolve();
        r = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE);
    }
    if (r < 0) return -1;
    pthread_once(&once, setup);
    return 0;
}

__attribute__((constructor)) static void sair_ctor(void)
{
    sair_log_init();
    if (real_dlopen == NULL) resolve_dlopen();
}

__attribute__((destructor)) static void sair_dtor(void)
{
    if (__atomic_load_n(&set_up, __ATOMIC_ACQUIRE)) sair_control_exit();
}

/* ---- dlopen: see the header comment ---- */

static int is_libcuda(const char *file)
{
    const char *base = strrchr(file, '/');
    base = base != NULL ? base + 1 : file;
    return strncmp(base, "libcuda.so", 10) == 0;
}

static __attribute__((noinline)) void *open_libcuda(const char *file, int mode)
{
    void *h = real_dlopen(file, mode | RTLD_GLOBAL);
    if (h == NULL) return NULL;
    LOG_DEBUG("dlopen(\"%s\"): libcuda made global; handing out the global-scope handle", file);
    if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE) == 0) resolve();
    return real_dlopen(NULL, RTLD_LAZY);
}

SAIR_EXPORT void *dlopen(const char *file, int mode)
{
    if (__builtin_expect(real_dlopen == NULL, 0)) resolve_dlopen();
    if (file != NULL && is_libcuda(file)) return open_libcuda(file, mode);
    /* A tail call (checked by the tests): glibc finds the caller's RUNPATH from the return
     * address, which must stay the application's, not ours. */
    return real_dlopen(file, mode);
}

/* ---- cuGetProcAddress ---- */

static void *wrap(const char *symbol, int version, cuuint64_t flags, void *fn);

static CUresult hook_cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags,
                                         CUdriverProcAddressQueryResult *status)
{
    if (sair_init() != 0 || REAL(cuGetProcAddress_v2) == NULL) return CUDA_ERROR_NOT_INITIALIZED;
    CUresult rc = REAL(cuGetProcAddress_v2)(symbol, pfn, version, flags, status);
    if (rc == CUDA_SUCCESS && pfn != NULL) *pfn = wrap(symbol, version, flags, *pfn);
    return rc;
}

static CUresult hook_cuGetProcAddress(const char *symbol, void **pfn, int version, cuuint64_t flags)
{
    if (sair_init() != 0 || REAL(cuGetProcAddress) == NULL) return CUDA_ERROR_NOT_INITIALIZED;
    CUresult rc = REAL(cuGetProcAddress)(symbol, pfn, version, flags);
    if (rc == CUDA_SUCCESS && pfn != NULL) *pfn = wrap(symbol, version, flags, *pfn);
    return rc;
}

/* ---- launches ---- */

#define READY(real)                                                                                          \
    do {                                                                                                     \
        if (sair_init() != 0) return CUDA_ERROR_NOT_INITIALIZED;                                             \
        if ((real) == NULL) return CUDA_ERROR_NOT_FOUND;                                                     \
    } while (0)

/* With the per-thread variants, a null stream means the calling thread's default stream. */
#define PTSZ_STREAM(s) ((s) == NULL ? CU_STREAM_PER_THREAD : (s))

#define LAUNCH_PARAMS                                                                                        \
    CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shmem, \
        CUstream s, void **params
#define LAUNCH_ARGS f, gx, gy, gz, bx, by, bz, shmem, s, params

#define LIMITED(key, stream, call)                                                                           \
    do {                                                                                                     \
        struct sair_launch l;                                                                                \
        sair_limiter_before(&l, (uint64_t)(key), (stream));                                                  \
        CUresult rc = (call);                                                                                \
        sair_limiter_after(&l, (stream), rc);                                                                \
        return rc;                                                                                           \
    } while (0)

static CUresult hook_cuLaunchKernel(LAUNCH_PARAMS, void **extra)
{
    READY(REAL(cuLaunchKernel));
    LIMITED(f, s, REAL(cuLaunchKernel)(LAUNCH_ARGS, extra));
}

static CUresult hook_cuLaunchKernel_ptsz(LAUNCH_PARAMS, void **extra)
{
    READY(REAL(cuLaunchKernel_ptsz));
    LIMITED(f, PTSZ_STREAM(s), REAL(cuLaunchKernel_ptsz)(LAUNCH_ARGS, extra));
}

static CUresult hook_cuLaunchCooperativeKernel(LAUNCH_PARAMS)
{
    READY(REAL(cuLaunchCooperativeKernel));
    LIMITED(f, s, REAL(cuLaunchCooperativeKernel)(LAUNCH_ARGS));
}

static CUresult hook_cuLaunchCooperativeKernel_ptsz(LAUNCH_PARAMS)
{
    READY(REAL(cuLaunchCooperativeKernel_ptsz));
    LIMITED(f, PTSZ_STREAM(s), REAL(cuLaunchCooperativeKernel_ptsz)(LAUNCH_ARGS));
}

static CUresult hook_cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
    READY(REAL(cuLaunchKernelEx));
    if (config == NULL) return REAL(cuLaunchKernelEx)(config, f, params, extra);
    LIMITED(f, config->hStream, REAL(cuLaunchKernelEx)(config, f, params, extra));
}

static CUresult hook_cuLaunchKernelEx_ptsz(const CUlaunchConfig *config, CUfunction f, void **params, void **extra)
{
    READY(REAL(cuLaunchKernelEx_ptsz));
    if (config == NULL) return REAL(cuLaunchKernelEx_ptsz)(config, f, params, extra);
    LIMITED(f, PTSZ_STREAM(config->hStream), REAL(cuLaunchKernelEx_ptsz)(config, f, params, extra));
}

static CUresult hook_cuGraphLaunch(CUgraphExec g, CUstream s)
{
    READY(REAL(cuGraphLaunch));
    LIMITED(g, s, REAL(cuGraphLaunch)(g, s));
}

static CUresult hook_cuGraphLaunch_ptsz(CUgraphExec g, CUstream s)
{
    READY(REAL(cuGraphLaunch_ptsz));
    LIMITED(g, PTSZ_STREAM(s), REAL(cuGraphLaunch_ptsz)(g, s));
}

/* ---- graph capture: captured launches are recorded, not run, so they are not limited ---- */

static CUresult capture_began(CUresult rc)
{
    if (rc == CUDA_SUCCESS) sair_limiter_capture_begin();
    return rc;
}

static CUresult capture_ended(CUresult rc)
{
    if (rc != CUDA_ERROR_ILLEGAL_STATE && rc != CUDA_ERROR_INVALID_VALUE && rc != CUDA_ERROR_NOT_INITIALIZED &&
        rc != CUDA_ERROR_INVALID_CONTEXT && rc != CUDA_ERROR_INVALID_HANDLE) {
        sair_limiter_capture_end();
    }
    return rc;
}

static CUresult hook_cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode mode)
{
    READY(REAL(cuStreamBeginCapture_v2));
    return capture_began(REAL(cuStreamBeginCapture_v2)(s, mode));
}

static CUresult hook_cuStreamBeginCapture_v2_ptsz(CUstream s, CUstreamCaptureMode mode)
{
    READY(REAL(cuStreamBeginCapture_v2_ptsz));
    return capture_began(REAL(cuStreamBeginCapture_v2_ptsz)(s, mode));
}

static CUresult hook_cuStreamEndCapture(CUstream s, CUgraph *graph)
{
    READY(REAL(cuStreamEndCapture));
    return capture_ended(REAL(cuStreamEndCapture)(s, graph));
}

static CUresult hook_cuStreamEndCapture_ptsz(CUstream s, CUgraph *graph)
{
    READY(REAL(cuStreamEndCapture_ptsz));
    return capture_ended(REAL(cuStreamEndCapture_ptsz)(s, graph));
}

/* ---- memory ---- */

#define ALLOCATE(bytes, call, key)                                                                           \
    do {                                                                                                     \
        CUresult r = sair_mem_reserve(bytes);                                                                \
        if (r != CUDA_SUCCESS) return r;                                                                     \
        r = (call);                                                                                          \
        if (r == CUDA_SUCCESS) sair_mem_track((uint64_t)(key), (bytes));                                     \
        else sair_mem_unreserve(bytes);                                                                      \
        return r;                                                                                            \
    } while (0)

static CUresult hook_cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes)
{
    READY(REAL(cuMemAlloc_v2));
    ALLOCATE(bytes, REAL(cuMemAlloc_v2)(dptr, bytes), *dptr);
}

static CUresult hook_cuMemAllocManaged(CUdeviceptr *dptr, size_t bytes, unsigned int flags)
{
    READY(REAL(cuMemAllocManaged));
    ALLOCATE(bytes, REAL(cuMemAllocManaged)(dptr, bytes, flags), *dptr);
}

static CUresult hook_cuMemAllocAsync(CUdeviceptr *dptr, size_t bytes, CUstream s)
{
    READY(REAL(cuMemAllocAsync));
    ALLOCATE(bytes, REAL(cuMemAllocAsync)(dptr, bytes, s), *dptr);
}

static CUresult hook_cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUstream s)
{
    READY(REAL(cuMemAllocAsync_ptsz));
    ALLOCATE(bytes, REAL(cuMemAllocAsync_ptsz)(dptr, bytes, s), *dptr);
}

static CUresult hook_cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream s)
{
    READY(REAL(cuMemAllocFromPoolAsync));
    ALLOCATE(bytes, REAL(cuMemAllocFromPoolAsync)(dptr, bytes, pool, s), *dptr);
}

static CUresult hook_cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream s)
{
    READY(REAL(cuMemAllocFromPoolAsync_ptsz));
    ALLOCATE(bytes, REAL(cuMemAllocFromPoolAsync_ptsz)(dptr, bytes, pool, s), *dptr);
}

static CUresult hook_cuMemCreate(CUmemGenericAllocationHandle *handle, size_t bytes, const CUmemAllocationProp *prop,
                                 unsigned long long flags)
{
    READY(REAL(cuMemCreate));
    ALLOCATE(bytes, REAL(cuMemCreate)(handle, bytes, prop, flags), *handle);
}

/* The pitch is known only afterwards: reserve the unpadded size, then the padding. */
static CUresult hook_cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int elem)
{
    READY(REAL(cuMemAllocPitch_v2));
    uint64_t first = (uint64_t)width * height;
    CUresult r = sair_mem_reserve(first);
    if (r != CUDA_SUCCESS) return r;
    r = REAL(cuMemAllocPitch_v2)(dptr, pitch, width, height, elem);
    if (r != CUDA_SUCCESS) {
        sair_mem_unreserve(first);
        return r;
    }
    uint64_t actual = (uint64_t)*pitch * height;
    if (actual > first && sair_mem_reserve(actual - first) != CUDA_SUCCESS) {
        if (REAL(cuMemFree_v2) != NULL) REAL(cuMemFree_v2)(*dptr);
        sair_mem_unreserve(first);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    sair_mem_track((uint64_t)*dptr, actual > first ? actual : first);
    if (actual < first) sair_mem_unreserve(first - actual);
    return CUDA_SUCCESS;
}

#define FREED(call, key)                                                                                     \
    do {                                                                                                     \
        CUresult r = (call);                                                                                 \
        if (r == CUDA_SUCCESS) sair_mem_untrack((uint64_t)(key));                                            \
        return r;                                                                                            \
    } while (0)

static CUresult hook_cuMemFree_v2(CUdeviceptr dptr)
{
    READY(REAL(cuMemFree_v2));
    FREED(REAL(cuMemFree_v2)(dptr), dptr);
}

static CUresult hook_cuMemFreeAsync(CUdeviceptr dptr, CUstream s)
{
    READY(REAL(cuMemFreeAsync));
    FREED(REAL(cuMemFreeAsync)(dptr, s), dptr);
}

static CUresult hook_cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream s)
{
    READY(REAL(cuMemFreeAsync_ptsz));
    FREED(REAL(cuMemFreeAsync_ptsz)(dptr, s), dptr);
}

static CUresult hook_cuMemRelease(CUmemGenericAllocationHandle handle)
{
    READY(REAL(cuMemRelease));
    FREED(REAL(cuMemRelease)(handle), handle);
}

static CUresult hook_cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes)
{
    READY(REAL(cuMemGetInfo_v2));
    CUresult r = REAL(cuMemGetInfo_v2)(free_bytes, total_bytes);
    if (r == CUDA_SUCCESS) sair_mem_info(free_bytes, total_bytes);
    return r;
}

static CUresult hook_cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    READY(REAL(cuDeviceTotalMem_v2));
    CUresult r = REAL(cuDeviceTotalMem_v2)(bytes, dev);
    if (r == CUDA_SUCCESS) {
        struct sair_limits lim = sair_limits_now(sair_now());
        if (lim.memory_bytes != 0 && lim.memory_bytes < *bytes) *bytes = lim.memory_bytes;
    }
    return r;
}

/* ---- the table: exported names, and real pointer -> wrapper for cuGetProcAddress ---- */

#define EXPORT(n) extern __typeof__(n) n __attribute__((alias("hook_" #n), visibility("default")));
HOOKED(EXPORT)

static const struct {
    void **real;
    void *hook;
} table[] = {
#define ENTRY(n) {(void **)&real_##n, (void *)&hook_##n},
    HOOKED(ENTRY)
#undef ENTRY
};

/* When the driver hands out one of the exported entry points we hook, the answer is clear. A
 * driver may instead hand out internal addresses; then the name decides, with the driver's rules:
 * a base name means its newest variant at or below the requested CUDA version, and _ptsz under
 * the per-thread-default-stream flag. */
static const struct {
    const char *name;
    int min_version;
    void *hook;
    void *hook_ptsz;
} by_name[] = {
    {"cuGetProcAddress", 12000, (void *)hook_cuGetProcAddress_v2, NULL},
    {"cuGetProcAddress", 11030, (void *)hook_cuGetProcAddress, NULL},
    {"cuLaunchKernel", 4000, (void *)hook_cuLaunchKernel, (void *)hook_cuLaunchKernel_ptsz},
    {"cuLaunchKernelEx", 11060, (void *)hook_cuLaunchKernelEx, (void *)hook_cuLaunchKernelEx_ptsz},
    {"cuLaunchCooperativeKernel", 9000, (void *)hook_cuLaunchCooperativeKernel, (void *)hook_cuLaunchCooperativeKernel_ptsz},
    {"cuGraphLaunch", 10000, (void *)hook_cuGraphLaunch, (void *)hook_cuGraphLaunch_ptsz},
    {"cuMemAlloc", 3020, (void *)hook_cuMemAlloc_v2, NULL},
    {"cuMemAllocPitch", 3020, (void *)hook_cuMemAllocPitch_v2, NULL},
    {"cuMemAllocManaged", 6000, (void *)hook_cuMemAllocManaged, NULL},
    {"cuMemAllocAsync", 11020, (void *)hook_cuMemAllocAsync, (void *)hook_cuMemAllocAsync_ptsz},
    {"cuMemAllocFromPoolAsync", 11020, (void *)hook_cuMemAllocFromPoolAsync, (void *)hook_cuMemAllocFromPoolAsync_ptsz},
    {"cuMemFree", 3020, (void *)hook_cuMemFree_v2, NULL},
    {"cuMemFreeAsync", 11020, (void *)hook_cuMemFreeAsync, (void *)hook_cuMemFreeAsync_ptsz},
    {"cuMemCreate", 10020, (void *)hook_cuMemCreate, NULL},
    {"cuMemRelease", 10020, (void *)hook_cuMemRelease, NULL},
    {"cuMemGetInfo", 3020, (void *)hook_cuMemGetInfo_v2, NULL},
    {"cuDeviceTotalMem", 3020, (void *)hook_cuDeviceTotalMem_v2, NULL},
    {"cuStreamBeginCapture", 10010, (void *)hook_cuStreamBeginCapture_v2, (void *)hook_cuStreamBeginCapture_v2_ptsz},
    {"cuStreamEndCapture", 10000, (void *)hook_cuStreamEndCapture, (void *)hook_cuStreamEndCapture_ptsz},
};

static void *wrap(const char *symbol, int version, cuuint64_t flags, void *fn)
{
    if (fn == NULL) return fn;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (REAL_PTR(table[i].real) == fn) return table[i].hook;
    }
    if (symbol == NULL) return fn;
    for (size_t i = 0; i < sizeof by_name / sizeof by_name[0]; i++) {
        if (strcmp(by_name[i].name, symbol) != 0 || by_name[i].min_version > version) continue;
        LOG_DEBUG("cuGetProcAddress(\"%s\", %d): driver gave an internal address; hooking by name", symbol, version);
        if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && by_name[i].hook_ptsz != NULL) return by_name[i].hook_ptsz;
        return by_name[i].hook;
    }
    return fn;
}
