/*
 * The core limiter: every process of an allocation (a container's GPU slots) shares one GCRA token
 * bucket (a "theoretical arrival time", TAT) in the state file. A launch expected to keep the GPU busy for d ns moves the TAT
 * on by d * 100 / gpu_cores ns of wall time; a launch may go while TAT - now <= burst, else it
 * sleeps (20 ms at most per nap, so a limit change is seen quickly). Under the limit a launch
 * costs a clock read, a seqlock read and one compare-and-swap: no lock, no syscall, no delay.
 *
 * Word layout: bits 63..8 TAT in 16 ns units of CLOCK_MONOTONIC (which every container on the
 * node shares), bits 7..0 the gpu_cores the TAT was computed at; when the limit changes, the
 * outstanding debt is rescaled to the new rate, so raising a limit takes effect at once.
 *
 * Kernel durations are measured, not guessed: about once a millisecond (and on the first launch
 * of each kernel) a launch is bracketed by two CUDA events; when they complete, the elapsed time
 * updates that kernel's estimate (the minimum of its last 16 samples: waiting behind other
 * streams' work only ever lengthens a sample) and the difference between the estimate and what
 * the sampled launch was charged is settled on the bucket. Until a kernel's first sample is in,
 * its further launches wait for it; if an estimate still falls by more than half, the debt the
 * old one ran up beyond the burst is forgiven.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define MAX_NAP_NS 20000000ull
#define SAMPLE_EVERY_NS 1000000ull
#define HARVEST_EVERY_NS 200000ull
#define HEARTBEAT_EVERY_NS 100000000ull
#define FLUSH_EVERY_NS 10000000ull
#define NSAMPLES 8
#define EST_SLOTS 1024u
#define EST_PROBES 16u
#define EST_WINDOW 16u
#define PROBE_WAIT_NS 50000000ull
#define PROBE_NAP_NS 100000ull

enum { SAMPLE_FREE, SAMPLE_RESERVED, SAMPLE_PENDING };

struct estimate {
    uint64_t key;
    uint64_t est_ns;
    uint32_t count;
    uint32_t next;
    uint64_t window[EST_WINDOW];
};

struct sample {
    int state;
    CUcontext ctx;
    CUevent start;
    CUevent end;
    uint64_t key;
    uint64_t charged;
};

static uint64_t burst_ns = 50000000ull;
static struct estimate estimates[EST_SLOTS];
static uint64_t default_est_ns;
static struct sample samples[NSAMPLES];
static int outstanding;
static int captures;
static uint64_t next_sample_ns;
static uint64_t next_harvest_ns;
static uint64_t next_heartbeat_ns;
static pthread_mutex_t samples_mu = PTHREAD_MUTEX_INITIALIZER;

static inline uint64_t word_pack(uint64_t tat, uint32_t cores) { return ((tat >> 4) << 8) | (cores & 0xffu); }
static inline uint64_t word_tat(uint64_t w) { return (w >> 8) << 4; }
static inline uint32_t word_cores(uint64_t w) { return (uint32_t)(w & 0xffu); }

static void nap(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void sair_limiter_init(void)
{
    const char *v = getenv("SAIR_LIMITER_BURST_MS");
    if (v != NULL && *v != '\0') {
        char *end;
        long ms = strtol(v, &end, 10);
        if (*end != '\0' || ms < 1 || ms > 10000) {
            LOG_WARN("SAIR_LIMITER_BURST_MS=\"%s\" is not an integer from 1 to 10000; using %llu", v,
                     (unsigned long long)(burst_ns / 1000000ull));
        } else {
            burst_ns = (uint64_t)ms * 1000000ull;
        }
    }
}

static uint64_t est_hash(uint64_t key)
{
    return ((key >> 4) * 0x9E3779B97F4A7C15ull) >> 54; /* 10 bits: EST_SLOTS */
}

static struct estimate *est_find(uint64_t key)
{
    uint64_t h = est_hash(key);
    for (unsigned i = 0; i < EST_PROBES; i++) {
        struct estimate *e = &estimates[(h + i) & (EST_SLOTS - 1)];
        uint64_t k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if (k == key) return e;
        if (k == 0) return NULL;
    }
    return NULL;
}

