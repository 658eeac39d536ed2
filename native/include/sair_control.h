/*
 * The per-pod control file: the one shared layout between the node agent (which writes limits)
 * and every shim-loaded process of the pod (which reads limits, shares the core limiter state
 * and publishes its usage). src/device-plugin/control-file.ts mirrors it; a test compares the
 * offsets below with the TypeScript ones.
 *
 * All integers are little-endian, naturally aligned, accessed with atomics from C. The file is
 * SAIR_CONTROL_FILE_SIZE bytes: a 256-byte header followed by SAIR_CONTROL_SLOTS usage slots.
 */
#ifndef SAIR_CONTROL_H
#define SAIR_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define SAIR_CONTROL_MAGIC 0x004C544352494153ULL /* "SAIRCTL\0" read as a little-endian u64 */
#define SAIR_CONTROL_VERSION 1u
#define SAIR_CONTROL_FILE_NAME "control"
#define SAIR_CONTROL_HEADER_SIZE 256u
#define SAIR_CONTROL_SLOTS 64u
#define SAIR_CONTROL_SLOT_SIZE 64u
#define SAIR_CONTROL_FILE_SIZE (SAIR_CONTROL_HEADER_SIZE + SAIR_CONTROL_SLOTS * SAIR_CONTROL_SLOT_SIZE)

/* One process's usage, written only by that process (pid 0 = free). A process owns its slot while
 * it holds an OFD write lock on the slot's byte range, so liveness is checked by trying that lock:
 * this works across the PID namespaces of a pod's containers, where kill(pid, 0) would not. */
struct sair_usage_slot {
    int32_t pid;           /* the owner's pid in its own namespace, for display; 0 = free */
    uint32_t reserved0;
    uint64_t memory_bytes; /* device memory the process holds now */
    uint64_t kernel_ns;    /* GPU time charged to the process by the core limiter */
    uint64_t throttled_ns; /* time its launches waited for the limiter */
    uint64_t heartbeat_ns; /* CLOCK_REALTIME of its last launch or allocation */
    uint64_t launches;     /* launches admitted */
    uint64_t reserved1[2];
};

struct sair_control {
    uint64_t magic;        /* SAIR_CONTROL_MAGIC */
    uint32_t version;      /* SAIR_CONTROL_VERSION */
    uint32_t header_size;  /* SAIR_CONTROL_HEADER_SIZE */
    uint32_t slot_count;   /* SAIR_CONTROL_SLOTS */
    uint32_t slot_size;    /* SAIR_CONTROL_SLOT_SIZE */
    /* Limits, written by the node agent under a seqlock: seq is odd while a write is in progress;
     * a reader retries until it sees the same even seq before and after reading the fields. */
    uint32_t seq;
    uint32_t gpu_cores;    /* 1..100: percent of the GPU's time for the whole pod */
    uint64_t memory_bytes; /* device memory quota for the whole pod; 0 = none */
    uint64_t generation;   /* incremented by every limits write */
    /* Shim-owned: the pod's shared core limiter (see native/src/limiter.c for the encoding). */
    uint64_t limiter_state;
    /* Shim-owned: the byte range of this field is the pod-wide allocation lock (OFD lock). */
    uint64_t alloc_lock;
    uint8_t reserved[SAIR_CONTROL_HEADER_SIZE - 64];
    struct sair_usage_slot slots[SAIR_CONTROL_SLOTS];
};

_Static_assert(sizeof(struct sair_usage_slot) == SAIR_CONTROL_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct sair_control, slots) == SAIR_CONTROL_HEADER_SIZE, "header size");
_Static_assert(sizeof(struct sair_control) == SAIR_CONTROL_FILE_SIZE, "file size");

#endif
