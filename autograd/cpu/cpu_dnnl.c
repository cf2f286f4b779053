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
// A cached entry is keyed by the weights' address and layout and holds a copy of the plain weights it was
// made from; every call compares the weights with that copy, so any change to them (an optimizer step,
// a loaded checkpoint, a buffer reused for other weights) is seen, at the cost of reading them twice.
//
// A transposed convolution whose windows do not overlap (kernel = stride, no padding: the U-Net's 2x2
// upsampling) is a 1x1 convolution to kernel_h * kernel_w * out_c channels followed by depth-to-space;
// oneDNN's 1x1 kernels run it at twice its deconvolution's speed.
//
// An inference convolution followed by group norm and its activation (a GELUConvBlock) is normalized
// straight from the convolution's blocked output: the statistics and act(norm(.)) read each image while it
// is in cache and write the NCHW result once, where the three ops would reorder it back, then read it
// three times and write it twice.
#define _DEFAULT_SOURCE // MAP_ANONYMOUS
#include <dnnl.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../elementwise_math.h"
#include "cpu.h"
#include "cpu_bf16.h"

// Cache sizes: a U-Net has about a dozen convolution shapes per batch size. A full cache replaces its
// entries in turn (a program that keeps changing shapes pays the creation again, nothing else).
#define ND_DNNL_MAX_SHAPES 64
#define ND_DNNL_MAX_REORDERS 256
#define ND_DNNL_MAX_WEIGHTS 64 // a U-Net has about 20 convolutions

static void dnnl_check(dnnl_status_t status, const char *call, int line) {
    if (status == dnnl_success) return;
    fprintf(stderr, "nanodiff: oneDNN call %s failed with status %d (autograd/cpu/cpu_dnnl.c:%d)\n", call, (int)status,
            line);
    abort();
}
#define DNNL_CHECK(call) dnnl_check((call), #call, __LINE__)

// One convolution's shape: conv2d of x (batch, in_c, in_h, in_w) by weight (out_c, in_c, kh, kw) into
// (batch, out_c, out_h, out_w), or, transposed, conv_transpose2d of x (batch, in_c, in_h, in_w) by weight
// (in_c, out_c, kh, kw) into (batch, out_c, out_h, out_w).
typedef struct conv_key {
    int64_t batch, in_c, out_c, in_h, in_w, out_h, out_w, kh, kw, stride, padding;
    int transposed, bias, inference;
    int pointwise_of_transposed; // the 1x1 convolution of a kernel = stride transposed one: plain NCHW
                                 // tensors, weights (in_c, out_c) as stored for the transposed one
} conv_key;

typedef struct conv_prims {
    conv_key key;
    dnnl_memory_desc_t user_src, user_weights, user_dst, user_bias;
    dnnl_primitive_desc_t fwd_pd, bwd_data_pd, bwd_weights_pd; // an inference key has no backward
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
} conv_prims;

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

// Blocked copies of one call's tensors: source, weights, destination (or their gradients).
enum { SLOT_SRC, SLOT_WEIGHTS, SLOT_DST, SLOT_DIFF, SLOT_BIAS, N_SLOTS };

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

static void dnnl_init(void) {
    if (dnnl.engine) return;
    DNNL_CHECK(dnnl_engine_create(&dnnl.engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&dnnl.stream, dnnl.engine, dnnl_stream_default_flags));
}

size_t nd_cpu_workspace_bytes(void) {
    size_t total = 0;
    for (int i = 0; i < N_SLOTS; i++) total += dnnl.slot_bytes[i];
    for (int i = 0; i < dnnl.n_weights; i++) total += dnnl.weights[i].plain_bytes + dnnl.weights[i].blocked_bytes;
    return total;
}

// The buffers are mapped, not taken from the heap: grown while the first step's arena blocks are still
// being allocated, heap buffers would sit above those blocks and keep them resident after the arena frees
// them (the process's peak memory grew by half the arena).
static void *slot(int which, size_t bytes) {
    if (bytes > dnnl.slot_bytes[which]) {
        if (dnnl.slot[which]) munmap(dnnl.slot[which], dnnl.slot_bytes[which]);
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "nanodiff: out of memory for a %zu-byte convolution buffer\n", bytes);
            abort();
        }
        dnnl.slot[which] = p;
        dnnl.slot_bytes[which] = bytes;
    }
    return dnnl.slot[which];
}

