// Model parameters: registered by name, then laid out in one flat data buffer and one flat grad buffer.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void nd_params_init(nd_params *p) { *p = (nd_params){0}; }

void nd_params_free(nd_params *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->items[i].name);
        free(p->items[i].tensor);
    }
    free(p->items);
    const nd_backend *be = nd_backend_for(p->device);
    if (p->data) be->free(p->data);
    if (p->grad) be->free(p->grad);
    *p = (nd_params){0};
}

static void *checked_malloc(size_t bytes) {
    void *ptr = malloc(bytes);
    if (!ptr) {
        fprintf(stderr, "nanodiff: out of host memory allocating %zu bytes\n", bytes);
        abort();
    }
    return ptr;
}

nd_tensor *nd_params_add(nd_params *p, const char *name, nd_shape shape, nd_init_kind init, float bound) {
    if (p->data) {
        fprintf(stderr, "nanodiff: nd_params_add(\"%s\") after nd_params_alloc\n", name);
        abort();
    }
    if (nd_params_find(p, name)) {
        fprintf(stderr, "nanodiff: parameter \"%s\" is registered twice\n", name);
        abort();
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        nd_param *items = realloc(p->items, (size_t)p->cap * sizeof *items);
        if (!items) {
            fprintf(stderr, "nanodiff: out of host memory registering parameter \"%s\"\n", name);
            abort();
        }
        p->items = items;
    }
    nd_tensor *t = checked_malloc(sizeof *t);
    *t = (nd_tensor){0};
    t->shape = shape;
    t->numel = nd_shape_numel(shape);
    t->requires_grad = true;
    nd_param *item = &p->items[p->n++];
    item->name = checked_malloc(strlen(name) + 1);
    strcpy(item->name, name);
    item->tensor = t;
    item->offset = p->total;
    item->init = init;
    item->init_bound = bound;
    p->total += t->numel;
    return t;
}

void nd_params_alloc(nd_params *p, nd_ctx *ctx) {
    p->device = ctx->device;
    size_t bytes = (size_t)(p->total ? p->total : 1) * sizeof(float);
    p->data = ctx->be->alloc(bytes);
    p->grad = ctx->be->alloc(bytes);
    ctx->be->fill(p->grad, 0.0f, p->total);
    for (int i = 0; i < p->n; i++) {
        nd_param *item = &p->items[i];
        nd_tensor *t = item->tensor;
        t->device = ctx->device;
        t->data = p->data + item->offset;
        t->grad = t->requires_grad ? p->grad + item->offset : NULL; // buffers (running stats) have none
        switch (item->init) {
        case ND_INIT_ZEROS: nd_fill(ctx, t, 0.0f); break;
        case ND_INIT_ONES: nd_fill(ctx, t, 1.0f); break;
        case ND_INIT_UNIFORM: nd_rand_uniform(ctx, t, -item->init_bound, item->init_bound); break;
        case ND_INIT_NORMAL: nd_rand_normal(ctx, t, 0.0f, item->init_bound); break;
        }
    }
}

void nd_params_zero_grad(nd_params *p, nd_ctx *ctx) { ctx->be->fill(p->grad, 0.0f, p->total); }

const nd_param *nd_params_find(const nd_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0) return &p->items[i];
    return NULL;
}
