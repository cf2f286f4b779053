// nanodiff autograd: float32 tensors, a per-step arena, a tape of ops and reverse-mode backward.
//
// Every op takes a context (arena, tape, grad mode, device, RNG), checks shapes, allocates its output
// from the step arena, runs the backend forward, and records a tape node when any input needs a gradient.
// nd_backward(ctx, loss) walks the tape in reverse and accumulates into the inputs' .grad buffers.
// Ops are macros that pass the caller's source location, so a shape error names the line that caused it.
#ifndef ND_AUTOGRAD_H
#define ND_AUTOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
#define ND_NORETURN [[noreturn]]
extern "C" {
#else
#define ND_NORETURN _Noreturn
#endif

#define ND_MAX_DIMS 6
// Elements of an array (not a pointer).
#define ND_COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))
#define ND_NODE_MAX_INPUTS 8

// ---------------------------------------------------------------------------------------------------
// shapes, tensors, devices

typedef enum { ND_CPU = 0, ND_CUDA = 1 } nd_device;

typedef struct nd_shape {
    int ndim;
    int64_t d[ND_MAX_DIMS];
} nd_shape;

// ND_SHAPE(2, 3, 4) builds an nd_shape from its dimensions.
#define ND_SHAPE(...)                                                                                                  \
    nd_shape_from((const int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

// A tensor handle: float32, contiguous, row-major. It never owns its storage: data and grad point into an
// arena, a persistent pool or a flat parameter buffer.
typedef struct nd_tensor {
    float *data;
    float *grad; // NULL unless the tensor takes part in backward
    nd_shape shape;
    int64_t numel;
    nd_device device;
    bool requires_grad;
} nd_tensor;

typedef struct nd_loc {
    const char *file;
    int line;
} nd_loc;
#define ND_HERE ((nd_loc){__FILE__, __LINE__})

nd_shape nd_shape_from(const int64_t *dims, int ndim);
int64_t nd_shape_numel(nd_shape s);
bool nd_shape_equal(nd_shape a, nd_shape b);
// Writes "(2,3,4)" into buf; returns buf.
char *nd_shape_str(nd_shape s, char *buf, size_t size);
const char *nd_device_name(nd_device d);

// Programmer errors: print the op, what went wrong and where, then abort.
ND_NORETURN void nd_abort_at(nd_loc loc, const char *op, const char *fmt, ...);
ND_NORETURN void nd_abort_shapes(nd_loc loc, const char *op, const char *what, nd_shape a, nd_shape b);

// ---------------------------------------------------------------------------------------------------
// memory: a bump arena over one block of device memory plus one block of host memory for the handles.
// When a step needs more than the block holds, the overflow is served from extra blocks and the next
// reset replaces everything with one block large enough for the peak: from then on no allocation happens
// and every step gets the same addresses.

typedef struct nd_arena_block nd_arena_block;
typedef struct nd_arena {
    nd_device device;
    char *data; // device memory block
    size_t data_cap, data_used, data_peak;
    char *meta; // host memory block (tensor handles, node input lists)
    size_t meta_cap, meta_used, meta_peak;
    nd_arena_block *overflow; // extra blocks taken since the last reset
} nd_arena;

void nd_arena_init(nd_arena *a, nd_device device, size_t data_bytes, size_t meta_bytes);
void nd_arena_free(nd_arena *a);
void *nd_arena_alloc_data(nd_arena *a, size_t bytes);
void *nd_arena_alloc_meta(nd_arena *a, size_t bytes);
void nd_arena_reset(nd_arena *a);

// A point in an arena's history: releasing to it frees everything allocated since, in LIFO order (for
// scoped use of the persistent pool, e.g. the x_t of one sampling run).
typedef struct nd_arena_mark {
    size_t data_used, meta_used;
    nd_arena_block *overflow;
} nd_arena_mark;

nd_arena_mark nd_arena_get_mark(const nd_arena *a);
void nd_arena_release(nd_arena *a, nd_arena_mark mark);

// ---------------------------------------------------------------------------------------------------
// counter-based random numbers (Philox4x32-10): draw i of a request at offset o is a pure function of
// (seed, o + i), so the same numbers come out on every backend and after a resume.

typedef struct nd_rng {
    uint64_t seed;
    uint64_t offset; // advanced by every draw
} nd_rng;

// ---------------------------------------------------------------------------------------------------
// the tape

struct nd_ctx;
struct nd_node;
typedef void (*nd_backward_fn)(struct nd_ctx *ctx, struct nd_node *node);

typedef struct nd_node {
    const char *op;
    nd_backward_fn backward; // NULL for views that share their input's storage and gradient
    nd_tensor *out;
    nd_tensor *in[ND_NODE_MAX_INPUTS];
    int n_in;
    int64_t iarg[8]; // integer attributes saved for backward (axes, flags, sizes)
    float farg[4];   // float attributes saved for backward
    float *saved;    // extra buffer saved for backward (arena), op-specific
    double flops;    // floating-point work of the forward, when profiling
} nd_node;

typedef struct nd_tape {
    nd_node *nodes;
    int n, cap;
} nd_tape;

// ---------------------------------------------------------------------------------------------------
// the context

// What a context's matrix products (matmul, linear, attention) and convolutions compute with. f32: float32
// throughout. bf16 (the CPU with AVX512_BF16; nd_ctx_set_precision): their inputs rounded to bfloat16 (to
// nearest even), accumulation and outputs float32, as torch.autocast('cpu', dtype=torch.bfloat16); tensors,
// weights, gradients, norms, softmax, losses, reductions and the optimizer stay float32.
typedef enum nd_precision { ND_PRECISION_F32, ND_PRECISION_BF16 } nd_precision;

struct nd_backend;
typedef struct nd_ctx {
    nd_device device;
    const struct nd_backend *be;
    nd_arena step; // activations and temporaries; reset by nd_ctx_step_end
    nd_arena pool; // tensors that outlive a step; reset only by the owner
    nd_tape tape;
    bool grad_enabled;
    nd_rng rng;
    // Bound in bytes on the column scratch of one chunk of images in a convolution (0: the default, sized
    // to stay in the CPU's last-level cache). Lower saves memory; one image per chunk is the floor.
    size_t conv_chunk_bytes;
    // Convolutions as im2col + GEMM even where the backend has a convolution library (tests of that path).
    bool conv_gemm;
    // Of the products: f32 unless nd_ctx_set_precision chose another (be is then the device's bf16 backend).
    nd_precision precision;
    // Called by layers with their output when set (model summaries); NULL in normal runs.
    void (*trace)(void *user, const char *module, const nd_tensor *out);
    void *trace_user;
    struct nd_profile *profile; // per-op timings when profiling (nd_profile_begin), else NULL
    // --check-numerics: every op's output is checked for NaN/inf as it is made (a download each: slow);
    // numerics_first describes the first that was not finite (empty: none yet), numerics_ops counts the ops.
    bool check_numerics;
    char numerics_first[192];
    int64_t numerics_ops;
} nd_ctx;

// Per-op profile (F.* equivalents: torch.profiler's key_averages table): from nd_profile_begin on, every
// op's forward and backward time and calls are summed by op name; nd_profile_report prints them (slowest
// first, with GFLOP/s where the op reports its work) and stops profiling.
typedef struct nd_profile nd_profile;
void nd_profile_begin(nd_ctx *ctx);
void nd_profile_report(nd_ctx *ctx, FILE *out);

// Reports a module's output to ctx->trace, when one is set.
static inline void nd_trace(nd_ctx *ctx, const char *module, const nd_tensor *out) {
    if (ctx->trace) ctx->trace(ctx->trace_user, module, out);
}

// Restarts the program (execv of itself, same argv) with OMP_WAIT_POLICY=passive unless that variable is set,
// so OpenMP threads sleep at barriers instead of spinning; call first thing in main. Returns only when no
// restart was needed or possible.
void nd_threads_prefer_passive(char **argv);

// step_bytes: initial size of the step arena (it grows to the first step's peak and then stays).
void nd_ctx_init(nd_ctx *ctx, nd_device device, size_t step_bytes, uint64_t seed);
void nd_ctx_free(nd_ctx *ctx);
// Drops the tape and every step tensor. Call after the optimizer step.
void nd_ctx_step_end(nd_ctx *ctx);
// Returns the previous grad mode.
bool nd_ctx_set_grad(nd_ctx *ctx, bool enabled);
// Peak bytes of the step arena since init, host and device memory together, plus what the backend holds
// for its libraries (oneDNN's blocked convolution buffers, shared by every context of the process).
size_t nd_ctx_peak_bytes(const nd_ctx *ctx);

// The CUDA device. Every build answers; one without CUDA reports "built without CUDA".
// True when a GPU can run this build's kernels; otherwise false, with the reason in why (may be NULL).
// nd_ctx_init on ND_CUDA aborts with that reason at its first allocation: ask here first to fall back.
bool nd_cuda_available(char *why, size_t size);
// One line naming the GPU, its compute capability and memory (or why none is usable).
void nd_cuda_describe(char *buf, size_t size);
// TF32 tensor-core math for cuBLAS products: on by default (as PyTorch's convolutions); off gives FP32.
void nd_cuda_set_tf32(bool on);

// ---------------------------------------------------------------------------------------------------
// tensor creation and transfer

nd_tensor *nd_empty_in(nd_ctx *ctx, nd_arena *arena, nd_shape shape);
// New tensors in the step arena.
nd_tensor *nd_empty(nd_ctx *ctx, nd_shape shape);
nd_tensor *nd_zeros(nd_ctx *ctx, nd_shape shape);
nd_tensor *nd_full(nd_ctx *ctx, nd_shape shape, float value);
nd_tensor *nd_from_host(nd_ctx *ctx, nd_shape shape, const float *host);
// Scratch of n floats from the step arena on the context's device (no handle, no gradient).
float *nd_scratch(nd_ctx *ctx, int64_t n);
// New tensors in the persistent pool.
nd_tensor *nd_empty_persistent(nd_ctx *ctx, nd_shape shape);
// Gives a leaf tensor a zeroed gradient buffer (from the arena that holds it) and marks it.
void nd_requires_grad(nd_ctx *ctx, nd_tensor *t, bool persistent);

void nd_copy_from_host(nd_ctx *ctx, nd_tensor *t, const float *host);
void nd_copy_to_host(nd_ctx *ctx, const nd_tensor *t, float *host);
void nd_grad_to_host(nd_ctx *ctx, const nd_tensor *t, float *host);
void nd_fill(nd_ctx *ctx, nd_tensor *t, float value);
// Reads a single-element tensor.
float nd_item(nd_ctx *ctx, const nd_tensor *t);

// Uploads of the next data batch that run while the current step computes (on the GPU: page-locked staging
// and a copy stream; on the CPU: plain copies). Puts and takes alternate between two lanes, and at most two
// puts may be waiting: put batch k + 1 right after taking batch k, then run step k.
typedef struct nd_prefetch {
    nd_ctx *ctx;
    size_t capacity;     // bytes of one lane
    void *host[2];       // staging (from the backend's host_alloc)
    float *device[2];    // where each lane's upload lands
    size_t bytes[2];     // bytes put in each lane
    int64_t puts, takes; // counts; lane = count % 2
} nd_prefetch;

void nd_prefetch_init(nd_prefetch *p, nd_ctx *ctx, size_t capacity_bytes);
// Copies src into the next lane's staging and starts its upload; returns without waiting for it.
void nd_prefetch_put(nd_prefetch *p, const float *src, size_t bytes);
// The oldest batch not yet taken, as a new step-arena tensor of `shape` whose size must be the bytes put;
// the kernels queued after this call see the uploaded data.
nd_tensor *nd_prefetch_take(nd_prefetch *p, nd_shape shape);
void nd_prefetch_free(nd_prefetch *p);

void nd_rand_uniform(nd_ctx *ctx, nd_tensor *t, float low, float high);
void nd_rand_normal(nd_ctx *ctx, nd_tensor *t, float mean, float std);
// Each element is 1 with probability p, else 0.
void nd_rand_bernoulli(nd_ctx *ctx, nd_tensor *t, float p);

// ---------------------------------------------------------------------------------------------------
// backward

// Seeds d(loss)/d(loss) = 1 for a one-element loss and runs the tape in reverse. Gradients accumulate into
// the leaves (nd_requires_grad, parameters); an op output's gradient exists only while backward needs it
// (its buffer is reused once spent) and is NULL afterwards, as PyTorch keeps .grad for leaves only.
#define nd_backward(ctx, loss) nd_backward_at(ctx, loss, ND_HERE)
void nd_backward_at(nd_ctx *ctx, nd_tensor *loss, nd_loc loc);

// ---------------------------------------------------------------------------------------------------
// ops. Each matches the PyTorch function named beside it.

// Elementwise with NumPy/PyTorch broadcasting.
#define nd_add(ctx, a, b) nd_add_at(ctx, a, b, ND_HERE) // torch.add
#define nd_sub(ctx, a, b) nd_sub_at(ctx, a, b, ND_HERE) // torch.sub
#define nd_mul(ctx, a, b) nd_mul_at(ctx, a, b, ND_HERE) // torch.mul
#define nd_div(ctx, a, b) nd_div_at(ctx, a, b, ND_HERE) // torch.div
nd_tensor *nd_add_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc);
nd_tensor *nd_sub_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc);
nd_tensor *nd_mul_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc);
nd_tensor *nd_div_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc);

