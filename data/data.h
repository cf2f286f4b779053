// nanodiff data: IDX (gzipped or plain) and HDF5 data sets, transforms, batches, PNG output.
#ifndef ND_DATA_H
#define ND_DATA_H

#include "autograd.h"

// A user-facing error: a message naming the file, the field and what was expected.
typedef struct nd_error {
    char msg[512];
} nd_error;

// Formats into err (when err is not NULL) and returns false, so loaders can `return nd_error_set(...)`.
bool nd_error_set(nd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
