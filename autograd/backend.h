// The backend interface: what an op asks of a device. The entries and their contracts are listed once, in
// backend_list.h; this header holds the types they take and the struct generated from the list.
#ifndef ND_BACKEND_H
#define ND_BACKEND_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nd_binary_kind { ND_BINARY_ADD, ND_BINARY_SUB, ND_BINARY_MUL, ND_BINARY_DIV } nd_binary_kind;

// Broadcast indexing for an output of `ndim` dims: element offsets of each input are
// sum_k idx[k] * a_stride[k] (0 where that input broadcasts along dim k).
typedef struct nd_bcast {
    int ndim;
    int64_t shape[ND_MAX_DIMS];
    int64_t a_stride[ND_MAX_DIMS];
    int64_t b_stride[ND_MAX_DIMS];
    int64_t numel;
} nd_bcast;

// Sum of `src` (shape src_shape) into `dst`, whose keepdim shape has 1 in every reduced dim.
typedef struct nd_reduce_plan {
    int ndim;
    int64_t src_shape[ND_MAX_DIMS];
    int64_t dst_shape[ND_MAX_DIMS]; // src_shape with reduced dims set to 1
} nd_reduce_plan;

// A reduce plan from src to a keepdim destination shape of the same rank.
nd_reduce_plan nd_reduce_plan_make(nd_shape src, nd_shape dst_keepdim);

// Sliding windows over an image (channels, height, width): a kernel_h x kernel_w window moved by `stride`
// over the image padded with `padding` zeros on every side, visiting out_h x out_w positions.
typedef struct nd_conv_geom {
    int64_t channels, height, width;
    int64_t kernel_h, kernel_w, stride, padding;
    int64_t out_h, out_w;
} nd_conv_geom;

// One pointer per entry of backend_list.h, in its order. The missing-entry check, shared by both backends: each
// table (cpu/cpu_backend.c, cuda/cuda_backend.cu) is generated from the same list, positionally, binding entry
// <name> to nd_cpu_<name> or nd_cuda_<name>, whose prototypes are generated from it too. So no slot can be
// left unset or filled with the wrong signature: an entry a backend does not implement is an undefined
// reference when nanodiff links, one implemented with other parameters a compile error.
typedef struct nd_backend {
    const char *name;
#define ND_BACKEND_ENTRY(ret, entry, params) ret(*entry) params;
#include "backend_list.h"
} nd_backend;

const nd_backend *nd_backend_cpu(void);
// The CPU backend with matrix products and convolutions in bfloat16 (ND_PRECISION_BF16): inputs rounded to
// bf16, float32 accumulation and outputs; NULL, with why, where this build or CPU cannot run them.
const nd_backend *nd_backend_cpu_bf16(char *why, size_t size);
// NULL when nanodiff was built without CUDA.
const nd_backend *nd_backend_cuda(void);
// The backend of `device`.
const nd_backend *nd_backend_for(nd_device device);

#ifdef __cplusplus
}
#endif
#endif
