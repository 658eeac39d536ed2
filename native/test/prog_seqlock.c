/*
 * Test program: the shim's own control-file code (src/control.c, linked in) reading limits while
 * the node agent's TypeScript writer changes them. The writer alternates pairs whose memory_bytes
 * is gpu_cores MiB, so a read that mixes two writes shows as a mismatch.
 * Usage: SAIR_LIMITS_FILE=... prog_seqlock <ms>; prints one JSON line.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "../src/shim.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: prog_seqlock <ms>\n");
        return 2;
    }
    sair_log_init();
    sair_control_init();
    uint64_t end = sair_now() + strtoull(argv[1], NULL, 10) * 1000000ull;
    unsigned long reads = 0, mismatches = 0, seen[101] = {0};
    printf("{\"cmd\":\"started\"}\n");
    fflush(stdout);
    for (uint64_t now = sair_now(); now < end; now = sair_now()) {
        struct sair_limits l = sair_limits_now(now);
        reads++;
        if (l.memory_bytes != (uint64_t)l.gpu_cores << 20) mismatches++;
        if (l.gpu_cores <= 100) seen[l.gpu_cores]++;
    }
    printf("{\"reads\":%lu,\"mismatches\":%lu,\"seen\":{", reads, mismatches);
    int first = 1;
    for (int c = 0; c <= 100; c++) {
        if (seen[c] == 0) continue;
        printf("%s\"%d\":%lu", first ? "" : ",", c, seen[c]);
        first = 0;
    }
    printf("}}\n");
    return 0;
}
