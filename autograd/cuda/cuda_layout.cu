// GPU layout moves: row-block copies (concat, slice) and permutations.
#include "cuda_common.h"

// dst row r (stride dst_ld) = or += src row r (stride src_ld), rows of len floats
static __global__ void copy_rows_kernel(float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t n,
                                        int64_t len, bool accumulate) {
    ND_CUDA_FOR_EACH(i, n) {
        int64_t r = i / len, j = i % len;
        float v = src[r * src_ld + j];
        float *d = dst + r * dst_ld + j;
        *d = accumulate ? *d + v : v;
    }
}

// dst (ix's shape, contiguous) = or += src read at operand 0 strides
static __global__ void permute_kernel(float *dst, const float *src, nd_cuda_index ix, int64_t n, bool accumulate) {
    ND_CUDA_FOR_EACH(i, n) {
        int64_t offset, unused;
        nd_cuda_offsets(ix, i, &offset, &unused);
        dst[i] = accumulate ? dst[i] + src[offset] : src[offset];
    }
}

extern "C" {

// Elementwise map over count * len.
void nd_cuda_copy_rows(float *dst, int64_t dst_ld, const float *src, int64_t src_ld, int64_t count, int64_t len,
                       bool accumulate) {
    ND_CUDA_MAP(count * len, copy_rows_kernel, dst, dst_ld, src, src_ld, count * len, len, accumulate);
}

// Elementwise map over dst, src read through the collapsed permuted strides.
void nd_cuda_permute(float *dst, const float *src, int ndim, const int64_t *out_shape, const int64_t *src_stride,
                     bool accumulate) {
    int64_t n = 1;
    for (int k = 0; k < ndim; k++) n *= out_shape[k];
    nd_cuda_index ix = nd_cuda_index_make(ndim, out_shape, src_stride, NULL);
    ND_CUDA_MAP(n, permute_kernel, dst, src, ix, n, accumulate);
}

} // extern "C"
