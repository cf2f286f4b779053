// Shared by the CUDA backend files: checked calls, launch geometry, the two kernel skeletons (grid-stride
// map, block reduction), collapsed index math, the device state and every backend function's declaration.
#ifndef ND_CUDA_COMMON_H
#define ND_CUDA_COMMON_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"

#define ND_CUDA_BLOCK 256     // threads per block of an elementwise map
#define ND_CUDA_ROW_BLOCK 256 // most threads per block of a row reduction (one block per row)
#define ND_CUDA_WARP 32
#define ND_CUDA_MAX_BLOCKS 16384 // fills any current GPU many times over; grid-stride loops cover the rest

// ---------------------------------------------------------------------------------------------------
// checked calls: every CUDA and cuBLAS call site names the call, its file and line, and gives a hint.

// What a user can do about a CUDA error.
static inline const char *nd_cuda_hint(cudaError_t err) {
    switch (err) {
    case cudaErrorMemoryAllocation:
        return "the GPU is out of memory: lower the batch size, or end other processes using it (nvidia-smi)";
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorInvalidDevice:
        return "no usable GPU: check nvidia-smi and the driver (update it if older than the CUDA toolkit), or run "
               "with --device cpu";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
        return "this build has no kernels for this GPU: reconfigure with -DCMAKE_CUDA_ARCHITECTURES=<its compute "
               "capability, e.g. 90> and rebuild";
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
        return "a kernel accessed memory out of bounds; errors surface at a later call, so rerun with "
               "CUDA_LAUNCH_BLOCKING=1 (or under compute-sanitizer) to find the launch that caused it";
    default: return "rerun with CUDA_LAUNCH_BLOCKING=1 so the error is reported at the call that caused it";
    }
}

// Aborts with the failing call's text, place and the CUDA error (a backend call has no error return).
static inline void nd_cuda_check(cudaError_t err, const char *call, const char *file, int line) {
    if (err == cudaSuccess) return;
    fprintf(stderr, "nanodiff: CUDA error %s: %s\n  in: %s\n  at: %s:%d\n  HINT: %s\n", cudaGetErrorName(err),
            cudaGetErrorString(err), call, file, line, nd_cuda_hint(err));
    abort();
}

// Aborts with the failing cuBLAS call's text, place and status.
static inline void nd_cublas_check(cublasStatus_t status, const char *call, const char *file, int line) {
    if (status == CUBLAS_STATUS_SUCCESS) return;
    const char *hint = status == CUBLAS_STATUS_NOT_INITIALIZED || status == CUBLAS_STATUS_ALLOC_FAILED
                           ? "cuBLAS could not start: check the GPU with nvidia-smi and that it has free memory"
                           : "an argument is out of the range cuBLAS accepts (a nanodiff bug: please report it)";
    fprintf(stderr, "nanodiff: cuBLAS error %s: %s\n  in: %s\n  at: %s:%d\n  HINT: %s\n", cublasGetStatusName(status),
            cublasGetStatusString(status), call, file, line, hint);
    abort();
}

#define ND_CUDA_CHECK(call) nd_cuda_check((call), #call, __FILE__, __LINE__)
#define ND_CUBLAS_CHECK(call) nd_cublas_check((call), #call, __FILE__, __LINE__)
// After every launch: a bad configuration shows here, a fault inside the kernel at a later checked call.
#define ND_CUDA_CHECK_LAUNCH(kernel) nd_cuda_check(cudaGetLastError(), "launch of " #kernel, __FILE__, __LINE__)

// ---------------------------------------------------------------------------------------------------
// skeleton 1: the grid-stride elementwise map. Every per-element kernel loops with ND_CUDA_FOR_EACH and is
// launched with ND_CUDA_MAP, which skips empty work and checks the launch.

#define ND_CUDA_FOR_EACH(i, n)                                                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)

// Blocks for n elements (or rows) at `threads` per block, capped: the kernels stride over the rest.
static inline unsigned nd_cuda_blocks(int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads;
    return (unsigned)(blocks < 1 ? 1 : blocks > ND_CUDA_MAX_BLOCKS ? ND_CUDA_MAX_BLOCKS : blocks);
}

#define ND_CUDA_MAP(n, kernel, ...)                                                                                    \
    do {                                                                                                               \
        if ((n) > 0) {                                                                                                 \
            kernel<<<nd_cuda_blocks((n), ND_CUDA_BLOCK), ND_CUDA_BLOCK>>>(__VA_ARGS__);                                \
            ND_CUDA_CHECK_LAUNCH(kernel);                                                                              \
        }                                                                                                              \
    } while (0)

// ---------------------------------------------------------------------------------------------------
// skeleton 2: the row reduction. One block per row (rows strided by the grid), threads striding along the
// row, partial results combined by warp shuffles and one shared-memory step. Launched with ND_CUDA_ROWS.

#define ND_CUDA_FOR_EACH_ROW(row, rows) for (int64_t row = blockIdx.x; row < (rows); row += gridDim.x)
#define ND_CUDA_FOR_EACH_IN_ROW(j, n) for (int64_t j = threadIdx.x; j < (n); j += blockDim.x)

