// User-facing errors.
#include <stdarg.h>
#include <stdio.h>

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
