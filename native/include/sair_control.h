/*
 * The two files a shim-loaded container shares with the node: the one layout contract between
 * the node agent and every shim-loaded process. src/device-plugin/control-file.ts mirrors it; a
 * test compares the offsets below with the TypeScript ones.
 *
 * - The limits file ($SAIR_LIMITS_FILE): the allocation's limits, written only by the node agent,
 *   mounted read-only into the container and mapped read-only by the shim.
 * - The state file ($SAIR_STATE_FILE): the allocation's shared core limiter, its allocation lock
 *   and one usage slot per process; written by the container's shims, read by the node agent.
 *
 * The device plugin creates both per allocation and mounts them into that container alone. All
 * integers are little-endian, naturally aligned, accessed with atomics from C.
 */
#ifndef SAIR_CONTROL_H
#define SAIR_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define SAIR_CONTROL_VERSION 2u

#define SAIR_LIMITS_MAGIC 0x004D494C52494153ULL /* "SAIRLIM\0" read as a little-endian u64 */
#define SAIR_LIMITS_FILE_SIZE 64u

#define SAIR_STATE_MAGIC 0x0041545352494153ULL /* "SAIRSTA\0" read as a little-endian u64 */
#define SAIR_STATE_HEADER_SIZE 64u
#define SAIR_STATE_SLOTS 64u
#define SAIR_STATE_SLOT_SIZE 64u
#define SAIR_STATE_FILE_SIZE (SAIR_STATE_HEADER_SIZE + SAIR_STATE_SLOTS * SAIR_STATE_SLOT_SIZE)

struct sair_limits_file {
    uint64_t magic;   /* SAIR_LIMITS_MAGIC */
    uint32_t version; /* SAIR_CONTROL_VERSION */
    uint32_t size;    /* SAIR_LIMITS_FILE_SIZE */
    /* Written by the node agent under a seqlock: seq is odd while a write is in progress; a reader
     * retries until it sees the same even seq before and after reading the fields. */
    uint32_t seq;
    uint32_t gpu_cores;    /* 1..100: percent of one GPU's time for the whole allocation */
    uint64_t memory_bytes; /* device memory quota for the whole allocation; 0 = none */
    uint64_t generation;   /* incremented by every limits write */
    uint8_t reserved[SAIR_LIMITS_FILE_SIZE - 40];
};

/* One process's usage, written only by that process (pid 0 = free). A process owns its slot while
 * it holds an OFD write lock on the slot's byte range, so liveness is checked by trying that lock:
 * this works across PID namespaces, where kill(pid, 0) would not. */
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

struct sair_state_file {
    uint64_t magic;       /* SAIR_STATE_MAGIC */
    uint32_t version;     /* SAIR_CONTROL_VERSION */
    uint32_t header_size; /* SAIR_STATE_HEADER_SIZE */
    uint32_t slot_count;  /* SAIR_STATE_SLOTS */
    uint32_t slot_size;   /* SAIR_STATE_SLOT_SIZE */
    /* The allocation's shared core limiter (see native/src/limiter.c for the encoding). */
    uint64_t limiter_state;
    /* The byte range of this field is the allocation-wide memory lock (OFD lock). */
    uint64_t alloc_lock;
    uint8_t reserved[SAIR_STATE_HEADER_SIZE - 40];
    struct sair_usage_slot slots[SAIR_STATE_SLOTS];
};

_Static_assert(sizeof(struct sair_limits_file) == SAIR_LIMITS_FILE_SIZE, "limits file size");
_Static_assert(sizeof(struct sair_usage_slot) == SAIR_STATE_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct sair_state_file, slots) == SAIR_STATE_HEADER_SIZE, "state header size");
_Static_assert(sizeof(struct sair_state_file) == SAIR_STATE_FILE_SIZE, "state file size");

#endif
