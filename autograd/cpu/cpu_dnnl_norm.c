// An inference convolution followed by group norm and its activation (a GELUConvBlock), normalized
// straight from the convolution's blocked output (oneDNN's nChw16c, cpu_dnnl.c's primitives): the
// statistics and act(norm(.)) read each image while it is in cache and write the NCHW result once, where
// the three ops would reorder it back, then read it three times and write it twice.
#include <dnnl.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "../elementwise_math.h"
#include "cpu.h"
#include "cpu_dnnl_internal.h"

// Channels per block of oneDNN's blocked activations (nChw16c: (batch, channels / 16, h, w, 16)).
#define ND_DNNL_BLOCK 16
#define ND_DNNL_MAX_GROUPS 256 // group norms with more groups take the three ops

#define ND_TILE 8 // positions per tile of store_transposed

// y[l * stride + i] = tile[i][l] for the first `rows` positions i and `width` channels l: a tile of a blocked
// image written to its NCHW rows, transposed 8 x 8 in registers where the CPU has AVX.
static void store_transposed(float *y, int64_t stride, float tile[ND_TILE][ND_DNNL_BLOCK], int64_t rows, int width) {
#ifdef __AVX__
    if (rows == ND_TILE) {
        for (int half = 0; half < ND_DNNL_BLOCK / 8 && half * 8 < width; half++) {
            __m256 r[8], t[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(&tile[i][half * 8]);
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
                r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
                r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
                r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
            }
            // r[i] holds channels i (low half) and i + 4 (high half) of positions 0-3, r[i + 4] of positions 4-7
            for (int i = 0; i < 4; i++) {
                t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
                t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
            }
            for (int i = 0; i < 8 && half * 8 + i < width; i++) _mm256_storeu_ps(y + (half * 8 + i) * stride, t[i]);
        }
        return;
    }
#endif
    for (int l = 0; l < width; l++)
        for (int64_t i = 0; i < rows; i++) y[l * stride + i] = tile[i][l];
}

// y (batch, channels, positions) = act(group norm of z), z the same tensor in nChw16c (channels padded to
// whole blocks), with each image's group statistics as norm_row_stats computes them (in double, two passes).
// Every pass reads the blocks' 16 channels at a time, so each load is a contiguous vector.
static void group_norm_act_from_blocked(float *y, const float *z, int64_t batch, int64_t channels, int64_t positions,
                                        int64_t groups, const float *weight, const float *bias, float eps,
                                        nd_unary_kind act) {
    int64_t per_group = channels / groups, len = per_group * positions;
    int64_t blocks = (channels + ND_DNNL_BLOCK - 1) / ND_DNNL_BLOCK, block = positions * ND_DNNL_BLOCK;
#pragma omp parallel for
    for (int64_t n = 0; n < batch; n++) {
        const float *zn = z + n * blocks * block;             // (blocks, positions, 16)
        float mn[ND_DNNL_MAX_GROUPS], rn[ND_DNNL_MAX_GROUPS]; // the groups' mean and rstd
        double group_mean[ND_DNNL_MAX_GROUPS], group_squares[ND_DNNL_MAX_GROUPS];
        for (int64_t grp = 0; grp < groups; grp++) group_mean[grp] = group_squares[grp] = 0.0;
        for (int pass = 0; pass < 2; pass++) // sums, then squared deviations from the group's mean
            for (int64_t cb = 0; cb < blocks; cb++) {
                const float *zb = zn + cb * block;
                double center[ND_DNNL_BLOCK], acc[ND_DNNL_BLOCK] = {0};
                for (int l = 0; l < ND_DNNL_BLOCK; l++) {
                    int64_t c = cb * ND_DNNL_BLOCK + l;
                    center[l] = pass == 0 || c >= channels ? 0.0 : group_mean[c / per_group];
                }
                for (int64_t i = 0; i < positions; i++)
#pragma omp simd
                    for (int l = 0; l < ND_DNNL_BLOCK; l++) {
                        double d = (double)zb[i * ND_DNNL_BLOCK + l] - center[l];
                        acc[l] += pass == 0 ? d : d * d;
                    }
                for (int l = 0; l < ND_DNNL_BLOCK && cb * ND_DNNL_BLOCK + l < channels; l++) {
                    int64_t grp = (cb * ND_DNNL_BLOCK + l) / per_group;
                    if (pass == 0)
                        group_mean[grp] += acc[l];
                    else
                        group_squares[grp] += acc[l];
                }
                if (pass == 0 && cb == blocks - 1)
                    for (int64_t grp = 0; grp < groups; grp++) group_mean[grp] /= (double)len;
            }
        for (int64_t grp = 0; grp < groups; grp++) {
            mn[grp] = (float)group_mean[grp];
            rn[grp] = nd_norm_rstd((float)(group_squares[grp] / (double)len), eps);
        }
        for (int64_t cb = 0; cb < blocks; cb++) {
            const float *zb = zn + cb * block;
            float *yb = y + (n * channels + cb * ND_DNNL_BLOCK) * positions; // (16, positions)
            int width = channels - cb * ND_DNNL_BLOCK < ND_DNNL_BLOCK ? (int)(channels - cb * ND_DNNL_BLOCK)
                                                                      : ND_DNNL_BLOCK;
            float m[ND_DNNL_BLOCK] = {0}, r[ND_DNNL_BLOCK] = {0}, w[ND_DNNL_BLOCK] = {0}, b[ND_DNNL_BLOCK] = {0};
            for (int l = 0; l < width; l++) {
                int64_t c = cb * ND_DNNL_BLOCK + l;
                m[l] = mn[c / per_group], r[l] = rn[c / per_group];
                w[l] = weight ? weight[c] : 1.0f, b[l] = bias ? bias[c] : 0.0f;
            }
#define APPLY(K)                                                                                                       \
    for (int64_t i0 = 0; i0 < positions; i0 += ND_TILE) {                                                              \
        float tile[ND_TILE][ND_DNNL_BLOCK]; /* (positions, channels) */                                                \
        int64_t rows = positions - i0 < ND_TILE ? positions - i0 : ND_TILE;                                            \
        for (int64_t i = 0; i < rows; i++)                                                                             \
            _Pragma("omp simd") for (int l = 0; l < ND_DNNL_BLOCK; l++) tile[i][l] = nd_unary_f(                       \
                K, nd_norm_affine(zb[(i0 + i) * ND_DNNL_BLOCK + l], m[l], r[l], w[l], b[l]), 0.0f, 0.0f);              \
        store_transposed(yb + i0, positions, tile, rows, width);                                                       \
    }
            switch (act) { ND_UNARY_CASES(APPLY) }
#undef APPLY
        }
    }
}

