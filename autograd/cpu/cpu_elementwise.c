// CPU elementwise maps with broadcasting, and sums over axes (the reverse of broadcasting).
#include "../elementwise_math.h"
#include "cpu.h"

void nd_cpu_unary_forward(float *y, const float *x, int64_t n, nd_unary_kind kind, float alpha, float beta) {
#define FORWARD(K)                                                                                                     \
    _Pragma("omp parallel for simd if (n > ND_CPU_PARALLEL_MIN / 8)") for (int64_t i = 0; i < n; i++)                  \
        y[i] = nd_unary_f(K, x[i], alpha, beta)
    switch (kind) { ND_UNARY_CASES(FORWARD) }
#undef FORWARD
}

void nd_cpu_unary_backward(float *dx, const float *dy, const float *x, const float *y, int64_t n, nd_unary_kind kind,
                           float alpha, float beta) {
    (void)beta;
#define BACKWARD(K)                                                                                                    \
    _Pragma("omp parallel for simd if (n > ND_CPU_PARALLEL_MIN / 8)") for (int64_t i = 0; i < n; i++)                  \
        dx[i] += dy[i] * nd_unary_df(K, x[i], y[i], alpha)
    switch (kind) { ND_UNARY_CASES(BACKWARD) }
#undef BACKWARD
}

// Offsets of row `row` (all dims but the last, row-major) under two stride sets.
static inline void row_offsets(int ndim, const int64_t *shape, const int64_t *sa, const int64_t *sb, int64_t row,
                               int64_t *oa, int64_t *ob) {
    int64_t ia = 0, ib = 0;
    for (int k = ndim - 2; k >= 0; k--) {
        int64_t c = row % shape[k];
        row /= shape[k];
        ia += c * sa[k];
        ib += c * sb[k];
    }
    *oa = ia;
    *ob = ib;
}

static bool is_contiguous(int ndim, const int64_t *shape, const int64_t *stride) {
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; k--) {
        if (shape[k] != 1 && stride[k] != s) return false;
        s *= shape[k];
    }
    return true;
}

void nd_cpu_binary_forward(float *y, const float *a, const float *b, const nd_bcast *bc, nd_binary_kind kind) {
    int64_t n = bc->numel;
    if (is_contiguous(bc->ndim, bc->shape, bc->a_stride) && is_contiguous(bc->ndim, bc->shape, bc->b_stride)) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = nd_binary_f(kind, a[i], b[i]);
        return;
    }
    int64_t last = bc->ndim ? bc->shape[bc->ndim - 1] : 1, rows = last ? n / last : 0;
    int64_t as = bc->ndim ? bc->a_stride[bc->ndim - 1] : 0, bs = bc->ndim ? bc->b_stride[bc->ndim - 1] : 0;
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa, ob;
        row_offsets(bc->ndim, bc->shape, bc->a_stride, bc->b_stride, r, &oa, &ob);
        float *yr = y + r * last;
        for (int64_t j = 0; j < last; j++) yr[j] = nd_binary_f(kind, a[oa + j * as], b[ob + j * bs]);
    }
}

