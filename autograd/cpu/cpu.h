// The CPU backend's functions (OpenBLAS for products, OpenMP for loops); see backend.h for each contract.
#ifndef ND_CPU_H
#define ND_CPU_H

#include "../backend.h"

// Loops shorter than this run on one thread: starting a parallel region costs more than they do.
#define ND_CPU_PARALLEL_MIN 32768

// One loop per kind, so each inlines its own formula and vectorizes (a switch inside the loop would not).
#define ND_UNARY_CASES(LOOP)                                                                                           \
    case ND_UNARY_AFFINE: LOOP(ND_UNARY_AFFINE); break;                                                                \
    case ND_UNARY_RECIP: LOOP(ND_UNARY_RECIP); break;                                                                  \
    case ND_UNARY_NEG: LOOP(ND_UNARY_NEG); break;                                                                      \
    case ND_UNARY_EXP: LOOP(ND_UNARY_EXP); break;                                                                      \
    case ND_UNARY_LOG: LOOP(ND_UNARY_LOG); break;                                                                      \
    case ND_UNARY_SQRT: LOOP(ND_UNARY_SQRT); break;                                                                    \
    case ND_UNARY_SQUARE: LOOP(ND_UNARY_SQUARE); break;                                                                \
    case ND_UNARY_RELU: LOOP(ND_UNARY_RELU); break;                                                                    \
    case ND_UNARY_GELU: LOOP(ND_UNARY_GELU); break;                                                                    \
    case ND_UNARY_SILU: LOOP(ND_UNARY_SILU); break;                                                                    \
    case ND_UNARY_SIGMOID: LOOP(ND_UNARY_SIGMOID); break;                                                              \
    case ND_UNARY_TANH: LOOP(ND_UNARY_TANH); break;                                                                    \
    case ND_UNARY_SIN: LOOP(ND_UNARY_SIN); break;                                                                      \
    case ND_UNARY_COS: LOOP(ND_UNARY_COS); break;                                                                      \
    default: break;

// The CPU implementation of every entry of backend_list.h: nd_cpu_<name>.
#define ND_BACKEND_ENTRY(ret, entry, params) ret nd_cpu_##entry params;
#include "../backend_list.h"

// *buffer grown to at least `bytes` (a fresh mapping; the old contents are not kept), *have its size: the
// grow-only scratch of the convolution paths. Out of memory aborts with `what` in the message.
void *nd_cpu_grow_mapped(void **buffer, size_t *have, size_t bytes, const char *what);

// Our Winograd F(4x4, 3x3) convolutions (cpu_winograd.c), for conv_forward of an inference conv2d.
// Whether a convolution runs them: never (the shape does not qualify: not inference, not 3x3 stride 1
// padding 1, or transposed; or ND_CONV_WINOGRAD=0; or, unset, fewer than 16 input channels),
// always (ND_CONV_WINOGRAD=1), or unless the convolution library has a Winograd of its own for the shape.
// `filters`: the output channels.
typedef enum nd_winograd_choice {
    ND_WINOGRAD_NEVER,
    ND_WINOGRAD_ALWAYS,
    ND_WINOGRAD_UNLESS_LIBRARY,
} nd_winograd_choice;
nd_winograd_choice nd_cpu_winograd_choice(const nd_conv_geom *g, int64_t filters, bool transposed, bool inference);
// y (batch, out_c, h, w) = conv2d(x (batch, in_c, h, w), w (out_c, in_c, 3, 3), stride 1, padding 1) + bias
// (out_c, or NULL), with the transformed weights cached between calls (checked against w at every call).
void nd_cpu_winograd_conv_forward(float *y, const float *x, const float *w, const float *bias, int64_t batch,
                                  int64_t in_c, int64_t out_c, int64_t h, int64_t width);
// Bytes held outside the arenas: the scratch of a chunk of tiles and the cached filters.
size_t nd_cpu_winograd_bytes(void);

#endif
