// CPU convolutions through oneDNN (built with ND_WITH_DNNL): F.conv2d and F.conv_transpose2d, forward and
// backward, with the primitives PyTorch's CPU convolutions use.
//
// Our tensors are NCHW; oneDNN's fast kernels want channels in blocks of 16 (nChw16c) and weights blocked
// to match. Each primitive is created with layouts left to oneDNN ("any") and the tensors are reordered
// into and out of them around the call, as PyTorch does: the reorders stream memory once, the convolution
// then runs its AVX-512 kernels instead of im2col + GEMM. Primitives are cached by shape, so each distinct
// convolution of a model pays its creation once. The blocked copies live in a few grow-only buffers owned
// here (their size is reported beside the step arena's peak).
//
// A convolution that no backward follows (sampling, evaluation) is an inference one: a 3x3 stride-1
// convolution then runs Winograd's F(4x4, 3x3) (oneDNN's forward-only kernels, about twice the direct
// ones' speed here, within ~1e-6 of them), and its weights stay in the primitive's layout from call to
// call. Winograd's weight transform costs as much as the convolution, so that cache is what makes it pay.
// Where oneDNN has no Winograd for the shape (CPUs without AVX-512), our own (cpu_winograd.c) runs instead;
// ND_CONV_WINOGRAD=0 or 1 turns ours off or on everywhere (nd_dnnl_winograd_is_ours).
// A cached entry is keyed by the weights' address and layout and holds a copy of the plain weights it was
// made from; every call compares the weights with that copy, so any change to them (an optimizer step,
// a loaded checkpoint, a buffer reused for other weights) is seen, at the cost of reading them twice.
//
// A transposed convolution whose windows do not overlap (kernel = stride, no padding: the U-Net's 2x2
// upsampling) is a 1x1 convolution to kernel_h * kernel_w * out_c channels followed by depth-to-space;
// oneDNN's 1x1 kernels run it at twice its deconvolution's speed.
//
// An inference convolution followed by group norm and its activation is normalized straight from the
// convolution's blocked output: cpu_dnnl_norm.c.
//
// The bfloat16 versions of these convolutions, and bf16 matrix products, are in cpu_dnnl_bf16.c; what both
// files share is declared in cpu_dnnl_internal.h.
#include <dnnl.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../elementwise_math.h"
#include "cpu.h"
#include "cpu_bf16.h"
#include "cpu_dnnl_internal.h"

#define ND_DNNL_MAX_REORDERS 256
#define ND_DNNL_MAX_WEIGHTS 64 // a U-Net has about 20 convolutions

// Weights kept in a primitive's layout between inference calls.
typedef struct weight_entry {
    const float *user;       // the plain weights' address
    dnnl_memory_desc_t want; // the primitive's layout
    size_t plain_bytes, blocked_bytes;
    float *plain; // the plain weights `blocked` was made from
    void *blocked;
} weight_entry;

typedef struct reorder_entry {
    dnnl_memory_desc_t from, to;
    int accumulate;
    dnnl_primitive_t prim;
} reorder_entry;

static struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    conv_prims shapes[ND_DNNL_MAX_SHAPES];
    int n_shapes, next_shape; // entries filled; the entry a full cache replaces next
    reorder_entry reorders[ND_DNNL_MAX_REORDERS];
    int n_reorders, next_reorder;
    weight_entry weights[ND_DNNL_MAX_WEIGHTS];
    int n_weights, next_weight;
    void *slot[N_SLOTS];
    size_t slot_bytes[N_SLOTS];
} dnnl;

void nd_dnnl_init(void) {
    if (dnnl.engine) return;
    DNNL_CHECK(dnnl_engine_create(&dnnl.engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&dnnl.stream, dnnl.engine, dnnl_stream_default_flags));
}

dnnl_engine_t nd_dnnl_engine(void) {
    nd_dnnl_init();
    return dnnl.engine;
}

void nd_dnnl_check(dnnl_status_t status, const char *call, const char *file, int line) {
    if (status == dnnl_success) return;
    fprintf(stderr, "nanodiff: oneDNN call %s failed with status %d (%s:%d)\n", call, (int)status, file, line);
    abort();
}

size_t nd_cpu_workspace_bytes(void) {
    size_t total = 0;
    for (int i = 0; i < N_SLOTS; i++) total += dnnl.slot_bytes[i];
    for (int i = 0; i < dnnl.n_weights; i++) total += dnnl.weights[i].plain_bytes + dnnl.weights[i].blocked_bytes;
    return total + nd_cpu_winograd_bytes();
}