// Scalar forms: x + s, x - s, s - x, x * s, x / s, s / x.
#define nd_add_scalar(ctx, x, s) nd_unary_at(ctx, ND_UNARY_AFFINE, x, 1.0f, (s), ND_HERE)
#define nd_sub_scalar(ctx, x, s) nd_unary_at(ctx, ND_UNARY_AFFINE, x, 1.0f, -(s), ND_HERE)
#define nd_rsub_scalar(ctx, x, s) nd_unary_at(ctx, ND_UNARY_AFFINE, x, -1.0f, (s), ND_HERE)
#define nd_mul_scalar(ctx, x, s) nd_unary_at(ctx, ND_UNARY_AFFINE, x, (s), 0.0f, ND_HERE)
#define nd_div_scalar(ctx, x, s) nd_unary_at(ctx, ND_UNARY_AFFINE, x, 1.0f / (s), 0.0f, ND_HERE)
#define nd_rdiv_scalar(ctx, x, s) nd_unary_at(ctx, ND_UNARY_RECIP, x, (s), 0.0f, ND_HERE)

typedef enum nd_unary_kind {
    ND_UNARY_AFFINE, // alpha * x + beta
    ND_UNARY_RECIP,  // alpha / x
    ND_UNARY_NEG,
    ND_UNARY_EXP,
    ND_UNARY_LOG,
    ND_UNARY_SQRT,
    ND_UNARY_SQUARE,
    ND_UNARY_RELU,
    ND_UNARY_GELU, // erf form, as torch.nn.functional.gelu(approximate='none')
    ND_UNARY_SILU,
    ND_UNARY_SIGMOID,
    ND_UNARY_TANH,
    ND_UNARY_SIN,
    ND_UNARY_COS,
    ND_UNARY_COUNT
} nd_unary_kind;

