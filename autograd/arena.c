// The bump arena behind step tensors and the persistent pool (see autograd.h for the growth rule).
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define ND_ARENA_ALIGN 256 // cudaMalloc's alignment, so device kernels may use vector loads

struct nd_arena_block {
    nd_arena_block *next;
    void *ptr;
    bool on_device;
};

static const nd_backend *arena_backend(const nd_arena *a) { return nd_backend_for(a->device); }

static void *host_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes && posix_memalign(&p, ND_ARENA_ALIGN, bytes) != 0) p = NULL;
    if (bytes && !p) {
        fprintf(stderr, "nanodiff: out of host memory allocating %zu bytes\n", bytes);
        abort();
    }
    return p;
}

static size_t round_up(size_t n) { return (n + ND_ARENA_ALIGN - 1) / ND_ARENA_ALIGN * ND_ARENA_ALIGN; }

void nd_arena_init(nd_arena *a, nd_device device, size_t data_bytes, size_t meta_bytes) {
    *a = (nd_arena){0};
    a->device = device;
    a->data_cap = round_up(data_bytes);
    a->meta_cap = round_up(meta_bytes);
    a->data = a->data_cap ? arena_backend(a)->alloc(a->data_cap) : NULL;
    a->meta = host_alloc(a->meta_cap);
}

// Frees the newest overflow block.
static void pop_overflow(nd_arena *a) {
    nd_arena_block *next = a->overflow->next;
    if (a->overflow->on_device)
        arena_backend(a)->free(a->overflow->ptr);
    else
        free(a->overflow->ptr);
    free(a->overflow);
    a->overflow = next;
}

static void free_overflow(nd_arena *a) {
    while (a->overflow) pop_overflow(a);
}

void nd_arena_free(nd_arena *a) {
    free_overflow(a);
    if (a->data) arena_backend(a)->free(a->data);
    free(a->meta);
    *a = (nd_arena){0};
}

static void *overflow_alloc(nd_arena *a, size_t bytes, bool on_device) {
    nd_arena_block *block = host_alloc(sizeof *block);
    block->on_device = on_device;
    block->ptr = on_device ? arena_backend(a)->alloc(bytes) : host_alloc(bytes);
    block->next = a->overflow;
    a->overflow = block;
    return block->ptr;
}

void *nd_arena_alloc_data(nd_arena *a, size_t bytes) {
    bytes = round_up(bytes ? bytes : 1);
    a->data_used += bytes;
    if (a->data_used > a->data_peak) a->data_peak = a->data_used;
    if (a->data_used <= a->data_cap) return a->data + (a->data_used - bytes);
    return overflow_alloc(a, bytes, true);
}

void *nd_arena_alloc_meta(nd_arena *a, size_t bytes) {
    bytes = round_up(bytes ? bytes : 1);
    a->meta_used += bytes;
    if (a->meta_used > a->meta_peak) a->meta_peak = a->meta_used;
    if (a->meta_used <= a->meta_cap) return a->meta + (a->meta_used - bytes);
    return overflow_alloc(a, bytes, false);
}

nd_arena_mark nd_arena_get_mark(const nd_arena *a) { return (nd_arena_mark){a->data_used, a->meta_used, a->overflow}; }

void nd_arena_release(nd_arena *a, nd_arena_mark mark) {
    while (a->overflow && a->overflow != mark.overflow) pop_overflow(a);
    a->data_used = mark.data_used;
    a->meta_used = mark.meta_used;
}

void nd_arena_reset(nd_arena *a) {
    if (a->overflow) {
        // Grow to the peak (plus an eighth for small step-to-step variation) so later steps fit in one block.
        free_overflow(a);
        if (a->data_peak > a->data_cap) {
            if (a->data) arena_backend(a)->free(a->data);
            a->data_cap = round_up(a->data_peak + a->data_peak / 8);
            a->data = arena_backend(a)->alloc(a->data_cap);
        }
        if (a->meta_peak > a->meta_cap) {
            free(a->meta);
            a->meta_cap = round_up(a->meta_peak + a->meta_peak / 8);
            a->meta = host_alloc(a->meta_cap);
        }
    }
    a->data_used = 0;
    a->meta_used = 0;
}