bool nd_cpu_conv_norm_act_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                                  int64_t batch, int64_t filters, int64_t groups, const float *norm_weight,
                                  const float *norm_bias, float eps, nd_unary_kind act) {
    // our Winograd writes plain NCHW: the op's three calls then run it, its norm and activation
    if (nd_dnnl_winograd_is_ours(g, batch, filters, false, bias != NULL, true)) return false;
    conv_key k = nd_dnnl_key_of(g, batch, filters, false, bias != NULL, true);
    conv_prims *p = nd_dnnl_prims_for(&k);
    const dnnl_memory_desc_t *src_md = nd_dnnl_query(p->fwd_pd, dnnl_query_src_md);
    const dnnl_memory_desc_t *w_md = nd_dnnl_query(p->fwd_pd, dnnl_query_weights_md);
    const dnnl_memory_desc_t *dst_md = nd_dnnl_query(p->fwd_pd, dnnl_query_dst_md);
    dnnl_memory_desc_t blocked;
    nd_dnnl_md_plain(&blocked, k.batch, k.out_c, k.out_h, k.out_w, dnnl_aBcd16b);
    if (!dnnl_memory_desc_equal(dst_md, &blocked) || groups > ND_DNNL_MAX_GROUPS) return false;
    const void *src = nd_dnnl_as_layout(&p->user_src, x, src_md, SLOT_SRC);
    const void *weights = nd_dnnl_cached_weights(&p->user_weights, w, w_md);
    float *z = nd_dnnl_slot(SLOT_DST, dnnl_memory_desc_get_size(dst_md));
    dnnl_memory_t m_src = nd_dnnl_memory(src_md, src), m_w = nd_dnnl_memory(w_md, weights),
                  m_dst = nd_dnnl_memory(dst_md, z);
    dnnl_memory_t m_bias = bias ? nd_dnnl_memory(&p->user_bias, bias) : NULL;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_BIAS, m_bias}};
    nd_dnnl_execute(p->fwd, bias ? 4 : 3, args);
    dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dst);
    if (m_bias) dnnl_memory_destroy(m_bias);
    group_norm_act_from_blocked(y, z, batch, k.out_c, k.out_h * k.out_w, groups, norm_weight, norm_bias, eps, act);
    return true;
}