void *nd_dnnl_slot(int which, size_t bytes) {
    return nd_cpu_grow_mapped(&dnnl.slot[which], &dnnl.slot_bytes[which], bytes, "convolution");
}

void nd_dnnl_md_plain(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t d, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {a, b, c, d};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag));
}

dnnl_memory_t nd_dnnl_memory(const dnnl_memory_desc_t *md, const void *ptr) {
    dnnl_memory_t mem;
    DNNL_CHECK(dnnl_memory_create(&mem, md, dnnl.engine, (void *)ptr));
    return mem;
}

void nd_dnnl_execute(dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args) {
    DNNL_CHECK(dnnl_primitive_execute(prim, dnnl.stream, nargs, args));
    DNNL_CHECK(dnnl_stream_wait(dnnl.stream));
}

// to (layout `to_md`) = from (layout `from_md`), or += with `accumulate`.
void nd_dnnl_reorder(const dnnl_memory_desc_t *from_md, const void *from, const dnnl_memory_desc_t *to_md, void *to,
                     bool accumulate) {
    reorder_entry *e = NULL;
    for (int i = 0; i < dnnl.n_reorders && !e; i++) {
        reorder_entry *r = &dnnl.reorders[i];
        if (r->accumulate == accumulate && dnnl_memory_desc_equal(&r->from, from_md) &&
            dnnl_memory_desc_equal(&r->to, to_md))
            e = r;
    }
    if (!e) {
        if (dnnl.n_reorders == ND_DNNL_MAX_REORDERS) {
            e = &dnnl.reorders[dnnl.next_reorder];
            dnnl.next_reorder = (dnnl.next_reorder + 1) % ND_DNNL_MAX_REORDERS;
            DNNL_CHECK(dnnl_primitive_destroy(e->prim));
        } else {
            e = &dnnl.reorders[dnnl.n_reorders++];
        }
        e->from = *from_md, e->to = *to_md, e->accumulate = accumulate;
        dnnl_primitive_attr_t attr;
        DNNL_CHECK(dnnl_primitive_attr_create(&attr));
        if (accumulate) {
            dnnl_post_ops_t ops;
            DNNL_CHECK(dnnl_post_ops_create(&ops));
            DNNL_CHECK(dnnl_post_ops_append_sum(ops, 1.0f));
            DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
            DNNL_CHECK(dnnl_post_ops_destroy(ops));
        }
        dnnl_primitive_desc_t pd;
        DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, from_md, dnnl.engine, to_md, dnnl.engine, attr));
        DNNL_CHECK(dnnl_primitive_create(&e->prim, pd));
        DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
        DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
    }
    dnnl_memory_t src = nd_dnnl_memory(from_md, from), dst = nd_dnnl_memory(to_md, to);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    nd_dnnl_execute(e->prim, 2, args);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(dst);
}

// `ptr` in the primitive's layout `want`: itself when the layouts agree, else a blocked copy in a slot.
const void *nd_dnnl_as_layout(const dnnl_memory_desc_t *have, const void *ptr, const dnnl_memory_desc_t *want,
                              int which) {
    if (dnnl_memory_desc_equal(have, want)) return ptr;
    void *copy = nd_dnnl_slot(which, dnnl_memory_desc_get_size(want));
    nd_dnnl_reorder(have, ptr, want, copy, false);
    return copy;
}

// The weights w (plain layout `have`) in the layout `want`, from the cache when it holds the same weights.
const void *nd_dnnl_cached_weights(const dnnl_memory_desc_t *have, const float *w, const dnnl_memory_desc_t *want) {
    size_t plain_bytes = dnnl_memory_desc_get_size(have);
    weight_entry *e = NULL;
    for (int i = 0; i < dnnl.n_weights && !e; i++)
        if (dnnl.weights[i].user == w && dnnl_memory_desc_equal(&dnnl.weights[i].want, want)) e = &dnnl.weights[i];
    if (e && memcmp(e->plain, w, plain_bytes) == 0) return e->blocked;
    if (!e) {
        if (dnnl.n_weights == ND_DNNL_MAX_WEIGHTS) {
            e = &dnnl.weights[dnnl.next_weight];
            dnnl.next_weight = (dnnl.next_weight + 1) % ND_DNNL_MAX_WEIGHTS;
            nd_cpu_free(e->plain);
            nd_cpu_free(e->blocked);
        } else {
            e = &dnnl.weights[dnnl.n_weights++];
        }
        e->user = w, e->want = *want;
        e->plain_bytes = plain_bytes, e->blocked_bytes = dnnl_memory_desc_get_size(want);
        e->plain = nd_cpu_alloc(e->plain_bytes);
        e->blocked = nd_cpu_alloc(e->blocked_bytes);
    }
    nd_dnnl_reorder(have, w, want, e->blocked, false);
    memcpy(e->plain, w, plain_bytes);
    return e->blocked;
}

