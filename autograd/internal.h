// Helpers shared by the op files: output allocation, tape recording, device checks.
#ifndef ND_INTERNAL_H
#define ND_INTERNAL_H

#include "autograd.h"
#include "backend.h"

// Checks that every input lives on the context's device; aborts naming the op otherwise.
void nd_check_device(nd_ctx *ctx, const char *op, nd_loc loc, nd_tensor *const *inputs, int n);

// An op's output: allocated in the step arena, requires_grad when grad mode is on and any input needs it.
nd_tensor *nd_op_output(nd_ctx *ctx, nd_shape shape, nd_tensor *const *inputs, int n);

// Profiling (profile.c): ops with heavy arithmetic state their forward's flops before recording; the
// record and the backward walk charge each op its time.
void nd_profile_flops(nd_ctx *ctx, double flops);
double nd_profile_take_flops(nd_ctx *ctx);
void nd_profile_charge(nd_ctx *ctx, const char *op, int pass, const nd_tensor *out, double flops);

// Appends a node for `out` (only when out->requires_grad; returns NULL otherwise).
nd_node *nd_record(nd_ctx *ctx, const char *op, nd_backward_fn backward, nd_tensor *out,
                   nd_tensor *const *inputs, int n);

// --check-numerics: checks an op's output for NaN/inf and records the first (ctx->numerics_first).
void nd_numerics_check(nd_ctx *ctx, const char *op, const nd_tensor *out);

// Normalizes a possibly negative axis; aborts when out of range.
int nd_axis(int axis, int ndim, const char *op, nd_loc loc);


#endif