// a + b, or the larger of the two for a max reduction
__device__ static inline float nd_cuda_combine(float a, float b, bool max) { return max ? fmaxf(a, b) : a + b; }

// Sum (or max) of v over the block; every thread gets the result. blockDim.x: a multiple of 32, <= 1024.
__device__ static inline float nd_cuda_block_reduce(float v, bool max) {
    __shared__ float warp_results[ND_CUDA_WARP];
    for (int offset = ND_CUDA_WARP / 2; offset > 0; offset /= 2)
        v = nd_cuda_combine(v, __shfl_xor_sync(0xffffffffu, v, offset), max);
    int lane = threadIdx.x % ND_CUDA_WARP, warp = threadIdx.x / ND_CUDA_WARP;
    __syncthreads(); // an earlier call in the same kernel may still be reading warp_results
    if (lane == 0) warp_results[warp] = v;
    __syncthreads();
    int warps = blockDim.x / ND_CUDA_WARP;
    v = lane < warps ? warp_results[lane] : (max ? -INFINITY : 0.0f);
    for (int offset = ND_CUDA_WARP / 2; offset > 0; offset /= 2)
        v = nd_cuda_combine(v, __shfl_xor_sync(0xffffffffu, v, offset), max);
    return v;
}

// Threads per row block for rows of n elements: short rows do not idle a full block.
static inline int nd_cuda_row_threads(int64_t n) {
    int threads = ND_CUDA_WARP;
    while (threads < ND_CUDA_ROW_BLOCK && threads < n) threads *= 2;
    return threads;
}

#define ND_CUDA_ROWS(rows, row_len, kernel, ...)                                                                       \
    do {                                                                                                               \
        if ((rows) > 0) {                                                                                              \
            kernel<<<nd_cuda_blocks((rows), 1), nd_cuda_row_threads(row_len)>>>(__VA_ARGS__);                          \
            ND_CUDA_CHECK_LAUNCH(kernel);                                                                              \
        }                                                                                                              \
    } while (0)

// ---------------------------------------------------------------------------------------------------
// index math: a row-major index space over which up to two operands are read at their own strides.
// The launcher collapses it (size-1 dims dropped, neighbours merged where both operands stay contiguous)
// so the per-element div/mod runs over as few dims as the layout allows.

typedef struct nd_cuda_index {
    int ndim;
    int64_t shape[ND_MAX_DIMS];
    int64_t stride[2][ND_MAX_DIMS]; // element strides of operand 0 and 1 (0 where it broadcasts)
} nd_cuda_index;

// The collapsed index space of `shape`, operands at strides s0 and s1 (either may be NULL: all 0).
static inline nd_cuda_index nd_cuda_index_make(int ndim, const int64_t *shape, const int64_t *s0, const int64_t *s1) {
    nd_cuda_index ix;
    memset(&ix, 0, sizeof ix);
    for (int k = 0; k < ndim; k++) {
        if (shape[k] == 1) continue;
        int64_t a = s0 ? s0[k] : 0, b = s1 ? s1[k] : 0;
        int last = ix.ndim - 1;
        if (last >= 0 && ix.stride[0][last] == a * shape[k] && ix.stride[1][last] == b * shape[k]) {
            ix.shape[last] *= shape[k];
            ix.stride[0][last] = a;
            ix.stride[1][last] = b;
            continue;
        }
        ix.shape[ix.ndim] = shape[k];
        ix.stride[0][ix.ndim] = a;
        ix.stride[1][ix.ndim] = b;
        ix.ndim++;
    }
    return ix;
}

// Offsets of both operands at row-major position i of the index space. By value: a kernel parameter whose
// address is taken would be copied to every thread's local memory.
__device__ static inline void nd_cuda_offsets(nd_cuda_index ix, int64_t i, int64_t *o0, int64_t *o1) {
    int64_t a = 0, b = 0;
    for (int k = ix.ndim - 1; k >= 0; k--) {
        int64_t c = i % ix.shape[k];
        i /= ix.shape[k];
        a += c * ix.stride[0][k];
        b += c * ix.stride[1][k];
    }
    *o0 = a;
    *o1 = b;
}

// Row index of a float-encoded class label or embedding index, or -1 when it is not an integer in [0, n):
// the GPU path has no host-side check, so a bad index must turn into a NaN rather than a stray read.
__device__ static inline int64_t nd_cuda_class_index(float label, int64_t n) {
    if (!(label >= 0.0f && label < (float)n) || label != truncf(label)) return -1;
    return (int64_t)label;
}

// ---------------------------------------------------------------------------------------------------
// device state (cuda_device.cu): created on first use; aborts with the reason when no GPU is usable.
// Every kernel, cuBLAS call and copy runs on the legacy default stream, so they are ordered without syncs.

#ifdef __cplusplus
extern "C" {
#endif

// Creates the device state on first use (every allocation passes here, so no kernel runs before it).
void nd_cuda_init(void);
// The cuBLAS handle, starting the device state if needed.
cublasHandle_t nd_cuda_cublas(void);

// The CUDA implementation of every entry of backend_list.h: nd_cuda_<name>.
#define ND_BACKEND_ENTRY(ret, entry, params) ret nd_cuda_##entry params;
#include "../backend_list.h"

#ifdef __cplusplus
}
#endif
#endif