static void md_plain(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t d, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {a, b, c, d};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag));
}

static dnnl_memory_t memory(const dnnl_memory_desc_t *md, const void *ptr) {
    dnnl_memory_t mem;
    DNNL_CHECK(dnnl_memory_create(&mem, md, dnnl.engine, (void *)ptr));
    return mem;
}

static void execute(dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args) {
    DNNL_CHECK(dnnl_primitive_execute(prim, dnnl.stream, nargs, args));
    DNNL_CHECK(dnnl_stream_wait(dnnl.stream));
}

// to (layout `to_md`) = from (layout `from_md`), or += with `accumulate`.
static void reorder(const dnnl_memory_desc_t *from_md, const void *from, const dnnl_memory_desc_t *to_md, void *to,
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
    dnnl_memory_t src = memory(from_md, from), dst = memory(to_md, to);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
    execute(e->prim, 2, args);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(dst);
}

// `ptr` in the primitive's layout `want`: itself when the layouts agree, else a blocked copy in a slot.
static const void *as_layout(const dnnl_memory_desc_t *have, const void *ptr, const dnnl_memory_desc_t *want,
                             int which) {
    if (dnnl_memory_desc_equal(have, want)) return ptr;
    void *copy = slot(which, dnnl_memory_desc_get_size(want));
    reorder(have, ptr, want, copy, false);
    return copy;
}

static void *xmalloc_aligned(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0 || !p) {
        fprintf(stderr, "nanodiff: out of memory for %zu bytes of cached convolution weights\n", bytes);
        abort();
    }
    return p;
}

// The weights w (plain layout `have`) in the layout `want`, from the cache when it holds the same weights.
static const void *cached_weights(const dnnl_memory_desc_t *have, const float *w, const dnnl_memory_desc_t *want) {
    size_t plain_bytes = dnnl_memory_desc_get_size(have);
    weight_entry *e = NULL;
    for (int i = 0; i < dnnl.n_weights && !e; i++)
        if (dnnl.weights[i].user == w && dnnl_memory_desc_equal(&dnnl.weights[i].want, want)) e = &dnnl.weights[i];
    if (e && memcmp(e->plain, w, plain_bytes) == 0) return e->blocked;
    if (!e) {
        if (dnnl.n_weights == ND_DNNL_MAX_WEIGHTS) {
            e = &dnnl.weights[dnnl.next_weight];
            dnnl.next_weight = (dnnl.next_weight + 1) % ND_DNNL_MAX_WEIGHTS;
            free(e->plain);
            free(e->blocked);
        } else {
            e = &dnnl.weights[dnnl.n_weights++];
        }
        e->user = w, e->want = *want;
        e->plain_bytes = plain_bytes, e->blocked_bytes = dnnl_memory_desc_get_size(want);
        e->plain = xmalloc_aligned(e->plain_bytes);
        e->blocked = xmalloc_aligned(e->blocked_bytes);
    }
    reorder(have, w, want, e->blocked, false);
    memcpy(e->plain, w, plain_bytes);
    return e->blocked;
}

