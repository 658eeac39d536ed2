/*
 * Test program: queries NVML the way the device plugin does (dlopen libnvidia-ml.so.1, no link)
 * and prints what it saw as one JSON line: devices, memory, utilization, per-process utilization
 * over the last <window_ms> ms, PCI info, and the error code and string of any failing call.
 * Usage: prog_nvml <window_ms>
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include "nvml_min.h"

#define LOAD(name) __typeof__(&name) p_##name = (__typeof__(&name))dlsym(lib, #name)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: prog_nvml <window_ms>\n");
        return 2;
    }
    unsigned long long window_us = strtoull(argv[1], NULL, 10) * 1000ull;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (lib == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    LOAD(nvmlInit_v2);
    LOAD(nvmlShutdown);
    LOAD(nvmlErrorString);
    LOAD(nvmlDeviceGetCount_v2);
    LOAD(nvmlDeviceGetHandleByIndex_v2);
    LOAD(nvmlDeviceGetUUID);
    LOAD(nvmlDeviceGetName);
    LOAD(nvmlDeviceGetMemoryInfo);
    LOAD(nvmlDeviceGetUtilizationRates);
    LOAD(nvmlDeviceGetProcessUtilization);
    LOAD(nvmlDeviceGetPciInfo_v3);
    unsigned count = 0;
    nvmlReturn_t before = p_nvmlDeviceGetCount_v2(&count);
    printf("{\"beforeInit\":%d,\"init\":%d,", before, p_nvmlInit_v2());
    printf("\"count\":%d,\"devices\":[", p_nvmlDeviceGetCount_v2(&count) == NVML_SUCCESS ? (int)count : -1);
    for (unsigned i = 0; i < count; i++) {
        nvmlDevice_t dev;
        char uuid[96] = "", name[96] = "";
        nvmlMemory_t mem = {0, 0, 0};
        nvmlUtilization_t util = {0, 0};
        nvmlPciInfo_t pci;
        p_nvmlDeviceGetHandleByIndex_v2(i, &dev);
        nvmlReturn_t rc = p_nvmlDeviceGetUUID(dev, uuid, sizeof uuid);
        p_nvmlDeviceGetName(dev, name, sizeof name);
        p_nvmlDeviceGetMemoryInfo(dev, &mem);
        p_nvmlDeviceGetUtilizationRates(dev, &util);
        nvmlReturn_t pci_rc = p_nvmlDeviceGetPciInfo_v3(dev, &pci);
        struct timeval tv;
        gettimeofday(&tv, NULL);
        unsigned long long now_us = (unsigned long long)tv.tv_sec * 1000000ull + (unsigned long long)tv.tv_usec;
        unsigned n = 0;
        nvmlReturn_t size_rc = p_nvmlDeviceGetProcessUtilization(dev, NULL, &n, now_us - window_us);
        nvmlProcessUtilizationSample_t samples[64];
        unsigned cap = 64;
        nvmlReturn_t pu_rc = p_nvmlDeviceGetProcessUtilization(dev, samples, &cap, now_us - window_us);
        printf("%s{\"rc\":%d,\"error\":\"%s\",\"uuid\":\"%s\",\"name\":\"%s\",\"memory\":{\"total\":%llu,\"used\":%llu,\"free\":%llu},"
               "\"gpuUtil\":%u,\"pci\":{\"rc\":%d,\"busId\":\"%s\",\"deviceId\":%u},\"sizeRc\":%d,\"sizeCount\":%u,\"procRc\":%d,\"procs\":[",
               i > 0 ? "," : "", rc, p_nvmlErrorString(rc), uuid, name, mem.total, mem.used, mem.free, util.gpu, pci_rc,
               pci_rc == NVML_SUCCESS ? pci.busId : "", pci_rc == NVML_SUCCESS ? pci.pciDeviceId : 0, size_rc, n, pu_rc);
        for (unsigned k = 0; pu_rc == NVML_SUCCESS && k < cap; k++) {
            printf("%s{\"pid\":%u,\"smUtil\":%u}", k > 0 ? "," : "", samples[k].pid, samples[k].smUtil);
        }
        printf("]}");
    }
    printf("],\"shutdown\":%d}\n", p_nvmlShutdown());
    return 0;
}
