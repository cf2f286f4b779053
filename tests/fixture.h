// Reader for .ndfx fixture files (named float32 tensors written by tests/fixtures/ndfx.py).
#ifndef ND_FIXTURE_H
#define ND_FIXTURE_H

#include "autograd.h"

typedef struct fx_tensor {
    char *name;
    nd_shape shape;
    int64_t numel;
    float *data;
} fx_tensor;

typedef struct fx_file {
    fx_tensor *tensors;
    int count;
} fx_file;

// Loads every tensor of `path`; on failure prints why (naming the file) and returns false.
bool fx_load(fx_file *f, const char *path);
void fx_free(fx_file *f);
// The tensor named `name`, or NULL.
const fx_tensor *fx_get(const fx_file *f, const char *name);

#endif