static const dnnl_memory_desc_t *query(dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static dnnl_primitive_t make(dnnl_primitive_desc_t pd) {
    dnnl_primitive_t prim;
    DNNL_CHECK(dnnl_primitive_create(&prim, pd));
    return prim;
}

static conv_prims *prims_for(const conv_key *key) {
    for (int i = 0; i < dnnl.n_shapes; i++)
        if (memcmp(&dnnl.shapes[i].key, key, sizeof *key) == 0) return &dnnl.shapes[i];
    dnnl_init();
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
    md_plain(&p->user_src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_nchw);
    md_plain(&p->user_dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_nchw);
    // oneDNN's weights are (out_c, in_c, kh, kw) for both; a transposed convolution stores (in_c, out_c, ...)
    md_plain(&p->user_weights, key->out_c, key->in_c, key->kh, key->kw,
             key->transposed || key->pointwise_of_transposed ? dnnl_iohw : dnnl_oihw);
    dnnl_dims_t bias_dims = {key->out_c};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&p->user_bias, 1, bias_dims, dnnl_f32, dnnl_a));

    dnnl_memory_desc_t src, weights, dst, bias;
    md_plain(&src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_format_tag_any);
    md_plain(&dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_format_tag_any);
    md_plain(&weights, key->out_c, key->in_c, key->kh, key->kw, dnnl_format_tag_any);
    bias = p->user_bias;
    // the padding on the far side that makes the sizes agree (less than `padding` where windows do not fit)
    int64_t conv_h = key->transposed ? key->in_h : key->out_h, image_h = key->transposed ? key->out_h : key->in_h;
    int64_t conv_w = key->transposed ? key->in_w : key->out_w, image_w = key->transposed ? key->out_w : key->in_w;
    dnnl_dims_t strides = {key->stride, key->stride}, pad_l = {key->padding, key->padding};
    dnnl_dims_t pad_r = {(conv_h - 1) * key->stride + key->kh - image_h - key->padding,
                         (conv_w - 1) * key->stride + key->kw - image_w - key->padding};
    const dnnl_memory_desc_t *bias_md = key->bias ? &bias : NULL;
    if (key->pointwise_of_transposed) { // forward only, plain layouts: depth-to-space reads its output next
        dnnl_convolution_desc_t fwd;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(
            &fwd, key->inference ? dnnl_forward_inference : dnnl_forward_training, dnnl_convolution_direct,
            &p->user_src, &weights, NULL, &p->user_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL));
        p->fwd = make(p->fwd_pd);
        return p;
    }
    if (key->inference && !key->transposed && key->kh == 3 && key->kw == 3 && key->stride == 1) {
        // Winograd where oneDNN has it for this shape (channels in whole blocks of 16), else the direct kernels
        dnnl_convolution_desc_t fwd;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(&fwd, dnnl_forward_inference, dnnl_convolution_winograd, &src,
                                                      &weights, bias_md, &dst, strides, pad_l, pad_r));
        if (dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL) == dnnl_success) {
            p->fwd = make(p->fwd_pd);
            return p;
        }
    }
    if (key->transposed) {
        dnnl_deconvolution_desc_t fwd, bwd_data, bwd_weights;
        DNNL_CHECK(dnnl_deconvolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_deconvolution_direct, &src,
                                                        &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL));
        if (key->inference) {
            p->fwd = make(p->fwd_pd);
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
            p->fwd = make(p->fwd_pd);
            return p;
        }
        DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&bwd_data, dnnl_convolution_direct, &src, &weights, &dst,
                                                            strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_data_pd, &bwd_data, NULL, dnnl.engine, p->fwd_pd));
        DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(&bwd_weights, dnnl_convolution_direct, &src, &weights,
                                                               bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_weights_pd, &bwd_weights, NULL, dnnl.engine, p->fwd_pd));
    }
    p->fwd = make(p->fwd_pd);
    p->bwd_data = make(p->bwd_data_pd);
    p->bwd_weights = make(p->bwd_weights_pd);
    return p;
}

// The key of a convolution given as its windows: conv2d's over x (channels = in_c), or, transposed, those
// of a conv2d over the output (channels = out_c; see ops_conv.c); `filters` is the weight's other channel count.
static conv_key key_of(const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias,
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
    conv_prims *p = prims_for(&k);
    const dnnl_memory_desc_t *w_md = query(p->fwd_pd, dnnl_query_weights_md);
    const void *weights = inference ? cached_weights(&p->user_weights, w, w_md)
                                    : as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
    void *z = slot(SLOT_DST, dnnl_memory_desc_get_size(&p->user_dst));
    dnnl_memory_t m_src = memory(&p->user_src, x), m_w = memory(w_md, weights), m_dst = memory(&p->user_dst, z);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst}};
    execute(p->fwd, 3, args);
    dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dst);
    depth_to_space(y, z, bias, t->batch, t->out_c, t->in_h, t->in_w, t->kh, t->kw);
}

