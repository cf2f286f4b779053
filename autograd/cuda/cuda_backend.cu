// The CUDA backend table.
#include "cuda_common.h"

// Every entry of backend_list.h bound, in its order, to nd_cuda_<entry> (the missing-entry check in backend.h).
static const nd_backend cuda_backend = {
    "cuda",
#define ND_BACKEND_ENTRY(ret, entry, params) nd_cuda_##entry,
#include "../backend_list.h"
};

extern "C" {

// The table; the GPU itself is started (and its absence reported) by the first allocation.
const nd_backend *nd_backend_cuda(void) { return &cuda_backend; }

} // extern "C"