const char *nd_unary_name(nd_unary_kind kind);
nd_tensor *nd_unary_at(nd_ctx *ctx, nd_unary_kind kind, nd_tensor *x, float alpha, float beta, nd_loc loc);
#define nd_neg(ctx, x) nd_unary_at(ctx, ND_UNARY_NEG, x, 0.0f, 0.0f, ND_HERE)         // torch.neg
#define nd_exp(ctx, x) nd_unary_at(ctx, ND_UNARY_EXP, x, 0.0f, 0.0f, ND_HERE)         // torch.exp
#define nd_log(ctx, x) nd_unary_at(ctx, ND_UNARY_LOG, x, 0.0f, 0.0f, ND_HERE)         // torch.log
#define nd_sqrt(ctx, x) nd_unary_at(ctx, ND_UNARY_SQRT, x, 0.0f, 0.0f, ND_HERE)       // torch.sqrt
#define nd_square(ctx, x) nd_unary_at(ctx, ND_UNARY_SQUARE, x, 0.0f, 0.0f, ND_HERE)   // torch.square
#define nd_relu(ctx, x) nd_unary_at(ctx, ND_UNARY_RELU, x, 0.0f, 0.0f, ND_HERE)       // F.relu
#define nd_gelu(ctx, x) nd_unary_at(ctx, ND_UNARY_GELU, x, 0.0f, 0.0f, ND_HERE)       // F.gelu
#define nd_silu(ctx, x) nd_unary_at(ctx, ND_UNARY_SILU, x, 0.0f, 0.0f, ND_HERE)       // F.silu
#define nd_sigmoid(ctx, x) nd_unary_at(ctx, ND_UNARY_SIGMOID, x, 0.0f, 0.0f, ND_HERE) // torch.sigmoid
#define nd_tanh(ctx, x) nd_unary_at(ctx, ND_UNARY_TANH, x, 0.0f, 0.0f, ND_HERE)       // torch.tanh
#define nd_sin(ctx, x) nd_unary_at(ctx, ND_UNARY_SIN, x, 0.0f, 0.0f, ND_HERE)         // torch.sin
#define nd_cos(ctx, x) nd_unary_at(ctx, ND_UNARY_COS, x, 0.0f, 0.0f, ND_HERE)         // torch.cos