bool nd_cpu_conv_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                         int64_t batch, int64_t filters, bool transposed, bool inference) {
    conv_key k = key_of(g, batch, filters, transposed, bias != NULL, inference), *key = &k;
    if (transposed && key->kh == key->stride && key->kw == key->stride && key->padding == 0 &&
        key->out_h == key->in_h * key->kh && key->out_w == key->in_w * key->kw) {
        transposed_as_pointwise(y, x, w, bias, key, inference);
        return true;
    }
    conv_prims *p = prims_for(key);
    const dnnl_memory_desc_t *src_md = query(p->fwd_pd, dnnl_query_src_md);
    const dnnl_memory_desc_t *w_md = query(p->fwd_pd, dnnl_query_weights_md);
    const dnnl_memory_desc_t *dst_md = query(p->fwd_pd, dnnl_query_dst_md);
    const void *src = as_layout(&p->user_src, x, src_md, SLOT_SRC);
    const void *weights = inference ? cached_weights(&p->user_weights, w, w_md)
                                    : as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
    bool direct = dnnl_memory_desc_equal(dst_md, &p->user_dst);
    void *dst = direct ? (void *)y : slot(SLOT_DST, dnnl_memory_desc_get_size(dst_md));
    dnnl_memory_t m_src = memory(src_md, src), m_w = memory(w_md, weights), m_dst = memory(dst_md, dst);
    dnnl_memory_t m_bias = bias ? memory(&p->user_bias, bias) : NULL;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_BIAS, m_bias}};
    execute(p->fwd, bias ? 4 : 3, args);
    dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dst);
    if (m_bias) dnnl_memory_destroy(m_bias);
    if (!direct) reorder(dst_md, dst, &p->user_dst, y, false);
    return true;
}

// dx += d/dx, dw += d/dw, dbias += d/dbias of the convolution for the gradient dy of its output; each
// of dx, dw, dbias may be NULL.
bool nd_cpu_conv_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias) {
    conv_key k = key_of(g, batch, filters, transposed, bias, false), *key = &k;
    conv_prims *p = prims_for(key);
    const dnnl_memory_desc_t *ddst_md = NULL; // dy in the layout of the primitive that read it last
    const void *ddst = NULL;
    if (dw || dbias) {
        const dnnl_memory_desc_t *src_md = query(p->bwd_weights_pd, dnnl_query_src_md);
        ddst_md = query(p->bwd_weights_pd, dnnl_query_diff_dst_md);
        const dnnl_memory_desc_t *dw_md = query(p->bwd_weights_pd, dnnl_query_diff_weights_md);
        const void *src = as_layout(&p->user_src, x, src_md, SLOT_SRC);
        ddst = as_layout(&p->user_dst, dy, ddst_md, SLOT_DST);
        void *dweights = slot(SLOT_WEIGHTS, dnnl_memory_desc_get_size(dw_md));
        float *dbias_new = key->bias ? slot(SLOT_BIAS, (size_t)key->out_c * sizeof(float)) : NULL;
        dnnl_memory_t m_src = memory(src_md, src), m_ddst = memory(ddst_md, ddst), m_dw = memory(dw_md, dweights);
        dnnl_memory_t m_db = key->bias ? memory(&p->user_bias, dbias_new) : NULL;
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m_src},
                                   {DNNL_ARG_DIFF_DST, m_ddst},
                                   {DNNL_ARG_DIFF_WEIGHTS, m_dw},
                                   {DNNL_ARG_DIFF_BIAS, m_db}};
        execute(p->bwd_weights, key->bias ? 4 : 3, args);
        dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_ddst), dnnl_memory_destroy(m_dw);
        if (m_db) dnnl_memory_destroy(m_db);
        if (dw) reorder(dw_md, dweights, &p->user_weights, dw, true);
        if (dbias)
            for (int64_t c = 0; c < key->out_c; c++) dbias[c] += dbias_new[c];
    }
    if (dx) {
        const dnnl_memory_desc_t *want = query(p->bwd_data_pd, dnnl_query_diff_dst_md);
        if (!ddst_md || !dnnl_memory_desc_equal(ddst_md, want)) ddst = as_layout(&p->user_dst, dy, want, SLOT_DST);
        ddst_md = want;
        const dnnl_memory_desc_t *w_md = query(p->bwd_data_pd, dnnl_query_weights_md);
        const dnnl_memory_desc_t *dsrc_md = query(p->bwd_data_pd, dnnl_query_diff_src_md);
        const void *weights = as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
        void *dsrc = slot(SLOT_DIFF, dnnl_memory_desc_get_size(dsrc_md));
        dnnl_memory_t m_ddst = memory(ddst_md, ddst), m_w = memory(w_md, weights), m_dsrc = memory(dsrc_md, dsrc);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, m_ddst}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DIFF_SRC, m_dsrc}};
        execute(p->bwd_data, 3, args);
        dnnl_memory_destroy(m_ddst), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dsrc);
        reorder(dsrc_md, dsrc, &p->user_src, dx, true);
    }
    return true;
}

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
    conv_key k = key_of(g, batch, filters, false, bias != NULL, true);
    conv_prims *p = prims_for(&k);
    const dnnl_memory_desc_t *src_md = query(p->fwd_pd, dnnl_query_src_md);
    const dnnl_memory_desc_t *w_md = query(p->fwd_pd, dnnl_query_weights_md);
    const dnnl_memory_desc_t *dst_md = query(p->fwd_pd, dnnl_query_dst_md);
    dnnl_memory_desc_t blocked;
    md_plain(&blocked, k.batch, k.out_c, k.out_h, k.out_w, dnnl_aBcd16b);
    if (!dnnl_memory_desc_equal(dst_md, &blocked) || groups > ND_DNNL_MAX_GROUPS) return false;
    const void *src = as_layout(&p->user_src, x, src_md, SLOT_SRC);
    const void *weights = cached_weights(&p->user_weights, w, w_md);
    float *z = slot(SLOT_DST, dnnl_memory_desc_get_size(dst_md));
    dnnl_memory_t m_src = memory(src_md, src), m_w = memory(w_md, weights), m_dst = memory(dst_md, z);
    dnnl_memory_t m_bias = bias ? memory(&p->user_bias, bias) : NULL;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_BIAS, m_bias}};
    execute(p->fwd, bias ? 4 : 3, args);
    dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dst);
    if (m_bias) dnnl_memory_destroy(m_bias);
    group_norm_act_from_blocked(y, z, batch, k.out_c, k.out_h * k.out_w, groups, norm_weight, norm_bias, eps, act);
    return true;
}

