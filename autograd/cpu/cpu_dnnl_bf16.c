// bfloat16 products on the CPU through oneDNN (ND_PRECISION_BF16, cpu_bf16.h; built with ND_WITH_DNNL): the
// convolutions of cpu_dnnl.c with bf16 sources, weights and output gradients and float32 outputs, input
// gradients, weight gradients and biases, and matrix products as oneDNN matmuls of bf16 copies into float32.
// The reorders into the primitives' layouts do the rounding (to nearest even). Their primitives are cached
// apart from the float32 ones, by the same keys.
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "cpu_bf16.h"
#include "cpu_dnnl_internal.h"

typedef struct matmul_key {
    int64_t batch, batch_a, batch_b, m, n, k, ldc, stride_c; // batch_a, batch_b: 1 where a matrix is shared
    int32_t trans_a, trans_b;
    float alpha, beta;
} matmul_key;

typedef struct matmul_prim {
    matmul_key key;
    dnnl_memory_desc_t a, b, c;
    dnnl_primitive_t prim;
} matmul_prim;

static struct {
    conv_prims convs[ND_DNNL_MAX_SHAPES];
    int n_convs, next_conv;
    matmul_prim matmuls[ND_DNNL_MAX_SHAPES];
    int n_matmuls, next_matmul;
} bf16;

static void md_any(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t d, dnnl_data_type_t type) {
    dnnl_dims_t dims = {a, b, c, d};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, 4, dims, type, dnnl_format_tag_any));
}

// cpu_dnnl.c's primitives (prims_for) with bf16 src, weights and diff_dst.
static conv_prims *bf16_conv_prims(const conv_key *key) {
    for (int i = 0; i < bf16.n_convs; i++)
        if (memcmp(&bf16.convs[i].key, key, sizeof *key) == 0) return &bf16.convs[i];
    nd_dnnl_init();
    conv_prims *p;
    if (bf16.n_convs == ND_DNNL_MAX_SHAPES) {
        p = &bf16.convs[bf16.next_conv];
        bf16.next_conv = (bf16.next_conv + 1) % ND_DNNL_MAX_SHAPES;
        dnnl_primitive_t prims[3] = {p->fwd, p->bwd_data, p->bwd_weights};
        dnnl_primitive_desc_t pds[3] = {p->fwd_pd, p->bwd_data_pd, p->bwd_weights_pd};
        for (int i = 0; i < 3; i++) {
            DNNL_CHECK(dnnl_primitive_destroy(prims[i]));
            DNNL_CHECK(dnnl_primitive_desc_destroy(pds[i]));
        }
    } else {
        p = &bf16.convs[bf16.n_convs++];
    }
    memset(p, 0, sizeof *p);
    p->key = *key;
    nd_dnnl_md_plain(&p->user_src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_nchw);
    nd_dnnl_md_plain(&p->user_dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_nchw);
    nd_dnnl_md_plain(&p->user_weights, key->out_c, key->in_c, key->kh, key->kw,
                     key->transposed ? dnnl_iohw : dnnl_oihw);
    dnnl_dims_t bias_dims = {key->out_c};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&p->user_bias, 1, bias_dims, dnnl_f32, dnnl_a));

    dnnl_memory_desc_t src, weights, dst, diff_src, diff_weights, diff_dst;
    md_any(&src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_bf16);
    md_any(&diff_src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_f32);
    md_any(&weights, key->out_c, key->in_c, key->kh, key->kw, dnnl_bf16);
    md_any(&diff_weights, key->out_c, key->in_c, key->kh, key->kw, dnnl_f32);
    md_any(&dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_f32);
    md_any(&diff_dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_bf16);
    dnnl_dims_t strides, pad_l, pad_r;
    nd_dnnl_conv_geometry(key, strides, pad_l, pad_r);
    const dnnl_memory_desc_t *bias_md = key->bias ? &p->user_bias : NULL;
    if (key->transposed) {
        dnnl_deconvolution_desc_t fwd, bwd_data, bwd_weights;
        DNNL_CHECK(dnnl_deconvolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_deconvolution_direct, &src,
                                                        &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, nd_dnnl_engine(), NULL));
        DNNL_CHECK(dnnl_deconvolution_backward_data_desc_init(&bwd_data, dnnl_deconvolution_direct, &diff_src, &weights,
                                                              &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_data_pd, &bwd_data, NULL, nd_dnnl_engine(), p->fwd_pd));
        DNNL_CHECK(dnnl_deconvolution_backward_weights_desc_init(
            &bwd_weights, dnnl_deconvolution_direct, &src, &diff_weights, bias_md, &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_weights_pd, &bwd_weights, NULL, nd_dnnl_engine(), p->fwd_pd));
    } else {
        dnnl_convolution_desc_t fwd, bwd_data, bwd_weights;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_convolution_direct, &src,
                                                      &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, nd_dnnl_engine(), NULL));
        DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&bwd_data, dnnl_convolution_direct, &diff_src, &weights,
                                                            &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_data_pd, &bwd_data, NULL, nd_dnnl_engine(), p->fwd_pd));
        DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(
            &bwd_weights, dnnl_convolution_direct, &src, &diff_weights, bias_md, &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_weights_pd, &bwd_weights, NULL, nd_dnnl_engine(), p->fwd_pd));
    }
    p->fwd = nd_dnnl_make(p->fwd_pd);
    p->bwd_data = nd_dnnl_make(p->bwd_data_pd);
    p->bwd_weights = nd_dnnl_make(p->bwd_weights_pd);
    return p;
}

