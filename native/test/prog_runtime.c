/*
 * Test program: starts like the CUDA runtime 11.3+ (and so PyTorch): no link to libcuda; several
 * threads at once dlopen("libcuda.so.1"), dlsym cuGetProcAddress_v2 from that handle and get every
 * other entry point through it, some with the per-thread-default-stream flag, while another thread
 * dlopens a library found only through this program's RUNPATH. Then it uses what it got.
 * Usage: prog_runtime <threads> <alloc_bytes> <kernel_us> <run_ms>; prints one JSON line.
 */
#define _GNU_SOURCE
#include <cuda.h>
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "prog_common.h"

typedef CUresult (*gpa_fn)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);

static const char *const names[] = {
    "cuInit", "cuDriverGetVersion", "cuDeviceGet", "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent",
    "cuModuleLoadData", "cuModuleGetFunction", "cuStreamCreate", "cuStreamSynchronize", "cuLaunchKernel",
    "cuMemAlloc", "cuMemFree", "cuMemGetInfo", "cuGetProcAddress",
};
#define NNAMES (sizeof names / sizeof names[0])

struct resolver {
    pthread_t thread;
    int ptds;
    void *fn[NNAMES];
    int ok;
};

static pthread_barrier_t barrier;
static int probe_ok;
static size_t ctor_total;
static void *gpa_seen;

static void *resolve(void *arg)
{
    struct resolver *r = arg;
    pthread_barrier_wait(&barrier);
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) return NULL;
    gpa_fn gpa = (gpa_fn)dlsym(h, "cuGetProcAddress_v2");
    if (gpa == NULL) return NULL;
    __atomic_store_n(&gpa_seen, (void *)gpa, __ATOMIC_RELAXED);
    r->ok = 1;
    for (size_t i = 0; i < NNAMES; i++) {
        CUdriverProcAddressQueryResult status;
        cuuint64_t flags = r->ptds ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM : CU_GET_PROC_ADDRESS_DEFAULT;
        if (gpa(names[i], &r->fn[i], 12000, flags, &status) != CUDA_SUCCESS || status != CU_GET_PROC_ADDRESS_SUCCESS) r->ok = 0;
    }
    return NULL;
}

static void *probe(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&barrier);
    void *h = dlopen("libsairprobe.so", RTLD_NOW);
    int (*answer)(void) = h != NULL ? (int (*)(void))dlsym(h, "sair_probe_answer") : NULL;
    probe_ok = answer != NULL && answer() == 42;
    void *c = dlopen("libsairctor.so", RTLD_NOW);
    size_t (*total)(void) = c != NULL ? (size_t (*)(void))dlsym(c, "sair_ctor_total") : NULL;
    ctor_total = total != NULL ? total() : 0;
    return NULL;
}

#define FN(r, i, type) ((type)(r)->fn[i])

/* The file name of the library a function pointer lies in: says who answers that entry point. */
static const char *owner(void *fn)
{
    Dl_info info;
    if (fn == NULL || dladdr(fn, &info) == 0 || info.dli_fname == NULL) return "?";
    const char *base = strrchr(info.dli_fname, '/');
    return base != NULL ? base + 1 : info.dli_fname;
}