// ---------------------------------------------------------------------------------------------------
// bfloat16 products (ND_PRECISION_BF16, cpu_bf16.h): the same convolutions with bf16 sources, weights and
// output gradients and float32 outputs, input gradients, weight gradients and biases, and matrix products
// as oneDNN matmuls of bf16 copies into float32. The reorders into the primitives' layouts do the rounding
// (to nearest even). Their primitives are cached apart from the float32 ones, by the same keys.

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

// prims_for's primitives with bf16 src, weights and diff_dst.
static conv_prims *bf16_conv_prims(const conv_key *key) {
    for (int i = 0; i < bf16.n_convs; i++)
        if (memcmp(&bf16.convs[i].key, key, sizeof *key) == 0) return &bf16.convs[i];
    dnnl_init();
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
    md_plain(&p->user_src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_nchw);
    md_plain(&p->user_dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_nchw);
    md_plain(&p->user_weights, key->out_c, key->in_c, key->kh, key->kw, key->transposed ? dnnl_iohw : dnnl_oihw);
    dnnl_dims_t bias_dims = {key->out_c};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&p->user_bias, 1, bias_dims, dnnl_f32, dnnl_a));

    dnnl_memory_desc_t src, weights, dst, diff_src, diff_weights, diff_dst;
    md_any(&src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_bf16);
    md_any(&diff_src, key->batch, key->in_c, key->in_h, key->in_w, dnnl_f32);
    md_any(&weights, key->out_c, key->in_c, key->kh, key->kw, dnnl_bf16);
    md_any(&diff_weights, key->out_c, key->in_c, key->kh, key->kw, dnnl_f32);
    md_any(&dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_f32);
    md_any(&diff_dst, key->batch, key->out_c, key->out_h, key->out_w, dnnl_bf16);
    int64_t conv_h = key->transposed ? key->in_h : key->out_h, image_h = key->transposed ? key->out_h : key->in_h;
    int64_t conv_w = key->transposed ? key->in_w : key->out_w, image_w = key->transposed ? key->out_w : key->in_w;
    dnnl_dims_t strides = {key->stride, key->stride}, pad_l = {key->padding, key->padding};
    dnnl_dims_t pad_r = {(conv_h - 1) * key->stride + key->kh - image_h - key->padding,
                         (conv_w - 1) * key->stride + key->kw - image_w - key->padding};
    const dnnl_memory_desc_t *bias_md = key->bias ? &p->user_bias : NULL;
    if (key->transposed) {
        dnnl_deconvolution_desc_t fwd, bwd_data, bwd_weights;
        DNNL_CHECK(dnnl_deconvolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_deconvolution_direct, &src,
                                                        &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL));
        DNNL_CHECK(dnnl_deconvolution_backward_data_desc_init(&bwd_data, dnnl_deconvolution_direct, &diff_src, &weights,
                                                              &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_data_pd, &bwd_data, NULL, dnnl.engine, p->fwd_pd));
        DNNL_CHECK(dnnl_deconvolution_backward_weights_desc_init(
            &bwd_weights, dnnl_deconvolution_direct, &src, &diff_weights, bias_md, &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_weights_pd, &bwd_weights, NULL, dnnl.engine, p->fwd_pd));
    } else {
        dnnl_convolution_desc_t fwd, bwd_data, bwd_weights;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_convolution_direct, &src,
                                                      &weights, bias_md, &dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->fwd_pd, &fwd, NULL, dnnl.engine, NULL));
        DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&bwd_data, dnnl_convolution_direct, &diff_src, &weights,
                                                            &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_data_pd, &bwd_data, NULL, dnnl.engine, p->fwd_pd));
        DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(
            &bwd_weights, dnnl_convolution_direct, &src, &diff_weights, bias_md, &diff_dst, strides, pad_l, pad_r));
        DNNL_CHECK(dnnl_primitive_desc_create(&p->bwd_weights_pd, &bwd_weights, NULL, dnnl.engine, p->fwd_pd));
    }
    p->fwd = make(p->fwd_pd);
    p->bwd_data = make(p->bwd_data_pd);
    p->bwd_weights = make(p->bwd_weights_pd);
    return p;
}

