// User-facing errors, and checked host allocations.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd.h"

bool nd_error_set(nd_error *err, const char *fmt, ...) {
    if (err) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, args);
        va_end(args);
    }
    return false;
}

// Ends the program: no caller can go on without the memory it asked for.
static void out_of_memory(size_t bytes, const char *file, int line) {
    fprintf(stderr,
            "nanodiff: out of host memory: %zu bytes were asked for at %s:%d\n  HINT: lower the batch size "
            "or the number of samples, or free memory used by other processes\n",
            bytes, file, line);
    exit(EXIT_FAILURE);
}

void *nd_xmalloc_at(size_t bytes, const char *file, int line) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) out_of_memory(bytes, file, line);
    return p;
}

void *nd_xcalloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size, file, line);
    return p;
}

void *nd_xrealloc_at(void *ptr, size_t bytes, const char *file, int line) {
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p) out_of_memory(bytes, file, line);
    return p;
}
