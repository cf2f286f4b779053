// CLIP checkpoints: a save and load round trip restores the weights, Adam's moments and step, the run's state and
// the tokenizer exactly; a model of another configuration, a tensor of another shape, a missing optimizer and a
// file of another kind are refused with a message that names what differs, and leave the model unchanged.
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

static nd_clip_config tiny_config(int vocab_size) {
    return (nd_clip_config){.vocab_size = vocab_size,
                            .context_length = 8,
                            .text_width = 8,
                            .text_layers = 1,
                            .text_heads = 2,
                            .img_ch = 1,
                            .img_size = 8,
                            .patch_size = 4,
                            .vision_width = 8,
                            .vision_layers = 1,
                            .vision_heads = 2,
                            .embed_dim = 6};
}

// Loading path into clip must fail with a message holding want1 and want2, leaving clip's weights as they were.
static void check_refused(const char *path, nd_clip *clip, nd_adam *opt, nd_ctx *ctx, const char *want1,
                          const char *want2) {
    size_t bytes = (size_t)clip->params.total * sizeof(float);
    float *before = nd_xmalloc(bytes); // (total,) the weights before the load
    memcpy(before, clip->params.data, bytes);
    nd_tokenizer tok = {0};
    nd_error err = {0};
    CHECK(!nd_clip_checkpoint_load(path, clip, &tok, NULL, NULL, opt, ctx, &err), "loaded, expected '%s'", want1);
    CHECK(strstr(err.msg, want1) && strstr(err.msg, want2), "message '%s' lacks '%s' or '%s'", err.msg, want1, want2);
    CHECK(memcmp(before, clip->params.data, bytes) == 0, "a refused load changed the weights");
    CHECK(tok.merges == NULL, "a refused load handed out a tokenizer");
    free(before);
}

