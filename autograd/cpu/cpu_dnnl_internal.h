// What the oneDNN files share (cpu_dnnl.c: float32 convolutions; cpu_dnnl_bf16.c: bfloat16 convolutions and
// matrix products): the convolution key and primitives, the grow-only buffers, and the small wrappers around
// oneDNN's C API. Private to autograd/cpu; built only with ND_WITH_DNNL.
#ifndef ND_CPU_DNNL_INTERNAL_H
#define ND_CPU_DNNL_INTERNAL_H

#include <dnnl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

// Cache sizes: a U-Net has about a dozen convolution shapes per batch size. A full cache replaces its
// entries in turn (a program that keeps changing shapes pays the creation again, nothing else).
#define ND_DNNL_MAX_SHAPES 64

// Aborts with the call, its status and where it was made when a oneDNN call fails (which only a bug does:
// every shape reaching these files has been checked by the op).
void nd_dnnl_check(dnnl_status_t status, const char *call, const char *file, int line);
#define DNNL_CHECK(call) nd_dnnl_check((call), #call, __FILE__, __LINE__)

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
    int winograd; // fwd is oneDNN's Winograd (an inference 3x3 where oneDNN has one for the shape)
} conv_prims;

// Blocked copies of one call's tensors: source, weights, destination (or their gradients).
enum { SLOT_SRC, SLOT_WEIGHTS, SLOT_DST, SLOT_DIFF, SLOT_BIAS, N_SLOTS };

// The CPU engine and its stream, created on first use.
void nd_dnnl_init(void);
dnnl_engine_t nd_dnnl_engine(void);

// Buffer `which` (an N_SLOTS index), grown to at least `bytes`; its contents do not survive a growth.
void *nd_dnnl_slot(int which, size_t bytes);

// md = a 4-d float32 tensor (a, b, c, d) in the layout `tag`.
void nd_dnnl_md_plain(dnnl_memory_desc_t *md, int64_t a, int64_t b, int64_t c, int64_t d, dnnl_format_tag_t tag);

// A memory object over ptr (destroyed by the caller), and a primitive run to completion.
dnnl_memory_t nd_dnnl_memory(const dnnl_memory_desc_t *md, const void *ptr);
void nd_dnnl_execute(dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args);

// to (layout `to_md`) = from (layout `from_md`), or += with `accumulate`; the reorders are cached.
void nd_dnnl_reorder(const dnnl_memory_desc_t *from_md, const void *from, const dnnl_memory_desc_t *to_md, void *to,
                     bool accumulate);

// `ptr` in the primitive's layout `want`: itself when the layouts agree, else a copy in slot `which`.
const void *nd_dnnl_as_layout(const dnnl_memory_desc_t *have, const void *ptr, const dnnl_memory_desc_t *want,
                              int which);

const dnnl_memory_desc_t *nd_dnnl_query(dnnl_primitive_desc_t pd, dnnl_query_t what);
dnnl_primitive_t nd_dnnl_make(dnnl_primitive_desc_t pd);

// The key of a convolution given as its windows: conv2d's over x (channels = in_c), or, transposed, those
// of a conv2d over the output (channels = out_c; see ops_conv.c); `filters` is the weight's other channel count.
conv_key nd_dnnl_key_of(const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias,
                        bool inference);

// oneDNN's strides and paddings of the key's convolution (pad_r: the far side's, which makes the sizes agree).
void nd_dnnl_conv_geometry(const conv_key *key, dnnl_dims_t strides, dnnl_dims_t pad_l, dnnl_dims_t pad_r);

// The cached primitives of a convolution's key, made on first use (the oldest evicted past the cache's size).
conv_prims *nd_dnnl_prims_for(const conv_key *key);
// Weights w (plain layout `have`) in the primitive's layout `want`, cached between inference calls and
// checked against w at every call.
const void *nd_dnnl_cached_weights(const dnnl_memory_desc_t *have, const float *w, const dnnl_memory_desc_t *want);
// Whether our Winograd (cpu_winograd.c) runs this convolution rather than oneDNN.
bool nd_dnnl_winograd_is_ours(const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias,
                              bool inference);

// y = conv(x, w) + bias (bias may be NULL) with the primitives p, their layouts and types read from them;
// an inference key's weights come from the float32 file's cache of blocked weights.
void nd_dnnl_conv_run_forward(const conv_prims *p, float *y, const float *x, const float *w, const float *bias);

// dx += d/dx, dw += d/dw, dbias += d/dbias (each may be NULL) for the output gradient dy, with p's backward
// primitives.
void nd_dnnl_conv_run_backward(const conv_prims *p, float *dx, float *dw, float *dbias, const float *dy, const float *x,
                               const float *w);

#endif
