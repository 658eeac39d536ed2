/*
 * Internal interface of libsair-cuda.so between its parts: hooks.c (entry points, resolution of
 * the real driver), control.c (limits and state files, usage slots), limiter.c (core limiter),
 * memory.c (memory quota) and log.c. Everything here is hidden; only the hooks are exported.
 */
#ifndef SAIR_SHIM_H
#define SAIR_SHIM_H

#include <cuda.h>
#include <stdint.h>
#include <time.h>

#include "sair_control.h"

#define SAIR_EXPORT __attribute__((visibility("default")))

/* ---- log.c: stderr, by SAIR_LOG_LEVEL (error|warn|info|debug), silent by default ---- */
enum { SAIR_LOG_SILENT, SAIR_LOG_ERROR, SAIR_LOG_WARN, SAIR_LOG_INFO, SAIR_LOG_DEBUG };
extern int sair_log_level;
void sair_log_init(void);
void sair_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SAIR_LOG(level, ...)                                                                                 \
    do {                                                                                                     \
        if (sair_log_level >= (level)) sair_log((level), __VA_ARGS__);                                       \
    } while (0)
#define LOG_ERROR(...) SAIR_LOG(SAIR_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) SAIR_LOG(SAIR_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) SAIR_LOG(SAIR_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) SAIR_LOG(SAIR_LOG_DEBUG, __VA_ARGS__)

static inline uint64_t sair_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The last timer tick (1-4 ms old): a few ns where a precise read can cost ~80 ns on VMs, and
 * comparable with sair_now() (same clock, never ahead of it). For the launch fast path only. */
static inline uint64_t sair_now_coarse(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t sair_realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Saturating subtract on a shared counter, so a late free can never wrap it. */
static inline void sair_atomic_sub_sat(uint64_t *p, uint64_t v)
{
    uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    uint64_t next;
    do {
        next = cur > v ? cur - v : 0;
    } while (!__atomic_compare_exchange_n(p, &cur, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

/* ---- hooks.c: the real driver entry points the other parts call ---- */
struct sair_real {
    CUresult (*cuEventCreate)(CUevent *, unsigned int);
    CUresult (*cuEventDestroy_v2)(CUevent);
    CUresult (*cuEventRecord)(CUevent, CUstream);
    CUresult (*cuEventQuery)(CUevent);
    CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
    CUresult (*cuStreamIsCapturing)(CUstream, CUstreamCaptureStatus *);
    CUresult (*cuCtxGetCurrent)(CUcontext *);
};
extern struct sair_real sair_real;
/* Resolves libcuda.so.1 and the real entry points once; 0 when the driver is usable. */
int sair_init(void);

/* ---- control.c ---- */
struct sair_limits {
    uint32_t gpu_cores;    /* 1..100 */
    uint64_t memory_bytes; /* 0 = none */
};
/* Current limits: from the limits file when one is mapped and valid, else from the env. Cheap
 * (a seqlock read of a mapped page); every 100 ms it also notices a replaced or new file. */
struct sair_limits sair_limits_now(uint64_t now);
/* The limiter state word shared by the allocation (or private to the process without a state file). */
uint64_t *sair_limiter_word(void);
/* This process's usage slot. */
struct sair_usage_slot *sair_own_slot(void);
/* Allocation-wide memory lock (in-process mutex + OFD lock on the state file). */
void sair_alloc_lock(void);
void sair_alloc_unlock(void);
/* Device memory held by the pod's processes; with reclaim, first frees the slots of dead processes. */
uint64_t sair_pod_memory(int reclaim);
void sair_control_init(void);
void sair_control_fork_prepare(void);
void sair_control_fork_parent(void);
void sair_control_fork_child(void);
void sair_control_exit(void);

/* ---- limiter.c ---- */
struct sair_launch {
    uint64_t key;      /* CUfunction or CUgraphExec */
    uint64_t charged;  /* GPU ns charged at admission */
    int sample;        /* index of the timing sample, or -1 */
    int bypass;        /* capture: the launch is recorded, not run, so it is not limited */
};
void sair_limiter_init(void);
void sair_limiter_before(struct sair_launch *l, uint64_t key, CUstream stream);
void sair_limiter_after(struct sair_launch *l, CUstream stream, CUresult rc);
void sair_limiter_capture_begin(void);
void sair_limiter_capture_end(void);
void sair_limiter_fork_prepare(void);
void sair_limiter_fork_parent(void);
void sair_limiter_fork_child(void);

/* ---- memory.c ---- */
/* Reserve bytes against the pod quota before the real allocation; CUDA_ERROR_OUT_OF_MEMORY past it. */
CUresult sair_mem_reserve(uint64_t bytes);
/* Undo a reservation whose real allocation failed. */
void sair_mem_unreserve(uint64_t bytes);
/* Remember a successful allocation (address or handle) and forget it on free. */
void sair_mem_track(uint64_t key, uint64_t bytes);
void sair_mem_untrack(uint64_t key);
/* Report the quota in place of the card: free/total as the application should see them. */
void sair_mem_info(size_t *free_bytes, size_t *total_bytes);
void sair_mem_fork_prepare(void);
void sair_mem_fork_parent(void);
void sair_mem_fork_child(void);

#endif
