/*
 * Test double: a fake libnvidia-ml.so.1 over the fake GPU timeline (fake_timeline.h), with NVML's
 * real signatures, return codes and struct layouts (nvml_min.h) for the calls the device plugin
 * makes. Env: FAKE_GPU_COUNT (default 1), FAKE_GPU_MEMORY_MIB (default 16384),
 * FAKE_GPU_UNHEALTHY=<index> (that device's queries fail with NVML_ERROR_GPU_IS_LOST),
 * FAKE_GPU_DIR (where the timelines live, shared with the fake libcuda.so.1).
 * Utilization is measured on the timeline over (lastSeenTimeStamp, now], at most the last second,
 * as the real driver reports its recent sample period.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "fake_timeline.h"
#include "nvml_min.h"

#define NVML_FAKE_MAX 8
#define WINDOW_US 1000000ull

struct nvmlDevice_st {
    unsigned index;
    struct ft_device *timeline;
};

static struct {
    pthread_mutex_t lock;
    int refs;
    unsigned count;
    int unhealthy;
    unsigned long long memory_total;
    struct nvmlDevice_st devices[NVML_FAKE_MAX];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .unhealthy = -1};

nvmlReturn_t nvmlInit_v2(void)
{
    pthread_mutex_lock(&g.lock);
    if (g.refs++ == 0) {
        const char *n = getenv("FAKE_GPU_COUNT");
        const char *mib = getenv("FAKE_GPU_MEMORY_MIB");
        const char *bad = getenv("FAKE_GPU_UNHEALTHY");
        int count = n != NULL && *n != '\0' ? atoi(n) : 1;
        g.count = count < 0 ? 0 : count > NVML_FAKE_MAX ? NVML_FAKE_MAX : (unsigned)count;
        g.unhealthy = bad != NULL && *bad != '\0' ? atoi(bad) : -1;
        g.memory_total = (unsigned long long)(mib != NULL && *mib != '\0' ? strtoull(mib, NULL, 10) : 16384) << 20;
        for (unsigned i = 0; i < g.count; i++) {
            g.devices[i].index = i;
            g.devices[i].timeline = ft_map(i);
            if (g.devices[i].timeline == NULL) {
                g.refs = 0;
                pthread_mutex_unlock(&g.lock);
                return NVML_ERROR_DRIVER_NOT_LOADED;
            }
        }
    }
    pthread_mutex_unlock(&g.lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void)
{
    pthread_mutex_lock(&g.lock);
    nvmlReturn_t rc = g.refs > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (g.refs > 0) g.refs--;
    pthread_mutex_unlock(&g.lock);
    return rc;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

static nvmlReturn_t check(nvmlDevice_t device)
{
    if (__atomic_load_n(&g.refs, __ATOMIC_ACQUIRE) == 0) return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || device < g.devices || device >= g.devices + g.count) return NVML_ERROR_INVALID_ARGUMENT;
    if ((int)device->index == g.unhealthy) return NVML_ERROR_GPU_IS_LOST;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    if (__atomic_load_n(&g.refs, __ATOMIC_ACQUIRE) == 0) return NVML_ERROR_UNINITIALIZED;
    if (deviceCount == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *deviceCount = g.count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    if (__atomic_load_n(&g.refs, __ATOMIC_ACQUIRE) == 0) return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= g.count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &g.devices[index];
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(char *dst, unsigned int length, const char *src)
{
    if (dst == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    nvmlReturn_t rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    char buf[96];
    snprintf(buf, sizeof buf, "GPU-5a1f0000-0000-4000-8000-%012x", device->index);
    return copy_string(uuid, length, buf);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    nvmlReturn_t rc = check(device);
    return rc != NVML_SUCCESS ? rc : copy_string(name, length, "SAIR Fake GPU");
}

static unsigned long long used_memory(struct ft_device *dev)
{
    unsigned long long used = 0;
    for (int i = 0; i < FT_MAX_PROCS; i++) {
        int32_t pid = __atomic_load_n(&dev->procs[i].pid, __ATOMIC_ACQUIRE);
        if (pid > 0 && ft_pid_alive(pid)) used += __atomic_load_n(&dev->procs[i].memory_bytes, __ATOMIC_RELAXED);
    }
    return used;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    nvmlReturn_t rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long used = used_memory(device->timeline);
    memory->total = g.memory_total;
    memory->used = used;
    memory->free = used > g.memory_total ? 0 : g.memory_total - used;
    return NVML_SUCCESS;
}

/* Busy percent of one process over the window [now - window_ns, now]. */
static unsigned busy_percent(const struct ft_proc *p, uint64_t now, uint64_t window_ns)
{
    uint64_t from = now - window_ns;
    uint64_t first = __atomic_load_n(&p->first_ns, __ATOMIC_ACQUIRE);
    if (first > from) from = first;
    if (now <= from) return 0;
    uint64_t busy = ft_busy_until(p, now) - ft_busy_until(p, from);
    uint64_t pct = (busy * 100 + (now - from) / 2) / (now - from);
    return pct > 100 ? 100 : (unsigned)pct;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
    nvmlReturn_t rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (utilization == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t now = ft_now();
    unsigned total = 0;
    for (int i = 0; i < FT_MAX_PROCS; i++) {
        const struct ft_proc *p = &device->timeline->procs[i];
        if (__atomic_load_n(&p->pid, __ATOMIC_ACQUIRE) > 0) total += busy_percent(p, now, WINDOW_US * 1000);
    }
    utilization->gpu = total > 100 ? 100 : total;
    utilization->memory = (unsigned)(used_memory(device->timeline) * 100 / g.memory_total);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *processSamplesCount, unsigned long long lastSeenTimeStamp)
{
    nvmlReturn_t rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (processSamplesCount == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    uint64_t now = ft_now();
    uint64_t now_us = ft_realtime_us();
    uint64_t window_us = lastSeenTimeStamp == 0 || lastSeenTimeStamp >= now_us ? WINDOW_US : now_us - lastSeenTimeStamp;
    if (window_us > WINDOW_US) window_us = WINDOW_US;
    nvmlProcessUtilizationSample_t found[FT_MAX_PROCS];
    unsigned n = 0;
    if (lastSeenTimeStamp < now_us) {
        for (int i = 0; i < FT_MAX_PROCS; i++) {
            const struct ft_proc *p = &device->timeline->procs[i];
            int32_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
            if (pid <= 0 || !ft_pid_alive(pid)) continue;
            unsigned sm = busy_percent(p, now, window_us * 1000);
            if (sm == 0) continue; /* like the driver: only processes with utilization in the period */
            found[n++] = (nvmlProcessUtilizationSample_t){
                .pid = (unsigned)pid, .timeStamp = now_us, .smUtil = sm, .memUtil = 0, .encUtil = 0, .decUtil = 0};
        }
    }
    /* As documented: no samples since lastSeenTimeStamp is NOT_FOUND, whether or not a buffer came. */
    if (n == 0) {
        *processSamplesCount = 0;
        return NVML_ERROR_NOT_FOUND;
    }
    if (utilization == NULL || *processSamplesCount < n) {
        *processSamplesCount = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    memcpy(utilization, found, n * sizeof found[0]);
    *processSamplesCount = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    nvmlReturn_t rc = check(device);
    if (rc != NVML_SUCCESS) return rc;
    if (pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof *pci);
    pci->domain = 0;
    pci->bus = 0x10 + device->index;
    pci->device = 0;
    pci->pciDeviceId = 0x233010DE;
    pci->pciSubSystemId = 0x16C110DE;
    snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus);
    return NVML_SUCCESS;
}
