// CPU memory, copies and counter-based random fills.
#define _DEFAULT_SOURCE // MAP_ANONYMOUS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../elementwise_math.h"
#include "cpu.h"

void *nd_cpu_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0 || !p) {
        fprintf(stderr, "nanodiff: out of host memory allocating %zu bytes\n", bytes);
        abort();
    }
    return p;
}

void nd_cpu_free(void *ptr) { free(ptr); }

// Mapped rather than taken from the heap: grown while the first step's arena blocks are still being
// allocated, heap buffers would sit above those blocks and keep them resident after the arena frees them
// (the process's peak memory grew by half the arena).
void *nd_cpu_grow_mapped(void **buffer, size_t *have, size_t bytes, const char *what) {
    if (bytes <= *have) return *buffer;
    if (*buffer) munmap(*buffer, *have);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "nanodiff: out of memory for a %zu-byte %s buffer\n", bytes, what);
        abort();
    }
    *buffer = p, *have = bytes;
    return p;
}
void nd_cpu_upload(void *dst, const void *host_src, size_t bytes) { memcpy(dst, host_src, bytes); }
void nd_cpu_download(void *host_dst, const void *src, size_t bytes) { memcpy(host_dst, src, bytes); }
void *nd_cpu_host_alloc(size_t bytes) { return nd_cpu_alloc(bytes); }
void nd_cpu_host_free(void *ptr) { free(ptr); }
// One memory: the "upload" is a copy made at once, so waiting is never needed.
void nd_cpu_upload_async(void *dst, const void *host_src, size_t bytes, int lane) {
    (void)lane;
    memcpy(dst, host_src, bytes);
}
void nd_cpu_upload_wait(int lane) { (void)lane; }
void nd_cpu_upload_consume(float *out, const float *uploaded, size_t bytes, int lane) {
    (void)lane;
    memcpy(out, uploaded, bytes);
}

void nd_cpu_fill(float *dst, float value, int64_t n) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] = value;
}

void nd_cpu_copy(float *dst, const float *src, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

void nd_cpu_accumulate(float *dst, const float *src, float alpha, const float *scalar, int64_t n) {
    float s = alpha * (scalar ? *scalar : 1.0f);
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] += s * src[i];
}

void nd_cpu_rand_uniform(float *dst, int64_t n, uint64_t seed, uint64_t offset, float low, float high) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] = low + (high - low) * nd_philox_uniform(seed, offset, i);
}

void nd_cpu_rand_normal(float *dst, int64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] = mean + std * nd_philox_normal(seed, offset, i);
}

void nd_cpu_rand_bernoulli(float *dst, int64_t n, uint64_t seed, uint64_t offset, float p) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] = nd_philox_uniform(seed, offset, i) <= p ? 1.0f : 0.0f;
}
