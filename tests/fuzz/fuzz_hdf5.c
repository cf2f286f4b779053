// libFuzzer harness: the HDF5 image data-set reader (`images`, `labels`).
#include "data.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nd_fuzz_file(data, size, ".h5");
    nd_dataset ds;
    nd_error err;
    if (nd_dataset_load_hdf5(&ds, path, &err)) nd_dataset_free(&ds);
    return 0;
}