const dnnl_memory_desc_t *nd_dnnl_query(dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

dnnl_primitive_t nd_dnnl_make(dnnl_primitive_desc_t pd) {
    dnnl_primitive_t prim;
    DNNL_CHECK(dnnl_primitive_create(&prim, pd));
    return prim;
}

void nd_dnnl_conv_geometry(const conv_key *key, dnnl_dims_t strides, dnnl_dims_t pad_l, dnnl_dims_t pad_r) {
    // the padding on the far side that makes the sizes agree (less than `padding` where windows do not fit)
    int64_t conv_h = key->transposed ? key->in_h : key->out_h, image_h = key->transposed ? key->out_h : key->in_h;
    int64_t conv_w = key->transposed ? key->in_w : key->out_w, image_w = key->transposed ? key->out_w : key->in_w;
    strides[0] = strides[1] = key->stride;
    pad_l[0] = pad_l[1] = key->padding;
    pad_r[0] = (conv_h - 1) * key->stride + key->kh - image_h - key->padding;
    pad_r[1] = (conv_w - 1) * key->stride + key->kw - image_w - key->padding;
}

conv_prims *nd_dnnl_prims_for(const conv_key *key) {
    for (int i = 0; i < dnnl.n_shapes; i++)
        if (memcmp(&dnnl.shapes[i].key, key, sizeof *key) == 0) return &dnnl.shapes[i];
    nd_dnnl_init();
    conv_prims *p;
    if (dnnl.n_shapes == ND_DNNL_MAX_SHAPES) {
        p = &dnnl.shapes[dnnl.next_shape];
        dnnl.next_shape = (dnnl.next_shape + 1) % ND_DNNL_MAX_SHAPES;
        dnnl_primitive_t prims[3] = {p->fwd, p->bwd_data, p->bwd_weights};
        dnnl_primitive_desc_t pds[3] = {p->fwd_pd, p->bwd_data_pd, p->bwd_weights_pd};
        for (int i = 0; i < 3; i++) {
            if (prims[i]) DNNL_CHECK(dnnl_primitive_destroy(prims[i]));
            if (pds[i]) DNNL_CHECK(dnnl_primitive_desc_destroy(pds[i]));
        }
    } else {
        p = &dnnl.shapes[dnnl.n_shapes++];
    }
    memset(p, 0, sizeof *p);
    p->key = *key;
    nd_dnnl_md_plain(&p->user_src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_nchw);
    nd_dnnl_md_plain(&p->user_dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_nchw);
    // oneDNN's weights are (out_c, in_c, kh, kw) for both; a transposed convolution stores (in_c, out_c, ...)
    nd_dnnl_md_plain(&p->user_weights, key->out_c, key->in_c, key->kh, key->kw,
                     key->transposed || key->pointwise_of_transposed ? dnnl_iohw : dnnl_oihw);
    dnnl_dims_t bias_dims = {key->out_c};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&p->user_bias, 1, bias_dims, dnnl_f32, dnnl_a));

    dnnl_memory_desc_t src, weights, dst, bias;
    nd_dnnl_md_plain(&src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_format_tag_any);
    nd_dnnl_md_plain(&dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_format_tag_any);
    nd_dnnl_md_plain(&weights, key->out_c, key->in_c, key->kh, key->kw, dnnl_format_tag_any);
    bias = p->user_bias;
    dnnl_dims_t strides, pad_l, pad_r;
    nd_dnnl_conv_geometry(key, strides, pad_l, pad_r);
    const dnnl_memory_desc_t *bias_md = key->bias ? &bias : NULL;
    if (key->pointwise_of_transposed) { // forward only, plain layouts: depth-to-space reads its output next
        dnnl_convolution_desc_t fwd;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(
            &fwd, key->inference ? dnnl_forward_inference : dnnl_forward_training, dnnl_convolution_direct,
            &p->user_src, &weights, NULL, &p->user_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL));
        p->fwd = nd_dnnl_make(p->fwd_pd);
        return p;
    }
    if (key->inference && !key->transposed && key->kh == 3 && key->kw == 3 && key->stride == 1) {
        // Winograd where oneDNN has it for this shape (channels in whole blocks of 16), else the direct kernels
        dnnl_convolution_desc_t fwd;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(&fwd, dnnl_forward_inference, dnnl_convolution_winograd, &src,
                                                      &weights, bias_md, &dst, strides, pad_l, pad_r));
        if (dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL) == dnnl_success) {
            p->fwd = nd_dnnl_make(p->fwd_pd);
            p->winograd = 1;
            return p;
        }
    }
    if (key->transposed) {
        dnnl_deconvolution_desc_t fwd, bwd_data, bwd_weights;
        DNNL_CHECK(dnnl_deconvolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_deconvolution_direct, &src,
                                                        &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL));
        if (key->inference) {
            p->fwd = nd_dnnl_make(p->fwd_pd);
            return p;
        }
        DNNL_CHECK(dnnl_deconvolution_backward_data_desc_init(&bwd_data, dnnl_deconvolution_direct, &src, &weights,
                                                              &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_data_pd, &bwd_data, NULL, dnnl.engine, p->fwd_pd));
        DNNL_CHECK(dnnl_deconvolution_backward_weights_desc_init(&bwd_weights, dnnl_deconvolution_direct, &src,
                                                                 &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_weights_pd, &bwd_weights, NULL, dnnl.engine, p->fwd_pd));
    } else {
        dnnl_convolution_desc_t fwd, bwd_data, bwd_weights;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_convolution_direct, &src,
                                                      &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL));
        if (key->inference) {
            p->fwd = nd_dnnl_make(p->fwd_pd);
            return p;
        }
        DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&bwd_data, dnnl_convolution_direct, &src, &weights, &dst,
                                                            strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_data_pd, &bwd_data, NULL, dnnl.engine, p->fwd_pd));
        DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(&bwd_weights, dnnl_convolution_direct, &src, &weights,
                                                               bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_weights_pd, &bwd_weights, NULL, dnnl.engine, p->fwd_pd));
    }
    p->fwd = nd_dnnl_make(p->fwd_pd);
    p->bwd_data = nd_dnnl_make(p->bwd_data_pd);
    p->bwd_weights = nd_dnnl_make(p->bwd_weights_pd);
    return p;
}

