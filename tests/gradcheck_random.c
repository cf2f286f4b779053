// Gradient-check cases for ops whose output is drawn from the context's RNG (dropout). PyTorch cannot
// reproduce our Philox streams, so these have no reference fixture: tests/test_dropout.c checks the
// statistics of the mask instead.
#include "gradcheck.h"

#define IN(...)                                                                                                        \
    { .shape = GC_SHAPE(__VA_ARGS__) }

// Far from the counters the harness draws inputs and projections from.
#define DROPOUT_CASE_OFFSET (1ull << 40)

// Every forward draws its mask at ctx->rng.offset and advances it, so the check's many evaluations would each
// see another mask. Rewinding the offset before each call makes them all use one mask: the op is then a
// fixed linear map, the function the finite differences measure.
static nd_tensor *dropout(nd_ctx *c, nd_tensor **x) {
    c->rng.offset = DROPOUT_CASE_OFFSET;
    return nd_dropout(c, x[0], 0.3f, true);
}

const gc_case gc_cases_random[] = {
    {.name = "dropout", .n_inputs = 1, .inputs = {IN(4, 6)}, .build = dropout},
};
const int gc_cases_random_count = (int)(sizeof gc_cases_random / sizeof gc_cases_random[0]);
