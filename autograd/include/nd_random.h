// nanodiff's random numbers, public: the counter-based Philox4x32-10 generator every random op draws from,
// as inline functions callable from host code and from CUDA kernels. A draw depends only on (seed, counter),
// so data augmentation, timestep sampling and the ops' noise are reproducible on any device and thread count.
#ifndef ND_RANDOM_H
#define ND_RANDOM_H

#include <math.h>
#include <stdint.h>

// Host and device: the CUDA kernels and the CPU loops call the same functions.
#ifndef ND_HD
#ifdef __CUDACC__
#define ND_HD __host__ __device__
#else
#define ND_HD
#endif
#endif

// Philox4x32-10 (Salmon et al. 2011), the generator behind cuRAND's and PyTorch's counter-based streams.

typedef struct nd_u32x4 {
    uint32_t v[4];
} nd_u32x4;

ND_HD static inline uint32_t nd_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t product = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(product >> 32);
    return (uint32_t)product;
}

// Four 32-bit random words for counter `counter` under key `seed`.
ND_HD static inline nd_u32x4 nd_philox4x32(uint64_t seed, uint64_t counter) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = nd_mulhilo32(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = nd_mulhilo32(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    nd_u32x4 r = {{c0, c1, c2, c3}};
    return r;
}

// uniform in (0, 1]: never 0, so log() is safe in Box-Muller
ND_HD static inline float nd_u32_to_unit(uint32_t x) { return ((float)(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

// Element i of a draw uses counter offset + i/4 word i%4 (uniform, Bernoulli), or offset + i/2 with a
// Box-Muller pair (normal). Both depend only on (seed, offset, i).
ND_HD static inline float nd_philox_uniform(uint64_t seed, uint64_t offset, int64_t i) {
    nd_u32x4 r = nd_philox4x32(seed, offset + (uint64_t)(i >> 2));
    return nd_u32_to_unit(r.v[i & 3]);
}

ND_HD static inline float nd_philox_normal(uint64_t seed, uint64_t offset, int64_t i) {
    nd_u32x4 r = nd_philox4x32(seed, offset + (uint64_t)(i >> 1));
    int pair = (int)(i & 1) * 2;
    float u1 = nd_u32_to_unit(r.v[pair]), u2 = nd_u32_to_unit(r.v[pair + 1]);
    float radius = sqrtf(-2.0f * logf(u1));
    return radius * cosf(6.28318530717958647692f * u2);
}

// Counters consumed by a draw of n elements (uniform or normal), so the next draw never overlaps.
static inline uint64_t nd_philox_counters(int64_t n) { return (uint64_t)(n + 1) / 2 + 1; }

#endif