// Replaces params/logit_scale, shape (1), by a float dataset of shape (2).
static bool reshape_logit_scale(const char *path) {
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t dims[1] = {2};
    float values[2] = {1, 2};
    hid_t space = H5Screate_simple(1, dims, NULL);
    bool ok = file >= 0 && H5Ldelete(file, "params/logit_scale", H5P_DEFAULT) >= 0;
    hid_t d = ok ? H5Dcreate2(file, "params/logit_scale", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                 : -1;
    ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    if (file >= 0) H5Fclose(file);
    return ok;
}

static bool delete_kind(const char *path) {
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    bool ok = file >= 0 && H5Adelete(file, "kind") >= 0;
    if (file >= 0) H5Fclose(file);
    return ok;
}

int main(void) {
    char dir[] = "/tmp/nd_test_clip_ckpt_XXXXXX", path[200], bare[200];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/clip.h5", dir);
    snprintf(bare, sizeof bare, "%s/bare.h5", dir);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 1);
    nd_error err = {0};
    const char *texts[] = {"a photo of a bag", "a dark sneaker", "a light coat", "a photo of a shirt"};
    nd_tokenizer tok;
    CHECK(nd_tokenizer_train(&tok, texts, ND_COUNT(texts), 266, 8, &err), "%s", err.msg);

    nd_clip a, b, other;
    nd_clip_create(&a, tiny_config(tok.vocab_size), &ctx);
    nd_adam opt_a, opt_b;
    nd_adam_init(&opt_a, &a.params, &ctx, nd_adamw_defaults());
    for (int64_t i = 0; i < opt_a.n; i++) opt_a.m[i] = 0.001f * (float)i, opt_a.v[i] = 0.002f * (float)i;
    opt_a.step = 5;
    nd_clip_train_config cfg = nd_clip_train_defaults();
    snprintf(cfg.data, sizeof cfg.data, "unit");
    nd_train_state state = {.step = 7, .rng = {.seed = 11, .offset = 13}};
    CHECK(nd_clip_checkpoint_save(path, &a, &tok, &cfg, &state, &opt_a, &ctx, &err), "%s", err.msg);
    CHECK(nd_clip_checkpoint_save(bare, &a, &tok, NULL, NULL, NULL, &ctx, &err), "%s", err.msg);
    CHECK(nd_clip_checkpoint_is_clip(path), "%s is not recognised as a CLIP checkpoint", path);

    // round trip into a CLIP initialised otherwise
    nd_clip_train_config stored;
    CHECK(nd_clip_checkpoint_read_config(path, &stored, &err), "%s", err.msg);
    CHECK(memcmp(&stored.model, &a.config, sizeof a.config) == 0 && strcmp(stored.data, "unit") == 0 &&
              stored.lr == cfg.lr && stored.warmup_steps == cfg.warmup_steps,
          "the stored configuration differs");
    nd_clip_create(&b, stored.model, &ctx);
    nd_adam_init(&opt_b, &b.params, &ctx, nd_adamw_defaults());
    size_t bytes = (size_t)a.params.total * sizeof(float);
    CHECK(memcmp(a.params.data, b.params.data, bytes) != 0, "two CLIPs were initialised alike");
    nd_tokenizer loaded = {0};
    nd_train_state st = {0};
    CHECK(nd_clip_checkpoint_load(path, &b, &loaded, NULL, &st, &opt_b, &ctx, &err), "%s", err.msg);
    CHECK(memcmp(a.params.data, b.params.data, bytes) == 0, "loaded weights differ");
    CHECK(memcmp(opt_a.m, opt_b.m, bytes) == 0 && memcmp(opt_a.v, opt_b.v, bytes) == 0, "loaded moments differ");
    CHECK(opt_b.step == 5 && st.step == 7 && st.rng.seed == 11 && st.rng.offset == 13,
          "Adam step %lld, state step %lld, rng (%llu, %llu)", (long long)opt_b.step, (long long)st.step,
          (unsigned long long)st.rng.seed, (unsigned long long)st.rng.offset);
    CHECK(loaded.n_merges == tok.n_merges && loaded.context == tok.context &&
              memcmp(loaded.merges, tok.merges, (size_t)tok.n_merges * 2 * sizeof(int32_t)) == 0,
          "loaded tokenizer differs");
    nd_tokenizer_free(&loaded);

    // a tokenizer that pads to another length than the model's positions (rows are sized by the model's)
    char longer[200];
    snprintf(longer, sizeof longer, "%s/longer.h5", dir);
    nd_tokenizer tok12;
    CHECK(nd_tokenizer_train(&tok12, texts, ND_COUNT(texts), 266, 12, &err), "%s", err.msg);
    CHECK(nd_clip_checkpoint_save(longer, &a, &tok12, NULL, NULL, NULL, &ctx, &err), "%s", err.msg);
    nd_tokenizer_free(&tok12);
    check_refused(longer, &b, NULL, &ctx, "the tokenizer pads to 12 tokens", "the model's positions number 8");
    remove(longer);

    // refusals name what differs
    nd_clip_config wide = tiny_config(tok.vocab_size);
    wide.text_width = 12;
    nd_clip_create(&other, wide, &ctx);
    check_refused(path, &other, NULL, &ctx, "text_width 8", "the model 12");
    check_refused(bare, &b, &opt_b, &ctx, "no optimizer state", "adam");
    CHECK(reshape_logit_scale(path), "could not rewrite %s", path);
    check_refused(path, &b, NULL, &ctx, "'params/logit_scale' has shape (2) in the checkpoint", "(1) in the model");
    CHECK(delete_kind(bare), "could not rewrite %s", bare);
    check_refused(bare, &b, NULL, &ctx, "not a CLIP checkpoint", "kind 'none'");
    CHECK(!nd_clip_checkpoint_is_clip(bare), "a file without kind 'clip' passed as a CLIP checkpoint");

    nd_clip_free(&other);
    nd_adam_free(&opt_b), nd_adam_free(&opt_a);
    nd_clip_free(&b), nd_clip_free(&a);
    nd_tokenizer_free(&tok);
    nd_ctx_free(&ctx);
    unlink(path), unlink(bare), rmdir(dir);
    return test_finish("clip_checkpoint");
}
