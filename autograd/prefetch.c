// Double-buffered uploads of data batches beside the compute (backend.h: upload_async / upload_consume).
//
// Batch k goes through lane k % 2: put copies it into that lane's staging (after waiting until the
// lane's previous upload, batch k - 2, has left the staging) and starts the upload; take copies the
// uploaded buffer into the step arena, ordered after the upload, and marks the lane's buffer free for
// batch k + 2. On the GPU the upload of batch k + 1 thus runs on the copy engine while step k's kernels run.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

void nd_prefetch_init(nd_prefetch *p, nd_ctx *ctx, size_t capacity_bytes) {
    *p = (nd_prefetch){.ctx = ctx, .capacity = capacity_bytes};
    for (int lane = 0; lane < 2; lane++) {
        p->host[lane] = ctx->be->host_alloc(capacity_bytes);
        p->device[lane] = ctx->be->alloc(capacity_bytes);
    }
}

void nd_prefetch_put(nd_prefetch *p, const float *src, size_t bytes) {
    if (bytes > p->capacity || p->puts - p->takes >= 2) {
        fprintf(stderr,
                "nanodiff: nd_prefetch_put: %zu bytes into lanes of %zu with %lld batches waiting (at most 2)\n", bytes,
                p->capacity, (long long)(p->puts - p->takes));
        abort();
    }
    int lane = (int)(p->puts % 2);
    const nd_backend *be = p->ctx->be;
    be->upload_wait(lane);
    memcpy(p->host[lane], src, bytes);
    be->upload_async(p->device[lane], p->host[lane], bytes, lane);
    p->bytes[lane] = bytes;
    p->puts++;
}

nd_tensor *nd_prefetch_take(nd_prefetch *p, nd_shape shape) {
    int lane = (int)(p->takes % 2);
    size_t want = (size_t)nd_shape_numel(shape) * sizeof(float);
    if (p->takes >= p->puts || want != p->bytes[lane]) {
        fprintf(stderr, "nanodiff: nd_prefetch_take: %s (asked for %zu bytes, %zu were put)\n",
                p->takes >= p->puts ? "nothing was put" : "size mismatch", want,
                p->takes >= p->puts ? (size_t)0 : p->bytes[lane]);
        abort();
    }
    nd_tensor *t = nd_empty(p->ctx, shape);
    p->ctx->be->upload_consume(t->data, p->device[lane], want, lane);
    p->takes++;
    return t;
}

void nd_prefetch_free(nd_prefetch *p) {
    if (!p->ctx) return;
    for (int lane = 0; lane < 2; lane++) {
        p->ctx->be->host_free(p->host[lane]);
        p->ctx->be->free(p->device[lane]);
    }
    *p = (nd_prefetch){0};
}