int main(int argc, char **argv)
{
    if (argc != 5) DIE("usage: prog_runtime <threads> <alloc_bytes> <kernel_us> <run_ms>");
    int threads = atoi(argv[1]);
    size_t alloc_bytes = strtoull(argv[2], NULL, 10);
    uint64_t kernel_ns = strtoull(argv[3], NULL, 10) * 1000ull;
    uint64_t run_ns = strtoull(argv[4], NULL, 10) * 1000000ull;
    if (threads < 2 || threads > 64) DIE("threads must be 2..64");
    struct resolver r[64];
    memset(r, 0, sizeof r);
    pthread_t prober;
    CHECK(pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1));
    for (int i = 0; i < threads; i++) {
        r[i].ptds = i % 2;
        CHECK(pthread_create(&r[i].thread, NULL, resolve, &r[i]));
    }
    CHECK(pthread_create(&prober, NULL, probe, NULL));
    int resolved = 0, consistent = 1;
    for (int i = 0; i < threads; i++) {
        CHECK(pthread_join(r[i].thread, NULL));
        resolved += r[i].ok;
        if (memcmp(r[i].fn, r[i % 2].fn, sizeof r[i].fn) != 0) consistent = 0;
    }
    CHECK(pthread_join(prober, NULL));
    struct resolver *legacy = &r[0], *ptds = &r[1];
    enum { INIT, VERSION, DEVGET, RETAIN, SETCUR, LOADDATA, GETFUNC, STREAMCREATE, STREAMSYNC, LAUNCH, ALLOC, FREE, MEMINFO, GPA };

    int version = 0;
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction kernel;
    CUstream stream;
    CHECK(FN(legacy, INIT, CUresult (*)(unsigned))(0));
    CHECK(FN(legacy, VERSION, CUresult (*)(int *))(&version));
    CHECK(FN(legacy, DEVGET, CUresult (*)(CUdevice *, int))(&dev, 0));
    CHECK(FN(legacy, RETAIN, CUresult (*)(CUcontext *, CUdevice))(&ctx, dev));
    CHECK(FN(legacy, SETCUR, CUresult (*)(CUcontext))(ctx));
    CHECK(FN(legacy, LOADDATA, CUresult (*)(CUmodule *, const void *))(&mod, "fake-module"));
    CHECK(FN(legacy, GETFUNC, CUresult (*)(CUfunction *, CUmodule, const char *))(&kernel, mod, "sleep_kernel"));
    CHECK(FN(legacy, STREAMCREATE, CUresult (*)(CUstream *, unsigned))(&stream, 0));

    /* Memory through the pointers cuGetProcAddress handed out. */
    CUresult (*mem_alloc)(CUdeviceptr *, size_t) = FN(legacy, ALLOC, CUresult (*)(CUdeviceptr *, size_t));
    CUresult (*mem_free)(CUdeviceptr) = FN(legacy, FREE, CUresult (*)(CUdeviceptr));
    CUdeviceptr a = 0, b = 0;
    CUresult first = mem_alloc(&a, alloc_bytes);
    CUresult second = mem_alloc(&b, alloc_bytes);
    size_t free_b = 0, total_b = 0;
    CHECK(FN(legacy, MEMINFO, CUresult (*)(size_t *, size_t *))(&free_b, &total_b));
    if (first == CUDA_SUCCESS) CHECK(mem_free(a));
    if (second == CUDA_SUCCESS) CHECK(mem_free(b));

    /* The nested lookup: cuGetProcAddress obtained through cuGetProcAddress must still hand out hooks. */
    void *nested = NULL;
    CHECK(FN(legacy, GPA, gpa_fn)("cuLaunchKernel", &nested, 12000, CU_GET_PROC_ADDRESS_DEFAULT, NULL));

    /* The CUDA 11.3-11.8 runtime used cuGetProcAddress (no _v2) from the handle. */
    void *v1_alloc = NULL;
    typedef CUresult (*gpa_v1_fn)(const char *, void **, int, cuuint64_t);
    gpa_v1_fn gpa_v1 = (gpa_v1_fn)dlsym(dlopen("libcuda.so.1", RTLD_NOW), "cuGetProcAddress");
    if (gpa_v1 == NULL || gpa_v1("cuMemAlloc", &v1_alloc, 11030, CU_GET_PROC_ADDRESS_DEFAULT) != CUDA_SUCCESS) v1_alloc = NULL;

    /* Launches through the per-thread-default-stream pointer, on the default stream. */
    CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **) =
        FN(ptds, LAUNCH, CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **));
    CUresult (*sync)(CUstream) = FN(ptds, STREAMSYNC, CUresult (*)(CUstream));
    struct ft_proc *me = prog_timeline_proc(getpid());
    uint64_t start = ft_now(), from = start + run_ns / 4, end = start + run_ns;
    uint64_t busy0 = 0;
    int in_flight = 0, measured = 0;
    long launches = 0;
    while (ft_now() < end) {
        uint64_t ns = kernel_ns;
        void *params[] = {&ns};
        CHECK(launch(kernel, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL));
        launches++;
        if (++in_flight >= 8) {
            CHECK(sync(NULL));
            in_flight = 0;
        }
        if (!measured && ft_now() >= from && me != NULL) {
            busy0 = ft_busy_until(me, from);
            measured = 1;
        }
    }
    uint64_t busy1 = me != NULL ? ft_busy_until(me, end) : 0;
    CHECK(sync(NULL));
    printf("{\"resolved\":%d,\"threads\":%d,\"consistent\":%s,\"probe\":%s,\"driverVersion\":%d,"
           "\"owners\":{\"cuGetProcAddress_v2\":\"%s\",\"cuLaunchKernel\":\"%s\",\"cuLaunchKernel_ptsz\":\"%s\","
           "\"nested\":\"%s\",\"cuMemAlloc\":\"%s\",\"cuInit\":\"%s\",\"v1cuMemAlloc\":\"%s\"},\"ctorTotal\":%zu,\"allocRc\":[%d,%d],\"memTotal\":%zu,\"launches\":%ld,\"share\":%.4f}\n",
           resolved, threads, consistent ? "true" : "false", probe_ok ? "true" : "false", version,
           owner(gpa_seen), owner(legacy->fn[LAUNCH]), owner(ptds->fn[LAUNCH]), owner(nested), owner(legacy->fn[ALLOC]),
           owner(legacy->fn[INIT]), owner(v1_alloc), ctor_total, (int)first, (int)second, total_b, launches,
           measured ? (double)(busy1 - busy0) / (double)(end - from) : -1.0);
    return 0;
}