bool nd_cpu_conv_forward_bf16(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                              int64_t batch, int64_t filters, bool transposed, bool inference) {
    (void)inference; // the bf16 primitives take oneDNN's default algorithm whether or not a backward follows
    conv_key key = nd_dnnl_key_of(g, batch, filters, transposed, bias != NULL, false);
    nd_dnnl_conv_run_forward(bf16_conv_prims(&key), y, x, w, bias);
    return true;
}

bool nd_cpu_conv_backward_bf16(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                               const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias) {
    conv_key key = nd_dnnl_key_of(g, batch, filters, transposed, bias, false);
    if ((dw || dbias) && !nd_cpu_conv_bf16_weights_pay(key.in_c, key.out_c, transposed)) {
        nd_cpu_conv_backward(NULL, dw, dbias, dy, x, w, g, batch, filters, transposed, bias);
        dw = dbias = NULL;
    }
    if (dx || dw || dbias) nd_dnnl_conv_run_backward(bf16_conv_prims(&key), dx, dw, dbias, dy, x, w);
    return true;
}

// A dense bf16 copy of `count` matrices of rows x cols floats (row stride ld, `stride` apart) in slot `which`.
static uint16_t *pack_bf16(int which, const float *src, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                           int64_t count) {
    uint16_t *dst = nd_dnnl_slot(which, (size_t)(count * rows * cols) * sizeof(uint16_t));
#pragma omp parallel for collapse(2) if (count * rows * cols > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < count; i++)
        for (int64_t r = 0; r < rows; r++) {
            const float *from = src + i * stride + r * ld;
            uint16_t *to = dst + (i * rows + r) * cols;
            for (int64_t j = 0; j < cols; j++) to[j] = nd_bf16_from_float(from[j]);
        }
    return dst;
}

// A matrix (rows, cols) of `type` with row stride ld, or with `trans` its transpose stored (cols, rows); with
// `batched`, `batch` of them batch_stride apart (batch 1: one shared by every product of the batch).
static void md_matrix(dnnl_memory_desc_t *md, bool batched, int64_t batch, int64_t rows, int64_t cols, bool trans,
                      int64_t ld, int64_t batch_stride, dnnl_data_type_t type) {
    dnnl_dims_t dims = {rows, cols}, strides = {trans ? 1 : ld, trans ? ld : 1};
    if (batched) {
        dnnl_dims_t batch_dims = {batch, rows, cols}, batch_strides = {batch_stride, strides[0], strides[1]};
        DNNL_CHECK(dnnl_memory_desc_init_by_strides(md, 3, batch_dims, type, batch_strides));
    } else {
        DNNL_CHECK(dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides));
    }
}