// Reductions. axes: n_axes entries, negative counts from the end; keepdim as PyTorch.
#define nd_sum(ctx, x, axes, n_axes, keepdim) nd_reduce_at(ctx, x, axes, n_axes, keepdim, false, ND_HERE)
#define nd_mean(ctx, x, axes, n_axes, keepdim) nd_reduce_at(ctx, x, axes, n_axes, keepdim, true, ND_HERE)
#define nd_sum_all(ctx, x) nd_reduce_at(ctx, x, NULL, 0, false, false, ND_HERE) // torch.sum(x)
#define nd_mean_all(ctx, x) nd_reduce_at(ctx, x, NULL, 0, false, true, ND_HERE) // torch.mean(x)
// n_axes == 0 reduces over every axis to a 0-d (one element) tensor.
nd_tensor *nd_reduce_at(nd_ctx *ctx, nd_tensor *x, const int *axes, int n_axes, bool keepdim, bool mean, nd_loc loc);

// torch.matmul over the last two dims with optional transposes; leading (batch) dims must be equal,
// or one operand has none and is shared by every batch.
#define nd_matmul(ctx, a, b, trans_a, trans_b) nd_matmul_at(ctx, a, b, trans_a, trans_b, ND_HERE)
nd_tensor *nd_matmul_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, bool trans_a, bool trans_b, nd_loc loc);
// F.linear: x (..., in), weight (out, in), bias (out) or NULL -> (..., out).
#define nd_linear(ctx, x, weight, bias) nd_linear_at(ctx, x, weight, bias, ND_HERE)
nd_tensor *nd_linear_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, nd_loc loc);

