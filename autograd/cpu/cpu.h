// The CPU backend's functions (OpenBLAS for products, OpenMP for loops); see backend.h for each contract.
#ifndef ND_CPU_H
#define ND_CPU_H

#include "../backend.h"

// Loops shorter than this run on one thread: starting a parallel region costs more than they do.
#define ND_CPU_PARALLEL_MIN 32768

// The CPU implementation of every entry of backend_list.h: nd_cpu_<name>.
#define ND_BACKEND_ENTRY(ret, entry, params) ret nd_cpu_##entry params;
#include "../backend_list.h"

bool nd_cpu_conv_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                         int64_t batch, int64_t filters, bool transposed);
bool nd_cpu_conv_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias);
size_t nd_cpu_dnnl_workspace_bytes(void);

#endif