// y = conv(x, w) + bias with the primitives p (their layouts and types read from them).
static void conv_run_forward(const conv_prims *p, float *y, const float *x, const float *w, const float *bias) {
    const dnnl_memory_desc_t *src_md = query(p->fwd_pd, dnnl_query_src_md);
    const dnnl_memory_desc_t *w_md = query(p->fwd_pd, dnnl_query_weights_md);
    const dnnl_memory_desc_t *dst_md = query(p->fwd_pd, dnnl_query_dst_md);
    const void *src = as_layout(&p->user_src, x, src_md, SLOT_SRC);
    const void *weights = as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
    bool direct = dnnl_memory_desc_equal(dst_md, &p->user_dst);
    void *dst = direct ? (void *)y : slot(SLOT_DST, dnnl_memory_desc_get_size(dst_md));
    dnnl_memory_t m_src = memory(src_md, src), m_w = memory(w_md, weights), m_dst = memory(dst_md, dst);
    dnnl_memory_t m_bias = bias ? memory(&p->user_bias, bias) : NULL;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_BIAS, m_bias}};
    execute(p->fwd, bias ? 4 : 3, args);
    dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dst);
    if (m_bias) dnnl_memory_destroy(m_bias);
    if (!direct) reorder(dst_md, dst, &p->user_dst, y, false);
}

