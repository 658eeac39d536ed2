/* Test library found only through prog_runtime's RUNPATH: proves dlopen keeps the caller's search path. */
int sair_probe_answer(void);
int sair_probe_answer(void)
{
    return 42;
}