static matmul_prim *bf16_matmul(const matmul_key *key) {
    for (int i = 0; i < bf16.n_matmuls; i++)
        if (memcmp(&bf16.matmuls[i].key, key, sizeof *key) == 0) return &bf16.matmuls[i];
    nd_dnnl_init();
    matmul_prim *p;
    if (bf16.n_matmuls == ND_DNNL_MAX_SHAPES) {
        p = &bf16.matmuls[bf16.next_matmul];
        bf16.next_matmul = (bf16.next_matmul + 1) % ND_DNNL_MAX_SHAPES;
        DNNL_CHECK(dnnl_primitive_destroy(p->prim));
    } else {
        p = &bf16.matmuls[bf16.n_matmuls++];
    }
    memset(p, 0, sizeof *p);
    p->key = *key;
    int64_t m = key->m, n = key->n, k = key->k;
    bool batched = key->batch > 1;
    md_matrix(&p->a, batched, key->batch_a, m, k, key->trans_a, key->trans_a ? m : k, m * k, dnnl_bf16);
    md_matrix(&p->b, batched, key->batch_b, k, n, key->trans_b, key->trans_b ? k : n, k * n, dnnl_bf16);
    md_matrix(&p->c, batched, key->batch, m, n, false, key->ldc, key->stride_c, dnnl_f32);
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    if (key->alpha != 1.0f) DNNL_CHECK(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha));
    if (key->beta != 0.0f) {
        dnnl_post_ops_t ops;
        DNNL_CHECK(dnnl_post_ops_create(&ops));
        DNNL_CHECK(dnnl_post_ops_append_sum(ops, key->beta));
        DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        DNNL_CHECK(dnnl_post_ops_destroy(ops));
    }
    dnnl_matmul_desc_t desc;
    DNNL_CHECK(dnnl_matmul_desc_init(&desc, &p->a, &p->b, NULL, &p->c));
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, nd_dnnl_engine(), NULL));
    p->prim = nd_dnnl_make(pd);
    DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
    DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
    return p;
}

void nd_cpu_gemm_bf16_always(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                             int64_t lda, int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta,
                             float *c, int64_t ldc, int64_t stride_c, int64_t batch) {
    if (m == 0 || n == 0) return;
    int64_t count_a = stride_a ? batch : 1, count_b = stride_b ? batch : 1;
    const uint16_t *a16 = pack_bf16(SLOT_SRC, a, trans_a ? k : m, trans_a ? m : k, lda, stride_a, count_a);
    const uint16_t *b16 = pack_bf16(SLOT_WEIGHTS, b, trans_b ? n : k, trans_b ? k : n, ldb, stride_b, count_b);
    // Products into one C (stride_c 0: a sum over the batch when beta is 1), or of one A and one B into many,
    // run one at a time: a matmul's batch pairs each output with its own operands.
    bool one_by_one = (stride_c == 0 || (count_a == 1 && count_b == 1)) && batch > 1;
    int64_t runs = one_by_one ? batch : 1;
    matmul_key key = {.batch = one_by_one ? 1 : batch,
                      .batch_a = one_by_one ? 1 : count_a,
                      .batch_b = one_by_one ? 1 : count_b,
                      .m = m,
                      .n = n,
                      .k = k,
                      .ldc = ldc,
                      .stride_c = one_by_one || batch == 1 ? 0 : stride_c,
                      .trans_a = trans_a,
                      .trans_b = trans_b,
                      .alpha = alpha,
                      .beta = beta};
    matmul_prim *p = bf16_matmul(&key);
    for (int64_t i = 0; i < runs; i++) {
        const uint16_t *ai = a16 + (count_a > 1 && one_by_one ? i * m * k : 0);
        const uint16_t *bi = b16 + (count_b > 1 && one_by_one ? i * k * n : 0);
        dnnl_memory_t m_a = nd_dnnl_memory(&p->a, ai), m_b = nd_dnnl_memory(&p->b, bi),
                      m_c = nd_dnnl_memory(&p->c, c + i * stride_c);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m_a}, {DNNL_ARG_WEIGHTS, m_b}, {DNNL_ARG_DST, m_c}};
        nd_dnnl_execute(p->prim, 3, args);
        dnnl_memory_destroy(m_a), dnnl_memory_destroy(m_b), dnnl_memory_destroy(m_c);
    }
}
