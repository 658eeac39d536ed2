/*
 * Test program: a driver-API application linked against libcuda.so.1, so its calls reach the shim
 * by symbol interposition. It reads one command per line on stdin and answers one JSON line:
 *   alloc <alloc|pitch|managed|async|pool|create> <bytes>   info   freeall
 *   run <kernel_us> <ms> <threads> <kernel|ptsz|ex|coop|graph>   (GPU share it got, from the timeline)
 *   trace <kernel_us> <ms> <bucket_ms>   (share per bucket, stamped with CLOCK_REALTIME ms, to time a live change)
 *   capture <kernel_us> <n>   fork <n> <threads>   exit
 *   exitbusy <threads>   (exit(0) while threads launch and wait on the limiter)
 */
#define _GNU_SOURCE
#include <cuda.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "prog_common.h"

CUresult CUDAAPI cuLaunchKernel_ptsz(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **);

#define MAX_ALLOCS 4096

static CUcontext ctx;
static CUfunction kernel;
static struct {
    char api[16];
    CUdeviceptr ptr;
    CUmemGenericAllocationHandle handle;
} allocs[MAX_ALLOCS];
static int nallocs;

static CUresult do_alloc(const char *api, size_t bytes)
{
    if (nallocs == MAX_ALLOCS) return CUDA_ERROR_TOO_MANY_PEERS;
    CUdeviceptr p = 0;
    CUmemGenericAllocationHandle h = 0;
    CUresult rc;
    if (strcmp(api, "alloc") == 0) rc = cuMemAlloc(&p, bytes);
    else if (strcmp(api, "pitch") == 0) {
        size_t pitch;
        rc = cuMemAllocPitch(&p, &pitch, bytes / 64, 64, 4);
    } else if (strcmp(api, "managed") == 0) rc = cuMemAllocManaged(&p, bytes, CU_MEM_ATTACH_GLOBAL);
    else if (strcmp(api, "async") == 0) rc = cuMemAllocAsync(&p, bytes, NULL);
    else if (strcmp(api, "pool") == 0) rc = cuMemAllocFromPoolAsync(&p, bytes, NULL, NULL);
    else if (strcmp(api, "create") == 0) {
        CUmemAllocationProp prop;
        memset(&prop, 0, sizeof prop);
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        rc = cuMemCreate(&h, bytes, &prop, 0);
    } else return CUDA_ERROR_INVALID_VALUE;
    if (rc == CUDA_SUCCESS) {
        snprintf(allocs[nallocs].api, sizeof allocs[nallocs].api, "%s", api);
        allocs[nallocs].ptr = p;
        allocs[nallocs].handle = h;
        nallocs++;
    }
    return rc;
}

static CUresult free_all(void)
{
    CUresult first = CUDA_SUCCESS;
    for (int i = 0; i < nallocs; i++) {
        CUresult rc;
        if (strcmp(allocs[i].api, "create") == 0) rc = cuMemRelease(allocs[i].handle);
        else if (strcmp(allocs[i].api, "async") == 0 || strcmp(allocs[i].api, "pool") == 0) rc = cuMemFreeAsync(allocs[i].ptr, NULL);
        else rc = cuMemFree(allocs[i].ptr);
        if (rc != CUDA_SUCCESS && first == CUDA_SUCCESS) first = rc;
    }
    nallocs = 0;
    return first;
}

struct runner {
    pthread_t thread;
    uint64_t kernel_ns;
    uint64_t deadline;
    const char *api;
    long launches;
    int rc;
};

static CUresult launch_one(const char *api, CUstream s, uint64_t *ns, CUgraphExec graph)
{
    void *params[] = {ns};
    if (strcmp(api, "kernel") == 0) return cuLaunchKernel(kernel, 1, 1, 1, 32, 1, 1, 0, s, params, NULL);
    if (strcmp(api, "ptsz") == 0) return cuLaunchKernel_ptsz(kernel, 1, 1, 1, 32, 1, 1, 0, s, params, NULL);
    if (strcmp(api, "coop") == 0) return cuLaunchCooperativeKernel(kernel, 1, 1, 1, 32, 1, 1, 0, s, params);
    if (strcmp(api, "ex") == 0) {
        CUlaunchConfig cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.gridDimX = cfg.gridDimY = cfg.gridDimZ = 1;
        cfg.blockDimX = 32;
        cfg.blockDimY = cfg.blockDimZ = 1;
        cfg.hStream = s;
        return cuLaunchKernelEx(&cfg, kernel, params, NULL);
    }
    if (strcmp(api, "graph") == 0) return cuGraphLaunch(graph, s);
    return CUDA_ERROR_INVALID_VALUE;
}