/* Under samples_mu. NULL when the probe window is full: that kernel keeps the default estimate. */
static struct estimate *est_insert(uint64_t key)
{
    uint64_t h = est_hash(key);
    for (unsigned i = 0; i < EST_PROBES; i++) {
        struct estimate *e = &estimates[(h + i) & (EST_SLOTS - 1)];
        uint64_t k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if (k == key) return e;
        if (k == 0) {
            e->count = 0;
            e->next = 0;
            __atomic_store_n(&e->est_ns, __atomic_load_n(&default_est_ns, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
            __atomic_store_n(&e->key, key, __ATOMIC_RELEASE);
            return e;
        }
    }
    return NULL;
}

/* Move the TAT by gpu_ns (either sign) at the current rate; measured corrections and refunds. */
static void settle(int64_t gpu_ns)
{
    if (gpu_ns == 0) return;
    struct sair_limits lim = sair_limits_now(sair_now());
    if (lim.gpu_cores >= 100) return;
    uint64_t *word = sair_limiter_word();
    uint64_t w = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    uint64_t next;
    do {
        uint64_t tat = word_tat(w);
        uint64_t wall = (uint64_t)(gpu_ns < 0 ? -gpu_ns : gpu_ns) * 100u / lim.gpu_cores;
        tat = gpu_ns > 0 ? tat + wall : (tat > wall ? tat - wall : 0);
        next = word_pack(tat, word_cores(w) != 0 ? word_cores(w) : lim.gpu_cores);
    } while (!__atomic_compare_exchange_n(word, &w, next, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

static void account(int64_t gpu_ns)
{
    struct sair_usage_slot *slot = sair_own_slot();
    if (gpu_ns >= 0) __atomic_add_fetch(&slot->kernel_ns, (uint64_t)gpu_ns, __ATOMIC_RELAXED);
    else sair_atomic_sub_sat(&slot->kernel_ns, (uint64_t)-gpu_ns);
}

/* Wait (sleeping) until the pod may put cost_ns more GPU work in flight, then take it. now may be
 * the coarse clock: it lags, never leads, so it can only make a launch look early; the precise
 * clock is read before any decision to wait. */
static uint64_t estimate_of(uint64_t key)
{
    struct estimate *e = est_find(key);
    return e != NULL ? __atomic_load_n(&e->est_ns, __ATOMIC_RELAXED) : __atomic_load_n(&default_est_ns, __ATOMIC_RELAXED);
}

static uint64_t admit(uint64_t key, uint64_t cost_ns, uint64_t now)
{
    struct sair_limits lim = sair_limits_now(now);
    uint64_t waited_from = 0;
    int precise = 0;
    while (lim.gpu_cores < 100) {
        uint64_t *word = sair_limiter_word();
        uint64_t w = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        uint64_t tat = word_tat(w);
        uint32_t at = word_cores(w);
        if (tat > now && at != 0 && at != lim.gpu_cores) tat = now + (tat - now) * at / lim.gpu_cores;
        if (tat < now) tat = now;
        if (tat - now > burst_ns) {
            if (!precise) {
                now = sair_now();
                precise = 1;
                continue;
            }
            if (waited_from == 0) waited_from = now;
            uint64_t wait = tat - now - burst_ns;
            nap(wait < MAX_NAP_NS ? wait : MAX_NAP_NS);
            now = sair_now();
            lim = sair_limits_now(now);
            /* The estimate may have been corrected while we slept: charge what is known now. */
            cost_ns = estimate_of(key);
            continue;
        }
        uint64_t next = word_pack(tat + cost_ns * 100u / lim.gpu_cores, lim.gpu_cores);
        if (__atomic_compare_exchange_n(word, &w, next, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) break;
    }
    if (waited_from != 0) {
        __atomic_add_fetch(&sair_own_slot()->throttled_ns, sair_now() - waited_from, __ATOMIC_RELAXED);
    }
    return cost_ns;
}

static void release_sample(int i)
{
    __atomic_store_n(&samples[i].state, SAMPLE_FREE, __ATOMIC_RELEASE);
}

/* Reserve a timing sample for this launch; -1 when none is free or another thread is sampling. */
static int reserve_sample(uint64_t key, uint64_t now, int unknown)
{
    if (pthread_mutex_trylock(&samples_mu) != 0) return -1;
    __atomic_store_n(&next_sample_ns, now + SAMPLE_EVERY_NS, __ATOMIC_RELAXED);
    if (unknown) est_insert(key);
    int found = -1;
    for (int i = 0; i < NSAMPLES && found < 0; i++) {
        if (__atomic_load_n(&samples[i].state, __ATOMIC_ACQUIRE) == SAMPLE_FREE) found = i;
    }
    if (found >= 0) {
        struct sample *s = &samples[found];
        CUcontext ctx = NULL;
        if (sair_real.cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx == NULL) {
            found = -1;
        } else if (s->ctx != ctx || s->start == NULL) {
            /* Events belong to a context; recreate them in the one this launch runs in. */
            if (s->start != NULL) sair_real.cuEventDestroy_v2(s->start);
            if (s->end != NULL) sair_real.cuEventDestroy_v2(s->end);
            s->start = s->end = NULL;
            s->ctx = NULL;
            if (sair_real.cuEventCreate(&s->start, CU_EVENT_DEFAULT) != CUDA_SUCCESS ||
                sair_real.cuEventCreate(&s->end, CU_EVENT_DEFAULT) != CUDA_SUCCESS) {
                found = -1;
            } else {
                s->ctx = ctx;
            }
        }
        if (found >= 0) {
            s->key = key;
            __atomic_store_n(&s->state, SAMPLE_RESERVED, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&samples_mu);
    return found;
}

/* Launches charged at an estimate that turned out far too high (a first sample taken behind a deep
 * queue) left debt that no kernel ran for: forgive what exceeds the burst. */
static void forgive(void)
{
    uint64_t *word = sair_limiter_word();
    uint64_t w = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    uint64_t limit = sair_now() + burst_ns;
    while (word_tat(w) > limit &&
           !__atomic_compare_exchange_n(word, &w, word_pack(limit, word_cores(w)), 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}

static void learn(uint64_t key, uint64_t measured, uint64_t charged)
{
    struct estimate *e = est_insert(key);
    uint64_t est = measured;
    uint64_t old = e != NULL ? __atomic_load_n(&e->est_ns, __ATOMIC_RELAXED) : measured;
    if (e != NULL) {
        uint32_t count = e->count < EST_WINDOW ? e->count + 1 : EST_WINDOW;
        e->window[e->next] = measured;
        e->next = (e->next + 1) % EST_WINDOW;
        for (uint32_t i = 0; i < count; i++) {
            if (e->window[i] < est) est = e->window[i];
        }
        __atomic_store_n(&e->est_ns, est, __ATOMIC_RELAXED);
        __atomic_store_n(&e->count, count, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&default_est_ns, est, __ATOMIC_RELAXED);
    LOG_DEBUG("kernel %#llx: measured %llu ns, estimate %llu ns, charged %llu ns", (unsigned long long)key,
              (unsigned long long)measured, (unsigned long long)est, (unsigned long long)charged);
    int64_t delta = (int64_t)est - (int64_t)charged;
    settle(delta);
    account(delta);
    if (e != NULL && e->count > 1 && old > 2 * est) forgive();
}

static void harvest(uint64_t now)
{
    if (pthread_mutex_trylock(&samples_mu) != 0) return;
    __atomic_store_n(&next_harvest_ns, now + HARVEST_EVERY_NS, __ATOMIC_RELAXED);
    for (int i = 0; i < NSAMPLES; i++) {
        struct sample *s = &samples[i];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SAMPLE_PENDING) continue;
        CUresult q = sair_real.cuEventQuery(s->end);
        if (q == CUDA_ERROR_NOT_READY) continue;
        float ms = 0;
        if (q == CUDA_SUCCESS && sair_real.cuEventElapsedTime(&ms, s->start, s->end) == CUDA_SUCCESS && ms >= 0) {
            learn(s->key, (uint64_t)((double)ms * 1e6), s->charged);
        }
        __atomic_sub_fetch(&outstanding, 1, __ATOMIC_RELAXED);
        release_sample(i);
    }
    pthread_mutex_unlock(&samples_mu);
}

/* Per-thread usage not yet added to the slot; flushed at least every FLUSH_EVERY_NS of launching. */
static __thread __attribute__((tls_model("initial-exec"))) struct {
    int64_t kernel_ns; /* signed: a refund may come after the charge was flushed */
    int64_t launches;
    uint64_t flush_at;
} pending;

static void flush_usage(uint64_t now)
{
    struct sair_usage_slot *slot = sair_own_slot();
    account(pending.kernel_ns);
    if (pending.launches >= 0) __atomic_add_fetch(&slot->launches, (uint64_t)pending.launches, __ATOMIC_RELAXED);
    else sair_atomic_sub_sat(&slot->launches, (uint64_t)-pending.launches);
    pending.kernel_ns = 0;
    pending.launches = 0;
    pending.flush_at = now + FLUSH_EVERY_NS;
    if (now >= __atomic_load_n(&next_heartbeat_ns, __ATOMIC_RELAXED)) {
        __atomic_store_n(&next_heartbeat_ns, now + HEARTBEAT_EVERY_NS, __ATOMIC_RELAXED);
        __atomic_store_n(&slot->heartbeat_ns, sair_realtime(), __ATOMIC_RELAXED);
    }
}

/* A kernel's first launch is timed before its next ones go: charged nothing until then, a burst of
 * them would queue deeply, and every sample taken behind that queue would overstate its duration.
 * Only while a core limit is set, and at most PROBE_WAIT_NS once per kernel. */
static struct estimate *await_first_sample(struct estimate *e, uint64_t now)
{
    if (sair_limits_now(now).gpu_cores >= 100) return e;
    uint64_t give_up = now + PROBE_WAIT_NS;
    while (__atomic_load_n(&e->count, __ATOMIC_ACQUIRE) == 0 && now < give_up) {
        nap(PROBE_NAP_NS);
        now = sair_now();
        if (__atomic_load_n(&outstanding, __ATOMIC_RELAXED) > 0) harvest(now);
    }
    return e;
}

void sair_limiter_before(struct sair_launch *l, uint64_t key, CUstream stream)
{
    l->key = key;
    l->charged = 0;
    l->sample = -1;
    l->bypass = 0;
    if (__atomic_load_n(&captures, __ATOMIC_RELAXED) > 0 && sair_real.cuStreamIsCapturing != NULL) {
        CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
        if (sair_real.cuStreamIsCapturing(stream, &status) == CUDA_SUCCESS && status != CU_STREAM_CAPTURE_STATUS_NONE) {
            l->bypass = 1;
            return;
        }
    }
    uint64_t now = sair_now_coarse();
    if (__atomic_load_n(&outstanding, __ATOMIC_RELAXED) > 0 && now >= __atomic_load_n(&next_harvest_ns, __ATOMIC_RELAXED)) {
        harvest(now);
    }
    struct estimate *e = est_find(key);
    if (e != NULL && __atomic_load_n(&e->count, __ATOMIC_ACQUIRE) == 0) e = await_first_sample(e, now);
    l->charged = e != NULL ? __atomic_load_n(&e->est_ns, __ATOMIC_RELAXED) : __atomic_load_n(&default_est_ns, __ATOMIC_RELAXED);
    if (e == NULL || now >= __atomic_load_n(&next_sample_ns, __ATOMIC_RELAXED)) l->sample = reserve_sample(key, now, e == NULL);
    l->charged = admit(key, l->charged, now);
    /* Usage goes to the shared slot in batches, keeping shared-cache-line writes off the launch path. */
    pending.kernel_ns += (int64_t)l->charged;
    pending.launches++;
    if (now >= pending.flush_at) flush_usage(now);
    /* The start event goes in after admission, so a nap is not timed as kernel work. */
    if (l->sample >= 0 && sair_real.cuEventRecord(samples[l->sample].start, stream) != CUDA_SUCCESS) {
        release_sample(l->sample);
        l->sample = -1;
    }
}

void sair_limiter_after(struct sair_launch *l, CUstream stream, CUresult rc)
{
    if (l->bypass) return;
    if (rc != CUDA_SUCCESS) {
        /* Nothing ran: give the charge back. */
        settle(-(int64_t)l->charged);
        pending.kernel_ns -= (int64_t)l->charged;
        pending.launches--;
        if (l->sample >= 0) release_sample(l->sample);
        return;
    }
    if (l->sample < 0) return;
    struct sample *s = &samples[l->sample];
    if (sair_real.cuEventRecord(s->end, stream) != CUDA_SUCCESS) {
        release_sample(l->sample);
        return;
    }
    s->charged = l->charged;
    __atomic_add_fetch(&outstanding, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->state, SAMPLE_PENDING, __ATOMIC_RELEASE);
}

void sair_limiter_capture_begin(void)
{
    __atomic_add_fetch(&captures, 1, __ATOMIC_RELAXED);
}

void sair_limiter_capture_end(void)
{
    int c = __atomic_load_n(&captures, __ATOMIC_RELAXED);
    while (c > 0 && !__atomic_compare_exchange_n(&captures, &c, c - 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

void sair_limiter_fork_prepare(void)
{
    pthread_mutex_lock(&samples_mu);
}

void sair_limiter_fork_parent(void)
{
    pthread_mutex_unlock(&samples_mu);
}

void sair_limiter_fork_child(void)
{
    pthread_mutex_init(&samples_mu, NULL);
    /* The parent's events and captures are not the child's (CUDA state does not survive fork). */
    memset(samples, 0, sizeof samples);
    outstanding = 0;
    captures = 0;
    next_heartbeat_ns = 0;
}
