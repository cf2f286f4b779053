// The prompt reaches the image: a TransformerBlock's output, and a t2i-unet's samples drawn from the same noise,
// change with the text context. The lesson's broken block (cross-attention whose K and V are projected from the
// image features, sized d_model) gives the same output for every prompt, and the same check catches it. The
// content hash a t2i checkpoint records of its CLIP is the same value for the same bytes, release after release.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample.h"
#include "test.h"
#include "train.h"

enum { B = 2, DIM = 8, CONTEXT_DIM = 6, TOKENS = 3, SIDE = 4 };

typedef nd_tensor *(*block_forward_fn)(nd_ctx *ctx, const nd_transformer_block *block, nd_tensor *x,
                                       nd_tensor *context);

// The lesson's P4 bug: cross-attention projects K and V from the (normalised) image features, so the context
// is never read. Everything else is the real block.
static nd_tensor *broken_block_forward(nd_ctx *ctx, const nd_transformer_block *block, nd_tensor *x,
                                       nd_tensor *context) {
    (void)context;
    int64_t b = x->shape.d[0], c = x->shape.d[1], h = x->shape.d[2], w = x->shape.d[3];
    nd_tensor *tokens = nd_permute(ctx, nd_reshape(ctx, x, ND_SHAPE(b, c, h * w)), ((int[]){0, 2, 1})); // (B, HW, C)
    nd_tensor *normed = nd_layer_norm_layer_forward(ctx, &block->norm1, tokens);
    tokens = nd_add(ctx, tokens, nd_attention_layer_forward(ctx, &block->self_attn, normed, NULL, false));
    normed = nd_layer_norm_layer_forward(ctx, &block->norm2, tokens);
    tokens = nd_add(ctx, tokens, nd_attention_layer_forward(ctx, &block->cross_attn, normed, normed, false));
    normed = nd_layer_norm_layer_forward(ctx, &block->norm3, tokens);
    nd_tensor *hidden = nd_gelu(ctx, nd_linear_layer_forward(ctx, &block->ff1, normed)); // (B, HW, 4C)
    tokens = nd_add(ctx, tokens, nd_linear_layer_forward(ctx, &block->ff2, hidden));
    return nd_reshape(ctx, nd_permute(ctx, tokens, ((int[]){0, 2, 1})), ND_SHAPE(b, c, h, w));
}

// Largest |a - b| over n values.
static float max_diff(const float *a, const float *b, int64_t n) {
    float d = 0.0f;
    for (int64_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

// How far the block's output moves between two different prompts' contexts (B, TOKENS, context_dim) for the
// same image features: the check that a prompt has an effect.
static float prompt_effect(block_forward_fn forward, int context_dim) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 3);
    nd_params params;
    nd_params_init(&params);
    nd_transformer_block block;
    nd_transformer_block_init(&block, &params, "attn", DIM, context_dim, 2);
    nd_params_alloc(&params, &ctx);
    nd_tensor *x = nd_empty(&ctx, ND_SHAPE(B, DIM, SIDE, SIDE));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_tensor *prompt_a = nd_empty(&ctx, ND_SHAPE(B, TOKENS, context_dim));
    nd_tensor *prompt_b = nd_empty(&ctx, ND_SHAPE(B, TOKENS, context_dim));
    nd_rand_normal(&ctx, prompt_a, 0.0f, 1.0f);
    nd_rand_normal(&ctx, prompt_b, 0.0f, 1.0f);
    int64_t n = x->numel;
    float *out_a = malloc((size_t)n * sizeof(float)), *out_b = malloc((size_t)n * sizeof(float));
    nd_copy_to_host(&ctx, forward(&ctx, &block, x, prompt_a), out_a);
    nd_copy_to_host(&ctx, forward(&ctx, &block, x, prompt_b), out_b);
    float d = max_diff(out_a, out_b, n);
    free(out_a);
    free(out_b);
    nd_params_free(&params);
    nd_ctx_free(&ctx);
    return d;
}

