// GPU memory, copies, scaled accumulation and counter-based random fills (the same numbers as the CPU's).
#include <pthread.h>

#include "../elementwise_math.h"
#include "cuda_common.h"

typedef enum rand_kind { RAND_UNIFORM, RAND_NORMAL, RAND_BERNOULLI } rand_kind;

// dst (n) = value
static __global__ void fill_kernel(float *dst, float value, int64_t n) { ND_CUDA_FOR_EACH(i, n) dst[i] = value; }

// The scalar is read here, on the device: the host never waits for an upstream gradient.
static __global__ void accumulate_kernel(float *dst, const float *src, float alpha, const float *scalar, int64_t n) {
    float s = alpha * (scalar ? *scalar : 1.0f);
    ND_CUDA_FOR_EACH(i, n) dst[i] += s * src[i];
}

// Element i depends only on (seed, offset, i), as on the CPU. The affine maps are rounded explicitly: nvcc
// would fuse them into one multiply-add, which rounds once where the CPU rounds twice, and the draws must
// be bit-identical.
static __global__ void rand_kernel(float *dst, int64_t n, uint64_t seed, uint64_t offset, rand_kind kind, float a,
                                   float b) {
    ND_CUDA_FOR_EACH(i, n) {
        if (kind == RAND_UNIFORM) // a = low, b = high
            dst[i] = __fadd_rn(a, __fmul_rn(b - a, nd_philox_uniform(seed, offset, i)));
        else if (kind == RAND_NORMAL) // a = mean, b = std
            dst[i] = __fadd_rn(a, __fmul_rn(b, nd_philox_normal(seed, offset, i)));
        else // a = p
            dst[i] = nd_philox_uniform(seed, offset, i) <= a ? 1.0f : 0.0f;
    }
}

extern "C" {

// cudaMalloc, reporting an out-of-memory with the free and total memory.
void *nd_cuda_alloc(size_t bytes) {
    nd_cuda_init();
    void *ptr = NULL;
    cudaError_t err = cudaMalloc(&ptr, bytes ? bytes : 1);
    if (err == cudaErrorMemoryAllocation) {
        size_t free_bytes = 0, total_bytes = 0;
        (void)cudaMemGetInfo(&free_bytes, &total_bytes); // only decorates the message
        const double mib = 1024.0 * 1024.0;
        fprintf(stderr,
                "nanodiff: out of GPU memory allocating %.1f MiB (%.1f MiB free of %.1f MiB)\n"
                "  HINT: lower the batch size, or end other processes using the GPU (nvidia-smi)\n",
                (double)bytes / mib, (double)free_bytes / mib, (double)total_bytes / mib);
        abort();
    }
    nd_cuda_check(err, "cudaMalloc(&ptr, bytes)", __FILE__, __LINE__);
    return ptr;
}

// cudaFree (which also waits for work in flight).
void nd_cuda_free(void *ptr) { ND_CUDA_CHECK(cudaFree(ptr)); }

// Synchronous copies on the default stream: they wait for earlier kernels, and a download's data is ready.
void nd_cuda_upload(void *dst, const void *host_src, size_t bytes) {
    ND_CUDA_CHECK(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
}

// Returns once the data is on the host: the one place a host value is waited for.
void nd_cuda_download(void *host_dst, const void *src, size_t bytes) {
    ND_CUDA_CHECK(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}

// Page-locked: cudaMemcpyAsync from it is a real DMA beside the kernels (from pageable memory it would not be).
void *nd_cuda_host_alloc(size_t bytes) {
    nd_cuda_init();
    void *ptr = NULL;
    ND_CUDA_CHECK(cudaMallocHost(&ptr, bytes ? bytes : 1));
    return ptr;
}

void nd_cuda_host_free(void *ptr) {
    if (ptr) ND_CUDA_CHECK(cudaFreeHost(ptr));
}

// The upload lanes: one non-blocking copy stream beside the default stream the kernels run on, and per lane
// an event marking its upload done (on the copy stream) and one marking its buffer read (on the default
// stream). An event never recorded counts as done, so the first upload of a lane waits for nothing.
static pthread_once_t lanes_once = PTHREAD_ONCE_INIT;
static cudaStream_t copy_stream;
static cudaEvent_t lane_uploaded[2], lane_consumed[2];

static void lanes_create(void) {
    nd_cuda_init();
    ND_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking));
    for (int lane = 0; lane < 2; lane++) {
        ND_CUDA_CHECK(cudaEventCreateWithFlags(&lane_uploaded[lane], cudaEventDisableTiming));
        ND_CUDA_CHECK(cudaEventCreateWithFlags(&lane_consumed[lane], cudaEventDisableTiming));
    }
}

static int lane_index(int lane) {
    if (lane != 0 && lane != 1) {
        fprintf(stderr, "nanodiff: upload lane %d does not exist (lanes are 0 and 1)\n", lane);
        abort();
    }
    (void)pthread_once(&lanes_once, lanes_create);
    return lane;
}

void nd_cuda_upload_async(void *dst, const void *host_src, size_t bytes, int lane) {
    lane = lane_index(lane);
    ND_CUDA_CHECK(cudaStreamWaitEvent(copy_stream, lane_consumed[lane], 0));
    ND_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, copy_stream));
    ND_CUDA_CHECK(cudaEventRecord(lane_uploaded[lane], copy_stream));
}

void nd_cuda_upload_wait(int lane) {
    lane = lane_index(lane);
    ND_CUDA_CHECK(cudaEventSynchronize(lane_uploaded[lane]));
}

void nd_cuda_upload_consume(float *out, const float *uploaded, size_t bytes, int lane) {
    lane = lane_index(lane);
    ND_CUDA_CHECK(cudaStreamWaitEvent(0, lane_uploaded[lane], 0));
    ND_CUDA_CHECK(cudaMemcpyAsync(out, uploaded, bytes, cudaMemcpyDeviceToDevice, 0));
    ND_CUDA_CHECK(cudaEventRecord(lane_consumed[lane], 0));
}

// Elementwise map over n.
void nd_cuda_fill(float *dst, float value, int64_t n) { ND_CUDA_MAP(n, fill_kernel, dst, value, n); }

// Device-to-device copy, ordered on the default stream with the kernels.
void nd_cuda_copy(float *dst, const float *src, int64_t n) {
    if (n > 0) ND_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice, 0));
}

// Elementwise map over n; scalar stays on the device.
void nd_cuda_accumulate(float *dst, const float *src, float alpha, const float *scalar, int64_t n) {
    ND_CUDA_MAP(n, accumulate_kernel, dst, src, alpha, scalar, n);
}

// U(low, high] from Philox counters starting at offset.
void nd_cuda_rand_uniform(float *dst, int64_t n, uint64_t seed, uint64_t offset, float low, float high) {
    ND_CUDA_MAP(n, rand_kernel, dst, n, seed, offset, RAND_UNIFORM, low, high);
}

// N(mean, std^2) by Box-Muller over Philox counters starting at offset.
void nd_cuda_rand_normal(float *dst, int64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
    ND_CUDA_MAP(n, rand_kernel, dst, n, seed, offset, RAND_NORMAL, mean, std);
}

// 1 with probability p (uniform draw <= p, as the CPU), else 0.
void nd_cuda_rand_bernoulli(float *dst, int64_t n, uint64_t seed, uint64_t offset, float p) {
    ND_CUDA_MAP(n, rand_kernel, dst, n, seed, offset, RAND_BERNOULLI, p, 0.0f);
}

} // extern "C"
