// Reader for .ndfx fixture files.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static bool read_exact(FILE *fp, void *dst, size_t bytes) { return fread(dst, 1, bytes, fp) == bytes; }

bool fx_load(fx_file *f, const char *path) {
    *f = (fx_file){0};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "%s: cannot open fixture file (generate it with tests/fixtures/make_fixtures.py)\n", path);
        return false;
    }
    char magic[8];
    uint32_t count;
    if (!read_exact(fp, magic, 8) || memcmp(magic, "NDFX0001", 8) != 0 || !read_exact(fp, &count, 4)) {
        fprintf(stderr, "%s: not an NDFX0001 fixture file\n", path);
        fclose(fp);
        return false;
    }
    f->tensors = calloc(count, sizeof *f->tensors);
    for (uint32_t i = 0; i < count; i++) {
        fx_tensor *t = &f->tensors[i];
        uint32_t len, ndim;
        if (!read_exact(fp, &len, 4) || len > 4096) goto truncated;
        t->name = calloc(len + 1, 1);
        f->count = (int)i + 1;
        if (!read_exact(fp, t->name, len) || !read_exact(fp, &ndim, 4) || ndim > ND_MAX_DIMS) goto truncated;
        int64_t dims[ND_MAX_DIMS];
        if (!read_exact(fp, dims, ndim * sizeof(int64_t))) goto truncated;
        t->shape = nd_shape_from(dims, (int)ndim);
        t->numel = nd_shape_numel(t->shape);
        t->data = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        if (!read_exact(fp, t->data, (size_t)t->numel * sizeof(float))) goto truncated;
    }
    fclose(fp);
    return true;
truncated:
    fprintf(stderr, "%s: truncated or corrupt at tensor %d\n", path, f->count);
    fclose(fp);
    fx_free(f);
    return false;
}

void fx_free(fx_file *f) {
    for (int i = 0; i < f->count; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].data);
    }
    free(f->tensors);
    *f = (fx_file){0};
}

const fx_tensor *fx_get(const fx_file *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}
