// Backend lookup for builds without CUDA (the CUDA build defines nd_backend_cuda in autograd/cuda/).
#include "backend.h"

#ifndef ND_WITH_CUDA
const nd_backend *nd_backend_cuda(void) { return NULL; }
#endif
