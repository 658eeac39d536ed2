/* Prints the control-file layout as JSON so that a test can compare it with the TypeScript codec. */
#include <stdio.h>

#include "sair_control.h"

#define F(s, m) printf("  \"%s\": %zu,\n", #m, offsetof(struct s, m))

int main(void)
{
    printf("{\n");
    printf("  \"magic_value\": \"%llu\",\n", (unsigned long long)SAIR_CONTROL_MAGIC);
    printf("  \"version_value\": %u,\n", SAIR_CONTROL_VERSION);
    F(sair_control, magic);
    F(sair_control, version);
    F(sair_control, header_size);
    F(sair_control, slot_count);
    F(sair_control, slot_size);
    F(sair_control, seq);
    F(sair_control, gpu_cores);
    F(sair_control, memory_bytes);
    F(sair_control, generation);
    F(sair_control, limiter_state);
    F(sair_control, alloc_lock);
    F(sair_control, slots);
    printf("  \"slot_pid\": %zu,\n", offsetof(struct sair_usage_slot, pid));
    printf("  \"slot_memory_bytes\": %zu,\n", offsetof(struct sair_usage_slot, memory_bytes));
    printf("  \"slot_kernel_ns\": %zu,\n", offsetof(struct sair_usage_slot, kernel_ns));
    printf("  \"slot_throttled_ns\": %zu,\n", offsetof(struct sair_usage_slot, throttled_ns));
    printf("  \"slot_heartbeat_ns\": %zu,\n", offsetof(struct sair_usage_slot, heartbeat_ns));
    printf("  \"slot_launches\": %zu,\n", offsetof(struct sair_usage_slot, launches));
    printf("  \"slot_count_value\": %u,\n", SAIR_CONTROL_SLOTS);
    printf("  \"slot_size_value\": %zu,\n", sizeof(struct sair_usage_slot));
    printf("  \"file_size\": %zu\n", sizeof(struct sair_control));
    printf("}\n");
    return 0;
}