void nd_cpu_binary_backward(float *d, const float *dy, const float *a, const float *b, const nd_bcast *bc,
                            nd_binary_kind kind, int which, bool accumulate) {
    int64_t n = bc->numel;
    int64_t last = bc->ndim ? bc->shape[bc->ndim - 1] : 1, rows = last ? n / last : 0;
    int64_t as = bc->ndim ? bc->a_stride[bc->ndim - 1] : 0, bs = bc->ndim ? bc->b_stride[bc->ndim - 1] : 0;
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa, ob;
        row_offsets(bc->ndim, bc->shape, bc->a_stride, bc->b_stride, r, &oa, &ob);
        float *dr = d + r * last;
        const float *gr = dy + r * last;
        for (int64_t j = 0; j < last; j++) {
            float v = gr[j] * nd_binary_df(kind, which, a[oa + j * as], b[ob + j * bs]);
            dr[j] = accumulate ? dr[j] + v : v;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// sums over axes

// The plan with size-1 dims dropped and neighbours of the same kind (reduced or kept) merged.
typedef struct collapsed {
    int n;
    int64_t size[ND_MAX_DIMS];
    bool reduced[ND_MAX_DIMS];
} collapsed;

static collapsed collapse(const nd_reduce_plan *plan) {
    collapsed c = {0};
    for (int k = 0; k < plan->ndim; k++) {
        int64_t size = plan->src_shape[k];
        if (size == 1) continue;
        bool reduced = plan->dst_shape[k] == 1;
        if (c.n && c.reduced[c.n - 1] == reduced) {
            c.size[c.n - 1] *= size;
        } else {
            c.size[c.n] = size;
            c.reduced[c.n++] = reduced;
        }
    }
    return c;
}

static inline void store(float *dst, float v, float scale, bool accumulate) {
    *dst = accumulate ? *dst + scale * v : scale * v;
}

void nd_cpu_reduce_sum(float *dst, const float *src, const nd_reduce_plan *plan, float scale, bool accumulate) {
    collapsed c = collapse(plan);
    int64_t total = 1;
    for (int k = 0; k < plan->ndim; k++) total *= plan->src_shape[k];
    if (total == 0) {
        int64_t dn = 1;
        for (int k = 0; k < plan->ndim; k++) dn *= plan->dst_shape[k];
        for (int64_t i = 0; !accumulate && i < dn; i++) dst[i] = 0.0f;
        return;
    }
    if (c.n == 0 || (c.n == 1 && !c.reduced[0])) { // nothing to sum
        int64_t n = c.n ? c.size[0] : 1;
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) store(&dst[i], src[i], scale, accumulate);
        return;
    }
    if (c.n == 1) { // everything
        double sum = 0.0;
        int64_t n = c.size[0];
#pragma omp parallel for reduction(+ : sum) if (n > ND_CPU_PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) sum += src[i];
        store(dst, (float)sum, scale, accumulate);
        return;
    }
    if (c.n == 2 && !c.reduced[0]) { // (rows, R): contiguous row sums
        int64_t rows = c.size[0], len = c.size[1];
#pragma omp parallel for if (rows * len > ND_CPU_PARALLEL_MIN)
        for (int64_t r = 0; r < rows; r++) {
            float sum = 0.0f;
            for (int64_t j = 0; j < len; j++) sum += src[r * len + j];
            store(&dst[r], sum, scale, accumulate);
        }
        return;
    }
    if (c.n == 2) { // (R, cols): column sums, each thread owning a block of columns
        int64_t len = c.size[0], cols = c.size[1];
#pragma omp parallel if (len * cols > ND_CPU_PARALLEL_MIN)
        {
            float acc[256];
#pragma omp for
            for (int64_t c0 = 0; c0 < cols; c0 += 256) {
                int64_t w = cols - c0 < 256 ? cols - c0 : 256;
                for (int64_t j = 0; j < w; j++) acc[j] = 0.0f;
                for (int64_t r = 0; r < len; r++)
                    for (int64_t j = 0; j < w; j++) acc[j] += src[r * cols + c0 + j];
                for (int64_t j = 0; j < w; j++) store(&dst[c0 + j], acc[j], scale, accumulate);
            }
        }
        return;
    }
    // General pattern: each destination element sums its reduced sub-block.
    int64_t stride[ND_MAX_DIMS], s = 1, kept = 1, red = 1;
    for (int k = c.n - 1; k >= 0; k--) {
        stride[k] = s;
        s *= c.size[k];
        if (c.reduced[k])
            red *= c.size[k];
        else
            kept *= c.size[k];
    }
#pragma omp parallel for if (total > ND_CPU_PARALLEL_MIN)
    for (int64_t j = 0; j < kept; j++) {
        int64_t base = 0, rest = j;
        for (int k = c.n - 1; k >= 0; k--)
            if (!c.reduced[k]) {
                base += (rest % c.size[k]) * stride[k];
                rest /= c.size[k];
            }
        float sum = 0.0f;
        for (int64_t r = 0; r < red; r++) {
            int64_t off = base, rr = r;
            for (int k = c.n - 1; k >= 0; k--)
                if (c.reduced[k]) {
                    off += (rr % c.size[k]) * stride[k];
                    rr /= c.size[k];
                }
            sum += src[off];
        }
        store(&dst[j], sum, scale, accumulate);
    }
}

void nd_cpu_broadcast_accumulate(float *dst, const float *src, const nd_reduce_plan *plan, float scale) {
    int ndim = plan->ndim;
    int64_t src_stride[ND_MAX_DIMS], dst_stride[ND_MAX_DIMS], s = 1, n = 1;
    for (int k = ndim - 1; k >= 0; k--) {
        src_stride[k] = plan->src_shape[k] == 1 ? 0 : s;
        s *= plan->src_shape[k];
        dst_stride[k] = n;
        n *= plan->dst_shape[k];
    }
    int64_t last = ndim ? plan->dst_shape[ndim - 1] : 1, rows = last ? n / last : 0;
    int64_t ss = ndim ? src_stride[ndim - 1] : 0;
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t od, os;
        row_offsets(ndim, plan->dst_shape, dst_stride, src_stride, r, &od, &os);
        for (int64_t j = 0; j < last; j++) dst[od + j] += scale * src[os + j * ss];
    }
}