// Shape ops. reshape shares storage; the others make contiguous copies.
#define nd_reshape(ctx, x, shape) nd_reshape_at(ctx, x, shape, ND_HERE)       // torch.reshape (one -1 allowed)
#define nd_permute(ctx, x, perm) nd_permute_at(ctx, x, perm, ND_HERE)         // torch.permute (int perm[ndim])
#define nd_transpose(ctx, x, d0, d1) nd_transpose_at(ctx, x, d0, d1, ND_HERE) // torch.transpose
#define nd_concat(ctx, xs, n, axis) nd_concat_at(ctx, xs, n, axis, ND_HERE)   // torch.cat
#define nd_slice(ctx, x, axis, start, end) nd_slice_at(ctx, x, axis, start, end, ND_HERE) // x[..., start:end]
nd_tensor *nd_reshape_at(nd_ctx *ctx, nd_tensor *x, nd_shape shape, nd_loc loc);
nd_tensor *nd_permute_at(nd_ctx *ctx, nd_tensor *x, const int *perm, nd_loc loc);
nd_tensor *nd_transpose_at(nd_ctx *ctx, nd_tensor *x, int d0, int d1, nd_loc loc);
nd_tensor *nd_concat_at(nd_ctx *ctx, nd_tensor *const *xs, int n, int axis, nd_loc loc);
nd_tensor *nd_slice_at(nd_ctx *ctx, nd_tensor *x, int axis, int64_t start, int64_t end, nd_loc loc);

// Softmax family over one axis, and the losses.
#define nd_softmax(ctx, x, axis) nd_softmax_at(ctx, x, axis, false, ND_HERE)    // F.softmax
#define nd_log_softmax(ctx, x, axis) nd_softmax_at(ctx, x, axis, true, ND_HERE) // F.log_softmax
nd_tensor *nd_softmax_at(nd_ctx *ctx, nd_tensor *x, int axis, bool log, nd_loc loc);
// F.cross_entropy(logits (N, C), labels (N), reduction='mean'); labels hold class indices as floats.
#define nd_cross_entropy(ctx, logits, labels) nd_cross_entropy_at(ctx, logits, labels, ND_HERE)
nd_tensor *nd_cross_entropy_at(nd_ctx *ctx, nd_tensor *logits, nd_tensor *labels, nd_loc loc);
// F.mse_loss(a, b, reduction='mean'); shapes must be equal.
#define nd_mse_loss(ctx, a, b) nd_mse_loss_at(ctx, a, b, ND_HERE)
nd_tensor *nd_mse_loss_at(nd_ctx *ctx, nd_tensor *a, nd_tensor *b, nd_loc loc);

