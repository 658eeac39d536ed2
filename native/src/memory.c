/*
 * The memory quota: every allocation is reserved against the pod's quota under the pod-wide
 * allocation lock before the driver sees it, so concurrent processes cannot both squeeze past the
 * limit; a reservation past the quota is CUDA_ERROR_OUT_OF_MEMORY. Each process's usage lives in
 * its control-file slot; a free gives it back; slots of exited processes are reclaimed when the
 * quota would otherwise be exceeded.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "shim.h"

#define BUCKETS 4096u

struct node {
    uint64_t key;
    uint64_t bytes;
    struct node *next;
};

static struct node *buckets[BUCKETS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned bucket_of(uint64_t key)
{
    return (unsigned)(((key >> 8) * 0x9E3779B97F4A7C15ull) >> 52) & (BUCKETS - 1);
}

CUresult sair_mem_reserve(uint64_t bytes)
{
    uint64_t now = sair_now();
    struct sair_limits lim = sair_limits_now(now);
    if (lim.memory_bytes == 0) {
        __atomic_add_fetch(&sair_own_slot()->memory_bytes, bytes, __ATOMIC_RELAXED);
        return CUDA_SUCCESS;
    }
    sair_alloc_lock();
    uint64_t used = sair_pod_memory(0);
    if (bytes > lim.memory_bytes || used > lim.memory_bytes - bytes) used = sair_pod_memory(1);
    if (bytes > lim.memory_bytes || used > lim.memory_bytes - bytes) {
        sair_alloc_unlock();
        LOG_INFO("allocation of %llu bytes refused: pod uses %llu of its %llu-byte quota", (unsigned long long)bytes,
                 (unsigned long long)used, (unsigned long long)lim.memory_bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    struct sair_usage_slot *slot = sair_own_slot();
    __atomic_add_fetch(&slot->memory_bytes, bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->heartbeat_ns, sair_realtime(), __ATOMIC_RELAXED);
    sair_alloc_unlock();
    return CUDA_SUCCESS;
}

void sair_mem_unreserve(uint64_t bytes)
{
    sair_atomic_sub_sat(&sair_own_slot()->memory_bytes, bytes);
}

void sair_mem_track(uint64_t key, uint64_t bytes)
{
    struct node *n = malloc(sizeof *n);
    if (n == NULL) {
        LOG_ERROR("out of host memory tracking an allocation; its %llu bytes stay counted", (unsigned long long)bytes);
        return;
    }
    n->key = key;
    n->bytes = bytes;
    unsigned b = bucket_of(key);
    pthread_mutex_lock(&mu);
    n->next = buckets[b];
    buckets[b] = n;
    pthread_mutex_unlock(&mu);
}

void sair_mem_untrack(uint64_t key)
{
    unsigned b = bucket_of(key);
    struct node *found = NULL;
    pthread_mutex_lock(&mu);
    for (struct node **p = &buckets[b]; *p != NULL; p = &(*p)->next) {
        if ((*p)->key == key) {
            found = *p;
            *p = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    if (found == NULL) return; /* not allocated through the shim (or before a fork): nothing counted */
    sair_atomic_sub_sat(&sair_own_slot()->memory_bytes, found->bytes);
    free(found);
}

void sair_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    struct sair_limits lim = sair_limits_now(sair_now());
    if (lim.memory_bytes == 0) return;
    uint64_t total = lim.memory_bytes < *total_bytes ? lim.memory_bytes : *total_bytes;
    uint64_t used = sair_pod_memory(0);
    uint64_t avail = used < total ? total - used : 0;
    *total_bytes = total;
    if (avail < *free_bytes) *free_bytes = avail;
}

void sair_mem_fork_prepare(void)
{
    pthread_mutex_lock(&mu);
}

void sair_mem_fork_parent(void)
{
    pthread_mutex_unlock(&mu);
}

void sair_mem_fork_child(void)
{
    pthread_mutex_init(&mu, NULL);
    /* A forked child holds none of its parent's device memory. */
    for (unsigned i = 0; i < BUCKETS; i++) {
        struct node *n = buckets[i];
        while (n != NULL) {
            struct node *next = n->next;
            free(n);
            n = next;
        }
        buckets[i] = NULL;
    }
}
