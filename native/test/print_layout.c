/* Prints the limits and state file layouts as JSON so that a test can compare them with the TypeScript codec. */
#include <stdio.h>

#include "sair_control.h"

#define F(s, m) printf("  \"%s.%s\": %zu,\n", #s, #m, offsetof(struct s, m))

int main(void)
{
    printf("{\n");
    printf("  \"limits_magic_value\": \"%llu\",\n", (unsigned long long)SAIR_LIMITS_MAGIC);
    printf("  \"state_magic_value\": \"%llu\",\n", (unsigned long long)SAIR_STATE_MAGIC);
    printf("  \"version_value\": %u,\n", SAIR_CONTROL_VERSION);
    F(sair_limits_file, magic);
    F(sair_limits_file, version);
    F(sair_limits_file, size);
    F(sair_limits_file, seq);
    F(sair_limits_file, gpu_cores);
    F(sair_limits_file, memory_bytes);
    F(sair_limits_file, generation);
    F(sair_state_file, magic);
    F(sair_state_file, version);
    F(sair_state_file, header_size);
    F(sair_state_file, slot_count);
    F(sair_state_file, slot_size);
    F(sair_state_file, limiter_state);
    F(sair_state_file, alloc_lock);
    F(sair_state_file, slots);
    F(sair_usage_slot, pid);
    F(sair_usage_slot, memory_bytes);
    F(sair_usage_slot, kernel_ns);
    F(sair_usage_slot, throttled_ns);
    F(sair_usage_slot, heartbeat_ns);
    F(sair_usage_slot, launches);
    printf("  \"slot_count_value\": %u,\n", SAIR_STATE_SLOTS);
    printf("  \"slot_size_value\": %zu,\n", sizeof(struct sair_usage_slot));
    printf("  \"limits_file_size\": %zu,\n", sizeof(struct sair_limits_file));
    printf("  \"state_file_size\": %zu\n", sizeof(struct sair_state_file));
    printf("}\n");
    return 0;
}
