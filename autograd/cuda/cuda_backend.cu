// The CUDA backend table, refused at once when any entry of struct nd_backend is left unset.
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "cuda_common.h"

// Every entry, in backend.h's order; entry `e` is implemented by nd_cuda_<e>.
#define ND_CUDA_ENTRIES(X)                                                                                 \
    X(alloc) X(free) X(upload) X(download) X(host_alloc) X(host_free) X(upload_async) X(upload_wait)       \
    X(upload_consume) X(fill) X(copy) X(accumulate)                                                        \
    X(rand_uniform) X(rand_normal) X(rand_bernoulli)                                                       \
    X(unary_forward) X(unary_backward) X(binary_forward) X(binary_backward) X(reduce_sum)                  \
    X(broadcast_accumulate) X(gemm) X(add_bias) X(copy_rows) X(permute)                                    \
    X(softmax_forward) X(softmax_backward) X(nll_forward) X(cross_entropy_backward)                        \
    X(embedding_forward) X(embedding_backward) X(adam_update) X(ema_update)                                \
    X(im2col) X(col2im) X(max_pool_forward) X(max_pool_backward) X(pixel_unshuffle_forward)                \
    X(pixel_unshuffle_backward) X(upsample_forward) X(upsample_backward)                                   \
    X(norm_row_stats) X(norm_row_forward) X(norm_row_backward) X(norm_row_affine_backward)                 \
    X(batch_norm_stats) X(batch_norm_forward) X(batch_norm_backward) X(dropout) X(masked_fill)             \
    X(causal_mask)

#define ND_CUDA_SET_ENTRY(e) cuda_backend.e = nd_cuda_##e;
#define ND_CUDA_ENTRY_NAME(e) {offsetof(nd_backend, e), #e},

typedef void (*nd_cuda_slot)(void);
static_assert(offsetof(nd_backend, alloc) == sizeof(const char *) &&
                  (sizeof(nd_backend) - offsetof(nd_backend, alloc)) % sizeof(nd_cuda_slot) == 0,
              "struct nd_backend must be its name followed only by function pointers");

static nd_backend cuda_backend;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static const struct {
    size_t offset;
    const char *name;
} entry_names[] = {ND_CUDA_ENTRIES(ND_CUDA_ENTRY_NAME)};

// Name of the entry at byte offset `offset`, or NULL when this file does not set it.
static const char *entry_name(size_t offset) {
    for (size_t i = 0; i < sizeof entry_names / sizeof entry_names[0]; i++)
        if (entry_names[i].offset == offset) return entry_names[i].name;
    return NULL;
}

// An entry added to backend.h but not here would crash the first op using it, far from the cause; instead
// the table is refused when first asked for (no GPU needed), naming the entry that precedes the gap.
static void table_check(void) {
    size_t first = offsetof(nd_backend, alloc);
    for (size_t offset = first; offset < sizeof cuda_backend; offset += sizeof(nd_cuda_slot)) {
        nd_cuda_slot fn;
        memcpy(&fn, (const char *)&cuda_backend + offset, sizeof fn);
        if (fn) continue;
        const char *before = offset > first ? entry_name(offset - sizeof(nd_cuda_slot)) : NULL;
        fprintf(stderr,
                "nanodiff: the CUDA backend leaves entry %zu of struct nd_backend unset (the one declared after "
                "'%s' in autograd/backend.h)\n  HINT: implement it in autograd/cuda/ and list it in "
                "ND_CUDA_ENTRIES (autograd/cuda/cuda_backend.cu)\n",
                (offset - first) / sizeof(nd_cuda_slot) + 1, before ? before : "name");
        abort();
    }
}

// Fills every entry from ND_CUDA_ENTRIES, then refuses the table if backend.h has more.
static void table_build(void) {
    cuda_backend.name = "cuda";
    ND_CUDA_ENTRIES(ND_CUDA_SET_ENTRY)
    table_check();
}

extern "C" {

// The table; the GPU itself is started (and its absence reported) by the first allocation.
const nd_backend *nd_backend_cuda(void) {
    int rc = pthread_once(&table_once, table_build);
    if (rc != 0) {
        fprintf(stderr, "nanodiff: pthread_once failed (%s) while building the CUDA backend table\n", strerror(rc));
        abort();
    }
    return &cuda_backend;
}

} // extern "C"