// F.embedding: weight (V, D), indices (...) holding row numbers as floats -> (..., D).
#define nd_embedding(ctx, weight, indices) nd_embedding_at(ctx, weight, indices, ND_HERE)
nd_tensor *nd_embedding_at(nd_ctx *ctx, nd_tensor *weight, nd_tensor *indices, nd_loc loc);

// ---------------------------------------------------------------------------------------------------
// convolution family: NCHW images; square stride, padding and factors.

// F.conv2d(x, weight, bias, stride, padding): x (N, C, H, W), weight (O, C, kh, kw), bias (O) or NULL
// -> (N, O, (H + 2 padding - kh) / stride + 1, (W + 2 padding - kw) / stride + 1); no groups or dilation.
#define nd_conv2d(ctx, x, weight, bias, stride, padding) nd_conv2d_at(ctx, x, weight, bias, stride, padding, ND_HERE)
nd_tensor *nd_conv2d_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, int stride, int padding,
                        nd_loc loc);
// act(F.group_norm(F.conv2d(x, weight, bias, stride, padding), num_groups, norm_weight, norm_bias, eps)), the
// course's GELUConvBlock. When nothing needs a gradient the backend may do it in one call (the CPU's oneDNN
// path normalizes the convolution's output while it is in its blocked layout and in cache); otherwise, and
// for backward, it is nd_conv2d then nd_group_norm_act.
#define nd_conv2d_group_norm_act(ctx, x, weight, bias, stride, padding, num_groups, norm_weight, norm_bias, eps, act)  \
    nd_conv2d_group_norm_act_at(ctx, x, weight, bias, stride, padding, num_groups, norm_weight, norm_bias, eps, act,   \
                                ND_HERE)
nd_tensor *nd_conv2d_group_norm_act_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, int stride,
                                       int padding, int num_groups, nd_tensor *norm_weight, nd_tensor *norm_bias,
                                       float eps, nd_unary_kind act, nd_loc loc);
// F.conv_transpose2d(x, weight, bias, stride, padding, output_padding): x (N, C_in, H, W),
// weight (C_in, C_out, kh, kw), bias (C_out) or NULL -> (N, C_out, (H - 1) stride - 2 padding + kh +
// output_padding, likewise for W).
#define nd_conv_transpose2d(ctx, x, weight, bias, stride, padding, output_padding)                                     \
    nd_conv_transpose2d_at(ctx, x, weight, bias, stride, padding, output_padding, ND_HERE)
nd_tensor *nd_conv_transpose2d_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, int stride,
                                  int padding, int output_padding, nd_loc loc);
// F.max_pool2d(x, kernel, stride) without padding: (N, C, H, W) -> (N, C, (H - kernel) / stride + 1, ...).
#define nd_max_pool2d(ctx, x, kernel, stride) nd_max_pool2d_at(ctx, x, kernel, stride, ND_HERE)
nd_tensor *nd_max_pool2d_at(nd_ctx *ctx, nd_tensor *x, int kernel, int stride, nd_loc loc);
// F.pixel_unshuffle(x, factor): (N, C, H, W) -> (N, C * factor^2, H / factor, W / factor).
#define nd_pixel_unshuffle(ctx, x, factor) nd_pixel_unshuffle_at(ctx, x, factor, ND_HERE)
nd_tensor *nd_pixel_unshuffle_at(nd_ctx *ctx, nd_tensor *x, int factor, nd_loc loc);
// F.interpolate(x, scale_factor=factor, mode='nearest'): (N, C, H, W) -> (N, C, H * factor, W * factor).
#define nd_upsample_nearest(ctx, x, factor) nd_upsample_nearest_at(ctx, x, factor, ND_HERE)
nd_tensor *nd_upsample_nearest_at(nd_ctx *ctx, nd_tensor *x, int factor, nd_loc loc);

// ---------------------------------------------------------------------------------------------------
// normalization, dropout and attention. Weight and bias may be NULL (no affine); PyTorch's default eps is
// 1e-5 for every norm, its BatchNorm momentum 0.1.