static void test_block_reads_the_prompt(void) {
    float real = prompt_effect(nd_transformer_block_forward, CONTEXT_DIM);
    // the lesson's broken module also sizes to_k/to_v for d_model, which is what lets it run at all
    float broken = prompt_effect(broken_block_forward, DIM);
    printf("prompt effect on a block's output: %.4g (cross-attention to the context), %.4g (K, V from the image)\n",
           real, broken);
    // random weights: the attention update is of order 0.1, far above float32 rounding
    CHECK(real > 1e-3f, "two prompts gave the same block output (largest difference %g)", real);
    CHECK(broken == 0.0f, "the broken block's output moved with the prompt (%g): the check cannot catch the bug",
          broken);
}

// A tiny t2i-unet with random weights samples the same noise under two prompts' contexts: the images differ.
static void test_samples_follow_the_prompt(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 5);
    nd_model_config mc = nd_model_config_default(ND_MODEL_T2I_UNET, 1, 8, CONTEXT_DIM);
    mc.down_chs[0] = 8, mc.down_chs[1] = 8, mc.down_chs[2] = 8, mc.heads = 2, mc.small_groups = 4;
    mc.T = 10;
    nd_model model;
    nd_model_create(&model, mc, &ctx);
    nd_schedule sched;
    nd_schedule_linear(&sched, mc.T, 1e-4, 0.2);
    nd_tensor *prompts[2]; // (B, TOKENS, CONTEXT_DIM) each
    for (int p = 0; p < 2; p++) {
        prompts[p] = nd_empty_persistent(&ctx, ND_SHAPE(B, TOKENS, CONTEXT_DIM));
        nd_rand_normal(&ctx, prompts[p], 0.0f, 1.0f);
    }
    nd_tensor *null_context = nd_empty_persistent(&ctx, ND_SHAPE(B, TOKENS, CONTEXT_DIM));
    nd_fill(&ctx, null_context, 0.0f);
    int64_t n = (int64_t)B * 8 * 8;
    float *images[2] = {malloc((size_t)n * sizeof(float)), malloc((size_t)n * sizeof(float))};
    nd_sample_config sc = nd_sample_defaults();
    sc.seed = 11;
    for (int p = 0; p < 2; p++)
        nd_sample_images(&ctx, &model, &sched, &sc, B, prompts[p], null_context, images[p], NULL, NULL);
    float d = max_diff(images[0], images[1], n);
    CHECK(d > 1e-3f, "two prompts gave the same samples from the same noise (largest difference %g)", d);
    // and the same prompt twice gives the same samples: the difference above is the prompt's, not the noise's
    float *again = malloc((size_t)n * sizeof(float));
    nd_sample_images(&ctx, &model, &sched, &sc, B, prompts[0], null_context, again, NULL, NULL);
    CHECK(max_diff(images[0], again, n) == 0.0f, "the same prompt and seed gave different samples");
    free(again);
    free(images[0]);
    free(images[1]);
    nd_schedule_free(&sched);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
}

// nd_file_hash is FNV-1a 64 of the bytes (values from an independent implementation): checkpoints record
// it, so it must never change. 200,000 bytes span several of its read buffers.
static void test_file_hash(void) {
    char dir[] = "/tmp/nd_test_t2i_hash_XXXXXX", path[64], hash[32];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/f", dir);
    static unsigned char bytes[200000];
    for (int i = 0; i < (int)sizeof bytes; i++) bytes[i] = (unsigned char)(i * 31 % 251);
    const struct {
        size_t n;
        const char *want;
    } cases[] = {{0, "fnv1a64:cbf29ce484222325"}, {sizeof bytes, "fnv1a64:75e4a162cfe82942"}};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(bytes, 1, cases[k].n, f) == cases[k].n && fclose(f) == 0, "writing %s", path);
        nd_error err;
        CHECK(nd_file_hash(path, hash, sizeof hash, &err) && strcmp(hash, cases[k].want) == 0,
              "%zu bytes hash to %s, expected %s", cases[k].n, hash, cases[k].want);
    }
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs("a", f) >= 0 && fclose(f) == 0, "writing %s", path);
    nd_error err;
    CHECK(nd_file_hash(path, hash, sizeof hash, &err) && strcmp(hash, "fnv1a64:af63dc4c8601ec8c") == 0,
          "\"a\" hashes to %s", hash);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_file_hash();
    test_block_reads_the_prompt();
    test_samples_follow_the_prompt();
    return test_finish("t2i_unit");
}
