/* Logging to stderr, chosen by SAIR_LOG_LEVEL; silent by default so applications see no noise. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

int sair_log_level = SAIR_LOG_SILENT;

void sair_log_init(void)
{
    const char *v = getenv("SAIR_LOG_LEVEL");
    if (v == NULL || *v == '\0') return;
    if (strcmp(v, "error") == 0) sair_log_level = SAIR_LOG_ERROR;
    else if (strcmp(v, "warn") == 0) sair_log_level = SAIR_LOG_WARN;
    else if (strcmp(v, "info") == 0) sair_log_level = SAIR_LOG_INFO;
    else if (strcmp(v, "debug") == 0) sair_log_level = SAIR_LOG_DEBUG;
    else {
        sair_log_level = SAIR_LOG_WARN;
        sair_log(SAIR_LOG_WARN, "SAIR_LOG_LEVEL=\"%s\" is not one of error, warn, info, debug; using warn", v);
    }
}

void sair_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"silent", "error", "warn", "info", "debug"};
    char line[512];
    int n = snprintf(line, sizeof line, "sair-cuda[%d] %s: ", (int)getpid(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line, so lines from several threads do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
