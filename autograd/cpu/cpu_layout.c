// CPU layout moves: row-block copies (concat, slice) and permutations.
#include <string.h>

#include "cpu.h"

void nd_cpu_copy_rows(float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t count, int64_t len,
                      bool accumulate) {
#pragma omp parallel for if (count * len > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < count; r++) {
        float *d = dst + r * dst_ld;
        const float *s = src + r * src_ld;
        if (accumulate)
            for (int64_t j = 0; j < len; j++) d[j] += s[j];
        else
            memcpy(d, s, (size_t)len * sizeof(float));
    }
}

void nd_cpu_permute(float *dst, const float *src, int ndim, const int64_t *out_shape, const int64_t *src_stride,
                    bool accumulate) {
    int64_t n = 1;
    for (int k = 0; k < ndim; k++) n *= out_shape[k];
    int64_t last = ndim ? out_shape[ndim - 1] : 1, rows = last ? n / last : 0;
    int64_t ls = ndim ? src_stride[ndim - 1] : 0;
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, rest = r;
        for (int k = ndim - 2; k >= 0; k--) {
            off += (rest % out_shape[k]) * src_stride[k];
            rest /= out_shape[k];
        }
        float *d = dst + r * last;
        for (int64_t j = 0; j < last; j++) d[j] = accumulate ? d[j] + src[off + j * ls] : src[off + j * ls];
    }
}