/* A graph of one kernel of ns, made by stream capture as PyTorch makes its CUDA graphs. */
static CUgraphExec capture_graph(CUstream s, uint64_t ns, int n)
{
    CUgraph g;
    CUgraphExec exec;
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    for (int i = 0; i < n; i++) CHECK(launch_one("kernel", s, &ns, NULL));
    CHECK(cuStreamEndCapture(s, &g));
    CHECK(cuGraphInstantiate(&exec, g, 0));
    CHECK(cuGraphDestroy(g));
    return exec;
}

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    CHECK(cuCtxSetCurrent(ctx));
    CUstream s;
    CHECK(cuStreamCreate(&s, 0));
    CUgraphExec graph = strcmp(r->api, "graph") == 0 ? capture_graph(s, r->kernel_ns, 1) : NULL;
    int in_flight = 0;
    while (ft_now() < r->deadline) {
        uint64_t ns = r->kernel_ns;
        CUresult rc = launch_one(r->api, s, &ns, graph);
        if (rc != CUDA_SUCCESS) {
            r->rc = rc;
            break;
        }
        r->launches++;
        /* Keep the queue short, as a serving loop does, so the timeline stays exact. */
        if (++in_flight >= 8) {
            CHECK(cuStreamSynchronize(s));
            in_flight = 0;
        }
    }
    CHECK(cuStreamSynchronize(s));
    if (graph != NULL) CHECK(cuGraphExecDestroy(graph));
    CHECK(cuStreamDestroy(s));
    return NULL;
}

static void cmd_run(uint64_t kernel_us, uint64_t ms, int threads, const char *api)
{
    struct runner r[64];
    if (threads < 1 || threads > 64) DIE("run: threads must be 1..64");
    struct ft_proc *me = prog_timeline_proc(getpid());
    uint64_t start = ft_now();
    uint64_t end = start + ms * 1000000ull;
    uint64_t from = start + ms * 1000000ull / 4; /* measure after a warm-up quarter */
    for (int i = 0; i < threads; i++) {
        r[i] = (struct runner){.kernel_ns = kernel_us * 1000ull, .deadline = end, .api = api};
        CHECK(pthread_create(&r[i].thread, NULL, run_thread, &r[i]));
    }
    ft_sleep_until(from);
    uint64_t busy0 = me != NULL ? ft_busy_until(me, from) : 0;
    ft_sleep_until(end);
    uint64_t busy1 = me != NULL ? ft_busy_until(me, end) : 0;
    long launches = 0;
    int rc = 0;
    for (int i = 0; i < threads; i++) {
        CHECK(pthread_join(r[i].thread, NULL));
        launches += r[i].launches;
        if (r[i].rc != 0) rc = r[i].rc;
    }
    printf("{\"cmd\":\"run\",\"rc\":%d,\"launches\":%ld,\"share\":%.4f,\"elapsed_ms\":%.1f}\n", rc, launches,
           (double)(busy1 - busy0) / (double)(end - from), (double)(ft_now() - start) / 1e6);
}

static double realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void cmd_trace(uint64_t kernel_us, uint64_t ms, uint64_t bucket_ms)
{
    struct ft_proc *me = prog_timeline_proc(getpid());
    if (me == NULL || bucket_ms == 0 || ms / bucket_ms > 1000) DIE("trace: needs the fake device and at most 1000 buckets");
    struct runner r = {.kernel_ns = kernel_us * 1000ull, .api = "kernel"};
    uint64_t start = ft_now();
    double start_rt = realtime_ms();
    r.deadline = start + ms * 1000000ull;
    printf("{\"cmd\":\"trace-start\",\"t\":%.1f}\n", start_rt);
    CHECK(pthread_create(&r.thread, NULL, run_thread, &r));
    uint64_t n = ms / bucket_ms, b = bucket_ms * 1000000ull;
    uint64_t busy[1001];
    busy[0] = ft_busy_until(me, start);
    for (uint64_t i = 1; i <= n; i++) {
        ft_sleep_until(start + i * b);
        busy[i] = ft_busy_until(me, start + i * b);
    }
    CHECK(pthread_join(r.thread, NULL));
    printf("{\"cmd\":\"trace\",\"rc\":%d,\"t0\":%.1f,\"bucket_ms\":%llu,\"shares\":[", r.rc, start_rt, (unsigned long long)bucket_ms);
    for (uint64_t i = 1; i <= n; i++) printf("%s%.4f", i > 1 ? "," : "", (double)(busy[i] - busy[i - 1]) / (double)b);
    printf("]}\n");
}

static void cmd_capture(uint64_t kernel_us, int n)
{
    CUstream s;
    CHECK(cuStreamCreate(&s, 0));
    uint64_t t0 = ft_now();
    CUgraphExec exec = capture_graph(s, kernel_us * 1000ull, n);
    uint64_t t1 = ft_now();
    CUresult rc = cuGraphLaunch(exec, s);
    CHECK(cuStreamSynchronize(s));
    uint64_t t2 = ft_now();
    CHECK(cuGraphExecDestroy(exec));
    CHECK(cuStreamDestroy(s));
    printf("{\"cmd\":\"capture\",\"rc\":%d,\"capture_ms\":%.2f,\"replay_ms\":%.2f}\n", rc, (double)(t1 - t0) / 1e6,
           (double)(t2 - t1) / 1e6);
}

