// libFuzzer harness: the IDX reader (plain and gzipped) and the image/label pairing built on it.
#include "data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nd_fuzz_file(data, size, ".idx.gz");
    nd_idx idx;
    nd_error err;
    if (nd_idx_read(&idx, path, &err)) nd_idx_free(&idx);
    // the same file as both halves of a pair: images (rank 3) and labels (rank 1) checks on any input
    nd_dataset ds;
    if (nd_dataset_load_idx_pair(&ds, path, path, 0, &err)) nd_dataset_free(&ds);
    return 0;
}