// The key of a convolution given as its windows: conv2d's over x (channels = in_c), or, transposed, those
// of a conv2d over the output (channels = out_c; see ops_conv.c); `filters` is the weight's other channel count.
conv_key nd_dnnl_key_of(const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias,
                        bool inference) {
    conv_key k = {.batch = batch,
                  .kh = g->kernel_h,
                  .kw = g->kernel_w,
                  .stride = g->stride,
                  .padding = g->padding,
                  .transposed = transposed,
                  .bias = bias,
                  .inference = inference};
    if (transposed) {
        k.in_c = filters, k.in_h = g->out_h, k.in_w = g->out_w;
        k.out_c = g->channels, k.out_h = g->height, k.out_w = g->width;
    } else {
        k.in_c = g->channels, k.in_h = g->height, k.in_w = g->width;
        k.out_c = filters, k.out_h = g->out_h, k.out_w = g->out_w;
    }
    return k;
}

// y (batch, out_c, h * kh, w * kw) = z (batch, out_c * kh * kw, h, w) moved to space (channel (c * kh + i) * kw + j
// to pixel (i, j) of each kh x kw block of channel c) + bias (out_c) or NULL.
static void depth_to_space(float *y, const float *z, const float *bias, int64_t batch, int64_t out_c, int64_t h,
                           int64_t w, int64_t kh, int64_t kw) {
    int64_t plane = h * w, out_w = w * kw;
#pragma omp parallel for
    for (int64_t nc = 0; nc < batch * out_c; nc++) {
        float b = bias ? bias[nc % out_c] : 0.0f;
        const float *zc = z + nc * kh * kw * plane; // (kh, kw, h, w)
        float *yc = y + nc * kh * kw * plane;       // (h * kh, w * kw)
        for (int64_t r = 0; r < h; r++)
            for (int64_t i = 0; i < kh; i++)
                for (int64_t c = 0; c < w; c++)
                    for (int64_t j = 0; j < kw; j++)
                        yc[(r * kh + i) * out_w + c * kw + j] = zc[(i * kw + j) * plane + r * w + c] + b;
    }
}