// F.group_norm(x, num_groups, weight, bias, eps): x (N, C, ...), weight and bias (C) or NULL.
#define nd_group_norm(ctx, x, num_groups, weight, bias, eps)                                                           \
    nd_group_norm_at(ctx, x, num_groups, weight, bias, eps, ND_HERE)
nd_tensor *nd_group_norm_at(nd_ctx *ctx, nd_tensor *x, int num_groups, nd_tensor *weight, nd_tensor *bias, float eps,
                            nd_loc loc);
// act(F.group_norm(x, ...)) as one op, e.g. F.gelu(F.group_norm(...)) with act ND_UNARY_GELU: one pass
// over x for both, and the norm's output is neither kept for backward nor given a gradient (backward makes
// it again from x). act: any unary kind without parameters (not AFFINE or RECIP).
#define nd_group_norm_act(ctx, x, num_groups, weight, bias, eps, act)                                                  \
    nd_group_norm_act_at(ctx, x, num_groups, weight, bias, eps, act, ND_HERE)
nd_tensor *nd_group_norm_act_at(nd_ctx *ctx, nd_tensor *x, int num_groups, nd_tensor *weight, nd_tensor *bias,
                                float eps, nd_unary_kind act, nd_loc loc);
// F.layer_norm(x, (D,), weight, bias, eps): x (..., D) normalized over the last dim, weight and bias (D) or NULL.
#define nd_layer_norm(ctx, x, weight, bias, eps) nd_layer_norm_at(ctx, x, weight, bias, eps, ND_HERE)
nd_tensor *nd_layer_norm_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, float eps, nd_loc loc);
// F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps): x (N, C, H, W), the
// rest (C). Training uses the batch statistics and updates the running ones in place (unbiased variance);
// eval uses the running ones. Running statistics are plain tensors without gradient.
#define nd_batch_norm2d(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps)                      \
    nd_batch_norm2d_at(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps, ND_HERE)
nd_tensor *nd_batch_norm2d_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *weight, nd_tensor *bias, nd_tensor *running_mean,
                              nd_tensor *running_var, bool training, float momentum, float eps, nd_loc loc);
// F.dropout(x, p, training): the mask comes from ctx->rng (reproducible from seed and offset); returns x
// itself when !training or p == 0.
#define nd_dropout(ctx, x, p, training) nd_dropout_at(ctx, x, p, training, ND_HERE)
nd_tensor *nd_dropout_at(nd_ctx *ctx, nd_tensor *x, float p, bool training, nd_loc loc);
// Tensor.masked_fill(mask, value): value where mask != 0; mask's shape is x's trailing dims, no gradient.
#define nd_masked_fill(ctx, x, mask, value) nd_masked_fill_at(ctx, x, mask, value, ND_HERE)
nd_tensor *nd_masked_fill_at(nd_ctx *ctx, nd_tensor *x, nd_tensor *mask, float value, nd_loc loc);
// F.scaled_dot_product_attention(q, k, v, is_causal=causal): q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv)
// -> (..., Lq, Dv), scale 1/sqrt(D); the causal mask is top-left aligned (query i sees keys 0..i).
#define nd_attention(ctx, q, k, v, causal) nd_attention_at(ctx, q, k, v, causal, ND_HERE)
nd_tensor *nd_attention_at(nd_ctx *ctx, nd_tensor *q, nd_tensor *k, nd_tensor *v, bool causal, nd_loc loc);

// ---------------------------------------------------------------------------------------------------
// parameters: every tensor of a model in one flat buffer, every gradient in another.

typedef enum nd_init_kind {
    ND_INIT_ZEROS,
    ND_INIT_ONES,
    ND_INIT_UNIFORM, // U(-bound, bound); PyTorch's Linear/Conv default is bound = 1/sqrt(fan_in)
    ND_INIT_NORMAL,  // N(0, bound^2)
} nd_init_kind;

typedef struct nd_param {
    char *name;        // PyTorch state_dict key, e.g. "down1.model.0.model.0.weight"
    nd_tensor *tensor; // data and grad point into the flat buffers once allocated
    int64_t offset;    // in floats from the start of the flat buffers
    nd_init_kind init;
    float init_bound;
} nd_param;

typedef struct nd_params {
    nd_param *items;
    int n, cap;
    int64_t total; // floats
    nd_device device;
    float *data; // (total,) flat parameters
    float *grad; // (total,) flat gradients
} nd_params;