static volatile int churn_stop;

static void *churn(void *arg)
{
    (void)arg;
    CHECK(cuCtxSetCurrent(ctx));
    CUstream s;
    CHECK(cuStreamCreate(&s, 0));
    while (!churn_stop) {
        uint64_t ns = 10000;
        CUdeviceptr p;
        CHECK(launch_one("kernel", s, &ns, NULL));
        if (cuMemAlloc(&p, 1 << 20) == CUDA_SUCCESS) CHECK(cuMemFree(p));
        CHECK(cuStreamSynchronize(s));
    }
    CHECK(cuStreamDestroy(s));
    return NULL;
}

/* Fork while other threads launch and allocate: each child must use the shim and exit, never hang. */
static void cmd_fork(int n, int threads)
{
    pthread_t t[64];
    if (threads < 0 || threads > 64) DIE("fork: threads must be 0..64");
    churn_stop = 0;
    for (int i = 0; i < threads; i++) CHECK(pthread_create(&t[i], NULL, churn, NULL));
    int ok = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) DIE("fork failed");
        if (pid == 0) {
            alarm(10);
            CUdeviceptr p;
            size_t free_b, total_b;
            uint64_t ns = 10000;
            if (cuMemAlloc(&p, 1 << 20) != CUDA_SUCCESS || cuMemFree(p) != CUDA_SUCCESS) _exit(3);
            if (cuMemGetInfo(&free_b, &total_b) != CUDA_SUCCESS) _exit(4);
            if (launch_one("kernel", NULL, &ns, NULL) != CUDA_SUCCESS || cuCtxSynchronize() != CUDA_SUCCESS) _exit(5);
            _exit(0);
        }
        int status = 0;
        uint64_t give_up = ft_now() + 15000000000ull;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && ft_now() < give_up) ft_sleep_until(ft_now() + 1000000);
        if (w == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            ok++;
        }
    }
    churn_stop = 1;
    for (int i = 0; i < threads; i++) CHECK(pthread_join(t[i], NULL));
    printf("{\"cmd\":\"fork\",\"forks\":%d,\"ok\":%d}\n", n, ok);
}

int main(void)
{
    CUdevice dev;
    kernel = prog_sleep_kernel(&dev, &ctx);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("{\"cmd\":\"ready\",\"pid\":%d}\n", (int)getpid());
    char line[256];
    while (fgets(line, sizeof line, stdin) != NULL) {
        char a[32] = "", b[32] = "";
        unsigned long long x = 0, y = 0;
        int k = 0;
        if (sscanf(line, "alloc %31s %llu", a, &x) == 2) {
            printf("{\"cmd\":\"alloc\",\"rc\":%d}\n", (int)do_alloc(a, (size_t)x));
        } else if (strncmp(line, "freeall", 7) == 0) {
            printf("{\"cmd\":\"freeall\",\"rc\":%d}\n", (int)free_all());
        } else if (strncmp(line, "info", 4) == 0) {
            size_t free_b = 0, total_b = 0, dev_total = 0;
            CUresult r1 = cuMemGetInfo(&free_b, &total_b);
            CUresult r2 = cuDeviceTotalMem(&dev_total, dev);
            printf("{\"cmd\":\"info\",\"rc\":%d,\"free\":%zu,\"total\":%zu,\"deviceTotal\":%zu}\n", r1 != 0 ? (int)r1 : (int)r2,
                   free_b, total_b, dev_total);
        } else if (sscanf(line, "run %llu %llu %d %31s", &x, &y, &k, b) == 4) {
            cmd_run(x, y, k, b);
        } else if (sscanf(line, "trace %llu %llu %d", &x, &y, &k) == 3) {
            cmd_trace(x, y, (uint64_t)k);
        } else if (sscanf(line, "capture %llu %d", &x, &k) == 2) {
            cmd_capture(x, k);
        } else if (sscanf(line, "fork %llu %d", &x, &k) == 2) {
            cmd_fork((int)x, k);
        } else if (sscanf(line, "exitbusy %d", &k) == 1) {
            churn_stop = 0;
            pthread_t t[64];
            for (int i = 0; i < k && i < 64; i++) CHECK(pthread_create(&t[i], NULL, churn, NULL));
            ft_sleep_until(ft_now() + 100000000ull);
            printf("{\"cmd\":\"exitbusy\"}\n");
            exit(0);
        } else if (strncmp(line, "exit", 4) == 0) {
            break;
        } else {
            printf("{\"cmd\":\"error\",\"message\":\"unknown command\"}\n");
        }
    }
    free_all();
    return 0;
}
