/* Test library whose constructor calls a hooked driver function, so the shim is entered while the
 * loader's lock is held (inside prog_runtime's dlopen) as other threads resolve CUDA entry points. */
#include <cuda.h>
#include <stddef.h>

size_t sair_ctor_total(void);

static size_t total;

__attribute__((constructor)) static void query(void)
{
    if (cuInit(0) != CUDA_SUCCESS || cuDeviceTotalMem(&total, 0) != CUDA_SUCCESS) total = 0;
}

size_t sair_ctor_total(void)
{
    return total;
}
