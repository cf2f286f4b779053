// Shapes, axis checks and the programmer-error reports every op uses.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

nd_shape nd_shape_from(const int64_t *dims, int ndim) {
    nd_shape s = {0};
    if (ndim < 0 || ndim > ND_MAX_DIMS) {
        fprintf(stderr, "nanodiff: a shape has %d dims; at most %d are supported\n", ndim, ND_MAX_DIMS);
        abort();
    }
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++) s.d[i] = dims[i];
    return s;
}

int64_t nd_shape_numel(nd_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

bool nd_shape_equal(nd_shape a, nd_shape b) {
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++)
        if (a.d[i] != b.d[i]) return false;
    return true;
}

char *nd_shape_str(nd_shape s, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < s.ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld", (long long)s.d[i]);
    if (used < size) snprintf(buf + used, size - used, ")");
    return buf;
}

const char *nd_device_name(nd_device d) { return d == ND_CUDA ? "cuda" : "cpu"; }

ND_NORETURN void nd_abort_at(nd_loc loc, const char *op, const char *fmt, ...) {
    fprintf(stderr, "nanodiff: %s: ", op);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, "\n  at %s:%d\n", loc.file, loc.line);
    fflush(stderr);
    abort();
}

ND_NORETURN void nd_abort_shapes(nd_loc loc, const char *op, const char *what, nd_shape a, nd_shape b) {
    char sa[96], sb[96];
    nd_abort_at(loc, op, "%s: %s and %s", what, nd_shape_str(a, sa, sizeof sa), nd_shape_str(b, sb, sizeof sb));
}

int nd_axis(int axis, int ndim, const char *op, nd_loc loc) {
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) nd_abort_at(loc, op, "axis %d is out of range for a tensor of %d dims", axis, ndim);
    return a;
}

nd_reduce_plan nd_reduce_plan_make(nd_shape src, nd_shape dst_keepdim) {
    nd_reduce_plan plan = {0};
    plan.ndim = src.ndim;
    for (int i = 0; i < src.ndim; i++) {
        plan.src_shape[i] = src.d[i];
        plan.dst_shape[i] = dst_keepdim.d[i];
    }
    return plan;
}