// dx += d/dx, dw += d/dw, dbias += d/dbias (each may be NULL) with the primitives p.
static void conv_run_backward(const conv_prims *p, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                              const float *w) {
    const dnnl_memory_desc_t *ddst_md = NULL; // dy in the layout of the primitive that read it last
    const void *ddst = NULL;
    if (dw || dbias) {
        const dnnl_memory_desc_t *src_md = query(p->bwd_weights_pd, dnnl_query_src_md);
        ddst_md = query(p->bwd_weights_pd, dnnl_query_diff_dst_md);
        const dnnl_memory_desc_t *dw_md = query(p->bwd_weights_pd, dnnl_query_diff_weights_md);
        const void *src = as_layout(&p->user_src, x, src_md, SLOT_SRC);
        ddst = as_layout(&p->user_dst, dy, ddst_md, SLOT_DST);
        void *dweights = slot(SLOT_WEIGHTS, dnnl_memory_desc_get_size(dw_md));
        float *dbias_new = p->key.bias ? slot(SLOT_BIAS, (size_t)p->key.out_c * sizeof(float)) : NULL;
        dnnl_memory_t m_src = memory(src_md, src), m_ddst = memory(ddst_md, ddst), m_dw = memory(dw_md, dweights);
        dnnl_memory_t m_db = p->key.bias ? memory(&p->user_bias, dbias_new) : NULL;
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m_src},
                                   {DNNL_ARG_DIFF_DST, m_ddst},
                                   {DNNL_ARG_DIFF_WEIGHTS, m_dw},
                                   {DNNL_ARG_DIFF_BIAS, m_db}};
        execute(p->bwd_weights, p->key.bias ? 4 : 3, args);
        dnnl_memory_destroy(m_src), dnnl_memory_destroy(m_ddst), dnnl_memory_destroy(m_dw);
        if (m_db) dnnl_memory_destroy(m_db);
        if (dw) reorder(dw_md, dweights, &p->user_weights, dw, true);
        if (dbias)
            for (int64_t c = 0; c < p->key.out_c; c++) dbias[c] += dbias_new[c];
    }
    if (dx) {
        const dnnl_memory_desc_t *want = query(p->bwd_data_pd, dnnl_query_diff_dst_md);
        if (!ddst_md || !dnnl_memory_desc_equal(ddst_md, want)) ddst = as_layout(&p->user_dst, dy, want, SLOT_DST);
        ddst_md = want;
        const dnnl_memory_desc_t *w_md = query(p->bwd_data_pd, dnnl_query_weights_md);
        const dnnl_memory_desc_t *dsrc_md = query(p->bwd_data_pd, dnnl_query_diff_src_md);
        const void *weights = as_layout(&p->user_weights, w, w_md, SLOT_WEIGHTS);
        void *dsrc = slot(SLOT_DIFF, dnnl_memory_desc_get_size(dsrc_md));
        dnnl_memory_t m_ddst = memory(ddst_md, ddst), m_w = memory(w_md, weights), m_dsrc = memory(dsrc_md, dsrc);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_DIFF_DST, m_ddst}, {DNNL_ARG_WEIGHTS, m_w}, {DNNL_ARG_DIFF_SRC, m_dsrc}};
        execute(p->bwd_data, 3, args);
        dnnl_memory_destroy(m_ddst), dnnl_memory_destroy(m_w), dnnl_memory_destroy(m_dsrc);
        reorder(dsrc_md, dsrc, &p->user_src, dx, true);
    }
}

bool nd_cpu_conv_forward_bf16(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                              int64_t batch, int64_t filters, bool transposed, bool inference) {
    (void)inference; // the bf16 primitives take oneDNN's default algorithm whether or not a backward follows
    conv_key key = key_of(g, batch, filters, transposed, bias != NULL, false);
    conv_run_forward(bf16_conv_prims(&key), y, x, w, bias);
    return true;
}

bool nd_cpu_conv_backward_bf16(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                               const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias) {
    conv_key key = key_of(g, batch, filters, transposed, bias, false);
    if ((dw || dbias) && !nd_cpu_conv_bf16_weights_pay(key.in_c, key.out_c, transposed)) {
        nd_cpu_conv_backward(NULL, dw, dbias, dy, x, w, g, batch, filters, transposed, bias);
        dw = dbias = NULL;
    }
    if (dx || dw || dbias) conv_run_backward(bf16_conv_prims(&key), dx, dw, dbias, dy, x, w);
    return true;
}

// A dense bf16 copy of `count` matrices of rows x cols floats (row stride ld, `stride` apart) in slot `which`.
static uint16_t *pack_bf16(int which, const float *src, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                           int64_t count) {
    uint16_t *dst = slot(which, (size_t)(count * rows * cols) * sizeof(uint16_t));
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
    dnnl_init();
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
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, dnnl.engine, NULL));
    p->prim = make(pd);
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
        dnnl_memory_t m_a = memory(&p->a, ai), m_b = memory(&p->b, bi), m_c = memory(&p->c, c + i * stride_c);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m_a}, {DNNL_ARG_WEIGHTS, m_b}, {DNNL_ARG_DST, m_c}};
        execute(p->prim, 3, args);
        dnnl_memory_destroy(m_a), dnnl_memory_destroy(m_b), dnnl_memory_destroy(m_c);
    }
}