// conv_transpose2d with kernel = stride and no padding as a 1x1 convolution, then depth-to-space.
static void transposed_as_pointwise(float *y, const float *x, const float *w, const float *bias, const conv_key *t,
                                    bool inference) {
    conv_key k = {.batch = t->batch,
                  .in_c = t->in_c,
                  .out_c = t->out_c * t->kh * t->kw,
                  .in_h = t->in_h,
                  .in_w = t->in_w,
                  .out_h = t->in_h,
                  .out_w = t->in_w,
                  .kh = 1,
                  .kw = 1,
                  .stride = 1,
                  .inference = inference,
                  .pointwise_of_transposed = 1};
    conv_prims *p = nd_dnnl_prims_for(&k);
    const dnnl_memory_desc_t *w_md = nd_dnnl_query(p->fwd_pd, dnnl_query_weights_md);
    const void *weights = inference ? nd_dnnl_cached_weights(&p->user_weights, w, w_md)
                                    : nd_dnnl_as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
    void *z = nd_dnnl_slot(SLOT_DST, dnnl_memory_desc_get_size(&p->user_dst));
    dnnl_memory_t m_src = nd_dnnl_memory(&p->user_src, x), m_w = nd_dnnl_memory(w_md, weights),
                  m_dst = nd_dnnl_memory(&p->user_dst, z);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst}};
    nd_dnnl_execute(p->fwd, 3, args);
    dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dst);
    depth_to_space(y, z, bias, t->batch, t->out_c, t->in_h, t->in_w, t->kh, t->kw);
}

// y = conv(x, w) + bias with the primitives p (their layouts and types read from them); an inference key's
// weights come from the cache.
void nd_dnnl_conv_run_forward(const conv_prims *p, float *y, const float *x, const float *w, const float *bias) {
    const dnnl_memory_desc_t *src_md = nd_dnnl_query(p->fwd_pd, dnnl_query_src_md);
    const dnnl_memory_desc_t *w_md = nd_dnnl_query(p->fwd_pd, dnnl_query_weights_md);
    const dnnl_memory_desc_t *dst_md = nd_dnnl_query(p->fwd_pd, dnnl_query_dst_md);
    const void *src = nd_dnnl_as_layout(&p->user_src, x, src_md, SLOT_SRC);
    const void *weights = p->key.inference ? nd_dnnl_cached_weights(&p->user_weights, w, w_md)
                                           : nd_dnnl_as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
    bool direct = dnnl_memory_desc_equal(dst_md, &p->user_dst);
    void *dst = direct ? (void *)y : nd_dnnl_slot(SLOT_DST, dnnl_memory_desc_get_size(dst_md));
    dnnl_memory_t m_src = nd_dnnl_memory(src_md, src), m_w = nd_dnnl_memory(w_md, weights),
                  m_dst = nd_dnnl_memory(dst_md, dst);
    dnnl_memory_t m_bias = bias ? nd_dnnl_memory(&p->user_bias, bias) : NULL;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_BIAS, m_bias}};
    nd_dnnl_execute(p->fwd, bias ? 4 : 3, args);
    dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dst);
    if (m_bias) dnnl_memory_destroy(m_bias);
    if (!direct) nd_dnnl_reorder(dst_md, dst, &p->user_dst, y, false);
}

