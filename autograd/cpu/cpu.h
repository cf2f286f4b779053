// The CPU backend's functions (OpenBLAS for products, OpenMP for loops); see backend.h for each contract.
#ifndef ND_CPU_H
#define ND_CPU_H

#include "../backend.h"

// Loops shorter than this run on one thread: starting a parallel region costs more than they do.
#define ND_CPU_PARALLEL_MIN 32768

// The CPU implementation of every entry of backend_list.h: nd_cpu_<name>.
#define ND_BACKEND_ENTRY(ret, entry, params) ret nd_cpu_##entry params;
#include "../backend_list.h"

#endif