void nd_params_init(nd_params *p);
void nd_params_free(nd_params *p);
// Registers a parameter; its storage exists after nd_params_alloc. The name is copied.
nd_tensor *nd_params_add(nd_params *p, const char *name, nd_shape shape, nd_init_kind init, float bound);
// Allocates the flat buffers on the context's device and runs every parameter's initializer.
void nd_params_alloc(nd_params *p, nd_ctx *ctx);
void nd_params_zero_grad(nd_params *p, nd_ctx *ctx);
const nd_param *nd_params_find(const nd_params *p, const char *name);

// ---------------------------------------------------------------------------------------------------
// user-facing errors (bad files, flags, fields), as opposed to programmer errors, which abort

// A user-facing error: a message naming the file, the field and what was expected.
typedef struct nd_error {
    char msg[512];
} nd_error;

// Formats into err (when err is not NULL) and returns false, so loaders can `return nd_error_set(...)`.
bool nd_error_set(nd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// ---------------------------------------------------------------------------------------------------
// precision (nd_precision, above)

// "f32" or "bf16"; false for another name.
bool nd_precision_parse(const char *name, nd_precision *precision);
const char *nd_precision_name(nd_precision precision);
// Whether `device` runs `precision` here; else false with why (bf16: the CPU only, with AVX512_BF16 and
// oneDNN; CUDA has TF32 instead).
bool nd_precision_supported(nd_device device, nd_precision precision, nd_error *err);
// Makes ctx's products run in `precision` from its next op on; false with why, ctx unchanged, where
// nd_precision_supported says no.
bool nd_ctx_set_precision(nd_ctx *ctx, nd_precision precision, nd_error *err);

// malloc, calloc and realloc that never return NULL: running out of host memory ends the program with the
// size asked for and the caller's file and line, instead of a crash at the first use of NULL.
#define nd_xmalloc(bytes) nd_xmalloc_at((bytes), __FILE__, __LINE__)
#define nd_xcalloc(count, size) nd_xcalloc_at((count), (size), __FILE__, __LINE__)
#define nd_xrealloc(ptr, bytes) nd_xrealloc_at((ptr), (bytes), __FILE__, __LINE__)
void *nd_xmalloc_at(size_t bytes, const char *file, int line);
void *nd_xcalloc_at(size_t count, size_t size, const char *file, int line);
void *nd_xrealloc_at(void *ptr, size_t bytes, const char *file, int line);

// ---------------------------------------------------------------------------------------------------
// FNV-1a hashing: fingerprints that are the same on every machine and in every release (checkpoints record
// a CLIP's content hash, the evaluation cache names files by a hash of the data set's path)

#define ND_FNV1A64_OFFSET 0xcbf29ce484222325ull
#define ND_FNV1A32_OFFSET 2166136261u

// FNV-1a 64 of n bytes, continuing from h: start from ND_FNV1A64_OFFSET; bytes hashed in pieces, each
// continuing from the last's value, hash as the whole.
static inline uint64_t nd_fnv1a64(uint64_t h, const void *bytes, size_t n) {
    const unsigned char *p = (const unsigned char *)bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// FNV-1a 32, the same over 32-bit words: start from ND_FNV1A32_OFFSET.
static inline uint32_t nd_fnv1a32(uint32_t h, const void *bytes, size_t n) {
    const unsigned char *p = (const unsigned char *)bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

// ---------------------------------------------------------------------------------------------------
// device buffers: raw float arrays on a device (a tensor's data, a flat parameter or optimizer buffer)

// dst (n) = src (n), both on the context's device (torch.Tensor.copy_)
void nd_buffer_copy(nd_ctx *ctx, float *dst, const float *src, int64_t n);
// dst (n) = value (torch.Tensor.fill_)
void nd_buffer_fill(nd_ctx *ctx, float *dst, float value, int64_t n);
// host (n) = src (n) on `device` (torch.Tensor.cpu)
void nd_buffer_download(nd_device device, float *host, const float *src, int64_t n);
// dst (n) on `device` = host (n) (torch.Tensor.to)
void nd_buffer_upload(nd_device device, float *dst, const float *host, int64_t n);

#ifdef __cplusplus
}
#endif

// optimizers, learning-rate schedules, gradient norms and the EMA over the flat parameter buffer
#include "nd_optim.h"
#endif