// dx += d/dx, dw += d/dw, dbias += d/dbias (each may be NULL) with the primitives p.
void nd_dnnl_conv_run_backward(const conv_prims *p, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                               const float *w) {
    const dnnl_memory_desc_t *ddst_md = NULL; // dy in the layout of the primitive that read it last
    const void *ddst = NULL;
    if (dw || dbias) {
        const dnnl_memory_desc_t *src_md = nd_dnnl_query(p->bwd_weights_pd, dnnl_query_src_md);
        ddst_md = nd_dnnl_query(p->bwd_weights_pd, dnnl_query_diff_dst_md);
        const dnnl_memory_desc_t *dw_md = nd_dnnl_query(p->bwd_weights_pd, dnnl_query_diff_weights_md);
        const void *src = nd_dnnl_as_layout(&p->user_src, x, src_md, SLOT_SRC);
        ddst = nd_dnnl_as_layout(&p->user_dst, dy, ddst_md, SLOT_DST);
        void *dweights = nd_dnnl_slot(SLOT_WEIGHTS, dnnl_memory_desc_get_size(dw_md));
        float *dbias_new = p->key.bias ? nd_dnnl_slot(SLOT_BIAS, (size_t)p->key.out_c * sizeof(float)) : NULL;
        dnnl_memory_t m_src = nd_dnnl_memory(src_md, src), m_ddst = nd_dnnl_memory(ddst_md, ddst),
                      m_dw = nd_dnnl_memory(dw_md, dweights);
        dnnl_memory_t m_db = p->key.bias ? nd_dnnl_memory(&p->user_bias, dbias_new) : NULL;
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m_src},
                                   {DNNL_ARG_DIFF_DST, m_ddst},
                                   {DNNL_ARG_DIFF_WEIGHTS, m_dw},
                                   {DNNL_ARG_DIFF_BIAS, m_db}};
        nd_dnnl_execute(p->bwd_weights, p->key.bias ? 4 : 3, args);
        dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_ddst), dnnl_memory_destroy(m_dw);
        if (m_db) dnnl_memory_destroy(m_db);
        if (dw) nd_dnnl_reorder(dw_md, dweights, &p->user_weights, dw, true);
        if (dbias)
            for (int64_t c = 0; c < p->key.out_c; c++) dbias[c] += dbias_new[c];
    }
    if (dx) {
        const dnnl_memory_desc_t *want = nd_dnnl_query(p->bwd_data_pd, dnnl_query_diff_dst_md);
        if (!ddst_md || !dnnl_memory_desc_equal(ddst_md, want))
            ddst = nd_dnnl_as_layout(&p->user_dst, dy, want, SLOT_DST);
        ddst_md = want;
        const dnnl_memory_desc_t *w_md = nd_dnnl_query(p->bwd_data_pd, dnnl_query_weights_md);
        const dnnl_memory_desc_t *dsrc_md = nd_dnnl_query(p->bwd_data_pd, dnnl_query_diff_src_md);
        const void *weights = nd_dnnl_as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
        void *dsrc = nd_dnnl_slot(SLOT_DIFF, dnnl_memory_desc_get_size(dsrc_md));
        dnnl_memory_t m_ddst = nd_dnnl_memory(ddst_md, ddst), m_w = nd_dnnl_memory(w_md, weights),
                      m_dsrc = nd_dnnl_memory(dsrc_md, dsrc);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, m_ddst}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DIFF_SRC, m_dsrc}};
        nd_dnnl_execute(p->bwd_data, 3, args);
        dnnl_memory_destroy(m_ddst), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dsrc);
        nd_dnnl_reorder(dsrc_md, dsrc, &p->user_src, dx, true);
    }
}

// Whether our Winograd (cpu_winograd.c) runs this convolution rather than oneDNN: where asked to, or by
// default where oneDNN has no Winograd for the shape (creating the shape's primitives to find out).
bool nd_dnnl_winograd_is_ours(const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias,
                              bool inference) {
    switch (nd_cpu_winograd_choice(g, filters, transposed, inference)) {
    case ND_WINOGRAD_ALWAYS: return true;
    case ND_WINOGRAD_UNLESS_LIBRARY: {
        conv_key key = nd_dnnl_key_of(g, batch, filters, transposed, bias, inference);
        return !nd_dnnl_prims_for(&key)->winograd;
    }
    default: return false;
    }
}

bool nd_cpu_conv_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                         int64_t batch, int64_t filters, bool transposed, bool inference) {
    if (nd_dnnl_winograd_is_ours(g, batch, filters, transposed, bias != NULL, inference)) {
        nd_cpu_winograd_conv_forward(y, x, w, bias, batch, g->channels, filters, g->height, g->width);
        return true;
    }
    conv_key key = nd_dnnl_key_of(g, batch, filters, transposed, bias != NULL, inference);
    if (transposed && key.kh == key.stride && key.kw == key.stride && key.padding == 0 &&
        key.out_h == key.in_h * key.kh && key.out_w == key.in_w * key.kw) {
        transposed_as_pointwise(y, x, w, bias, &key, inference);
        return true;
    }
    nd_dnnl_conv_run_forward(nd_dnnl_prims_for(&key), y, x, w, bias);
    return true;
}

// dx += d/dx, dw += d/dw, dbias += d/dbias of the convolution for the gradient dy of its output; each
// of dx, dw, dbias may be NULL.
bool nd_cpu_conv_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias) {
    conv_key key = nd_dnnl_key_of(g, batch, filters, transposed, bias, false);
    nd_dnnl_conv_run_backward(nd_dnnl_prims_for(&key), dx, dw, dbias, dy, x, w);
    return true;
}
