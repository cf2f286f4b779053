// Finite-difference gradient checks: loss = sum(op(inputs) * R) for a fixed random projection R; every
// input element's analytic gradient is compared with the central difference of that loss.
#ifndef ND_GRADCHECK_H
#define ND_GRADCHECK_H

#include "autograd.h"

// A shape usable in static initializers (ND_SHAPE is a function call).
#define GC_SHAPE(...)                                                                                                  \
    {                                                                                                                  \
        .ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .d = { __VA_ARGS__ }                        \
    }

typedef nd_tensor *(*gc_build_fn)(nd_ctx *ctx, nd_tensor **inputs);

typedef enum gc_fill {
    GC_FILL_NORMAL,    // N(0, 1)
    GC_FILL_POSITIVE,  // U(0.5, 2): log, sqrt, division
    GC_FILL_AWAY_ZERO, // N(0, 1) pushed away from 0 by more than eps: relu's kink
    GC_FILL_CLASSES,   // integers in [0, classes): labels and indices, no gradient
    GC_FILL_DISTINCT,  // a shuffled ramp of values 4*eps apart around 0: maxima without (near) ties
} gc_fill;

typedef struct gc_input {
    nd_shape shape;
    gc_fill fill;
    int classes; // for GC_FILL_CLASSES
} gc_input;

typedef struct gc_case {
    const char *name; // the ctest name is gradcheck.<name>
    int n_inputs;
    gc_input inputs[ND_NODE_MAX_INPUTS];
    gc_build_fn build;
    // Central differences in float32: error ~ eps^2 * f''' (truncation) + 1e-7 * |loss| / eps (rounding).
    // eps 1e-2 balances both for inputs of order 1: the worst case seen is under 0.1 of the default tolerance,
    // while a 1% error in a derivative fails it by 3x.
    double eps, atol, rtol;
} gc_case;

// The case named `name` in any family's table (tests/gc_cases.c), or NULL.
const gc_case *gc_find(const char *name);
// Every case of every family: gc_at(0) .. gc_at(gc_count() - 1) (NULL outside that range).
int gc_count(void);
const gc_case *gc_at(int i);
// The family (gradcheck_<family>.c) of the i-th case.
const char *gc_family_at(int i);

// Runs one case; prints the worst element of each input; returns the number of failed inputs.
int gc_run(const gc_case *c);

#define GC_DEFAULT_EPS 1e-2
#define GC_DEFAULT_ATOL 3e-4
#define GC_DEFAULT_RTOL 3e-3

#endif
