// The CPU backend's functions (OpenBLAS for products, OpenMP for loops); see backend.h for each contract.
#ifndef ND_CPU_H
#define ND_CPU_H

#include "../backend.h"

// Loops shorter than this run on one thread: starting a parallel region costs more than they do.
#define ND_CPU_PARALLEL_MIN 32768

// One loop per kind, so each inlines its own formula and vectorizes (a switch inside the loop would not).
#define ND_UNARY_CASES(LOOP)                                                                                           \
    case ND_UNARY_AFFINE: LOOP(ND_UNARY_AFFINE); break;                                                                \
    case ND_UNARY_RECIP: LOOP(ND_UNARY_RECIP); break;                                                                  \
    case ND_UNARY_NEG: LOOP(ND_UNARY_NEG); break;                                                                      \
    case ND_UNARY_EXP: LOOP(ND_UNARY_EXP); break;                                                                      \
    case ND_UNARY_LOG: LOOP(ND_UNARY_LOG); break;                                                                      \
    case ND_UNARY_SQRT: LOOP(ND_UNARY_SQRT); break;                                                                    \
    case ND_UNARY_SQUARE: LOOP(ND_UNARY_SQUARE); break;                                                                \
    case ND_UNARY_RELU: LOOP(ND_UNARY_RELU); break;                                                                    \
    case ND_UNARY_GELU: LOOP(ND_UNARY_GELU); break;                                                                    \
    case ND_UNARY_SILU: LOOP(ND_UNARY_SILU); break;                                                                    \
    case ND_UNARY_SIGMOID: LOOP(ND_UNARY_SIGMOID); break;                                                              \
    case ND_UNARY_TANH: LOOP(ND_UNARY_TANH); break;                                                                    \
    case ND_UNARY_SIN: LOOP(ND_UNARY_SIN); break;                                                                      \
    case ND_UNARY_COS: LOOP(ND_UNARY_COS); break;                                                                      \
    default: break;

// The CPU implementation of every entry of backend_list.h: nd_cpu_<name>.
#define ND_BACKEND_ENTRY(ret, entry, params) ret nd_cpu_##entry params;
#include "../backend_list.h"

#endif
