// Checkpoints: bit-identical round trips (a dli-unet with Adam, EMA and RNG state after real optimizer steps,
// resumed for one more step; a dli-unet-v1 with BatchNorm running statistics), every load error with its
// message and the model left unchanged, and failed saves that keep the old file and leave no temporary.
#include <dirent.h>
#include <hdf5.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

static char tmp_dir[] = "/tmp/nd_test_ckpt_XXXXXX";

static const char *tmp_path(const char *name) {
    static char paths[32][600];
    static int next;
    char *p = paths[next++ % 32];
    snprintf(p, sizeof paths[0], "%s/%s", tmp_dir, name);
    return p;
}

// A model small enough for quick steps: the course's U-Net shape with narrow channels.
static nd_model_config small_unet(int img_size) {
    nd_model_config c = nd_model_config_default(ND_MODEL_DLI_UNET, 1, img_size, 10);
    c.down_chs[0] = 16, c.down_chs[1] = 16, c.down_chs[2] = 32;
    c.small_groups = 4, c.big_groups = 8;
    return c;
}

// A training configuration whose every field differs from zero, so a dropped field shows.
static nd_ddpm_config run_config(nd_model_config model) {
    nd_ddpm_config c;
    memset(&c, 0, sizeof c);
    c.model = model;
    snprintf(c.data, sizeof c.data, "%s", "fashion-mnist");
    c.unit_range = true, c.random_flip = true, c.beta_start = 1e-4, c.beta_end = 0.02;
    c.epochs = 3, c.batch_size = 128, c.lr = 1e-3f, c.adamw = true, c.weight_decay = 0.01f, c.cfg_drop = 0.1f;
    c.clip_grad = 1.0f, c.ema_decay = 0.999f, c.seed = 0x123456789abcdefULL, c.checkpoint_every = 500;
    c.preview_every = 100, c.max_steps = 1234567890123LL;
    return c;
}

static bool same_config(const nd_ddpm_config *a, const nd_ddpm_config *b) {
    const nd_model_config *x = &a->model, *y = &b->model;
    return x->kind == y->kind && x->img_ch == y->img_ch && x->img_size == y->img_size && x->T == y->T &&
           memcmp(x->down_chs, y->down_chs, sizeof x->down_chs) == 0 && x->t_embed_dim == y->t_embed_dim &&
           x->c_embed_dim == y->c_embed_dim && x->small_groups == y->small_groups && x->big_groups == y->big_groups &&
           x->heads == y->heads && strcmp(a->data, b->data) == 0 && a->unit_range == b->unit_range &&
           a->random_flip == b->random_flip && a->beta_start == b->beta_start && a->beta_end == b->beta_end &&
           a->epochs == b->epochs && a->batch_size == b->batch_size && a->lr == b->lr && a->adamw == b->adamw &&
           a->weight_decay == b->weight_decay && a->cfg_drop == b->cfg_drop && a->clip_grad == b->clip_grad &&
           a->ema_decay == b->ema_decay && a->seed == b->seed && a->checkpoint_every == b->checkpoint_every &&
           a->preview_every == b->preview_every && a->max_steps == b->max_steps;
}

// Whether n floats at a (memory of ctx_a's device) and b (of ctx_b's) hold the same bits.
static bool same_bits_across(nd_ctx *ctx_a, const float *a, nd_ctx *ctx_b, const float *b, int64_t n) {
    size_t bytes = (size_t)(n ? n : 1) * sizeof(float);
    float *ha = calloc(1, bytes), *hb = calloc(1, bytes);
    nd_buffer_download(ctx_a->device, ha, a, n);
    nd_buffer_download(ctx_b->device, hb, b, n);
    bool same = memcmp(ha, hb, bytes) == 0;
    free(ha);
    free(hb);
    return same;
}

static bool same_bits(nd_ctx *ctx, const float *a, const float *b, int64_t n) {
    return same_bits_across(ctx, a, ctx, b, n);
}

// A host copy of everything a load may write (parameters, buffers, Adam moments, EMA weights), to see
// whether a failed load touched any of it; *n receives its length.
static float *snapshot(nd_ctx *ctx, const nd_model *m, const nd_adam *opt, const nd_ema *ema, int64_t *n) {
    const float *parts[5] = {m->params.data, m->buffers.data, opt ? opt->m : NULL, opt ? opt->v : NULL,
                             ema ? ema->shadow : NULL};
    int64_t sizes[5] = {m->params.total, m->buffers.total, opt ? opt->n : 0, opt ? opt->n : 0, ema ? ema->n : 0};
    *n = sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4];
    float *h = malloc((size_t)(*n + 1) * sizeof(float)), *at = h;
    for (int i = 0; i < 5; at += sizes[i], i++) nd_buffer_download(ctx->device, at, parts[i], sizes[i]);
    return h;
}

// One real optimizer step: noise prediction at random t with a one-hot context, MSE, backward, Adam, EMA.
static void train_step(nd_ctx *ctx, nd_model *m, nd_adam *opt, nd_ema *ema) {
    const nd_model_config *c = &m->config;
    enum { batch = 2 };
    nd_shape image = ND_SHAPE(batch, c->img_ch, c->img_size, c->img_size);
    nd_tensor *x = nd_empty(ctx, image), *noise = nd_empty(ctx, image), *t = nd_empty(ctx, ND_SHAPE(batch));
    nd_rand_normal(ctx, x, 0.0f, 1.0f);
    nd_rand_normal(ctx, noise, 0.0f, 1.0f);
    nd_rand_uniform(ctx, t, 0.0f, (float)c->T);
    float one_hot[batch * 10] = {0};
    one_hot[3] = one_hot[10 + 7] = 1.0f;
    nd_tensor *context = c->c_embed_dim == 10 ? nd_from_host(ctx, ND_SHAPE(batch, 10), one_hot) : NULL;
    nd_params_zero_grad(&m->params, ctx);
    nd_backward(ctx, nd_mse_loss(ctx, nd_model_forward(ctx, m, x, t, context, true), noise));
    nd_adam_step(opt, &m->params, ctx);
    if (ema) nd_ema_update(ema, &m->params, ctx, opt->step - 1);
    nd_ctx_step_end(ctx);
}

static void test_round_trip(const char *path) {
    nd_ctx ctx, ctx2;
    nd_ctx_init(&ctx, ND_CPU, 1 << 22, 11);
    nd_ctx_init(&ctx2, ND_CPU, 1 << 22, 99);
    nd_model m, m2;
    nd_adam opt, opt2;
    nd_ema ema, ema2;
    nd_model_create(&m, small_unet(16), &ctx);
    nd_adam_init(&opt, &m.params, &ctx, nd_adamw_defaults());
    nd_ema_init(&ema, &m.params, &ctx, 0.9f);
    for (int i = 0; i < 2; i++) train_step(&ctx, &m, &opt, &ema);
    nd_ddpm_config cfg = run_config(m.config), cfg2;
    nd_train_state state = {.step = 2, .rng = ctx.rng}, state2 = {0};
    nd_error err = {{0}};
    CHECK(nd_checkpoint_save(path, &m, &cfg, &state, &opt, &ema, &ctx, &err), "save: %s", err.msg);

    // another run (another seed, fresh optimizer and EMA) takes over everything from the file
    nd_model_create(&m2, small_unet(16), &ctx2);
    nd_adam_init(&opt2, &m2.params, &ctx2, nd_adam_defaults());
    nd_ema_init(&ema2, &m2.params, &ctx2, 0.5f);
    CHECK(!same_bits(&ctx, m.params.data, m2.params.data, m.params.total), "both models start equal");
    bool ok = nd_checkpoint_load(path, &m2, &cfg2, &state2, &opt2, &ema2, &ctx2, &err);
    CHECK(ok, "load: %s", err.msg);
    CHECK(same_bits(&ctx, m.params.data, m2.params.data, m.params.total), "parameters differ after load");
    CHECK(same_bits(&ctx, opt.m, opt2.m, opt.n) && same_bits(&ctx, opt.v, opt2.v, opt.n), "Adam moments differ");
    CHECK(opt2.step == 2 && memcmp(&opt.config, &opt2.config, sizeof opt.config) == 0, "Adam step %lld or config",
          (long long)opt2.step);
    CHECK(same_bits(&ctx, ema.shadow, ema2.shadow, ema.n) && ema2.decay == 0.9f, "EMA differs (decay %g)", ema2.decay);
    CHECK(state2.step == 2 && state2.rng.seed == ctx.rng.seed && state2.rng.offset == ctx.rng.offset,
          "state: step %lld, rng (%llu, %llu)", (long long)state2.step, (unsigned long long)state2.rng.seed,
          (unsigned long long)state2.rng.offset);
    CHECK(same_config(&cfg, &cfg2), "the training configuration differs after load");
    nd_ddpm_config cfg3;
    CHECK(nd_checkpoint_read_config(path, &cfg3, &err) && same_config(&cfg, &cfg3), "read_config: %s", err.msg);

    // resuming is exact: one more step on each side gives the same bits
    ctx2.rng = state2.rng;
    train_step(&ctx, &m, &opt, &ema);
    train_step(&ctx2, &m2, &opt2, &ema2);
    CHECK(same_bits(&ctx, m.params.data, m2.params.data, m.params.total), "parameters differ one step after resume");
    CHECK(same_bits(&ctx, opt.v, opt2.v, opt.n) && same_bits(&ctx, ema.shadow, ema2.shadow, ema.n),
          "Adam or EMA differ one step after resume");
    nd_ema_free(&ema);
    nd_ema_free(&ema2);
    nd_adam_free(&opt);
    nd_adam_free(&opt2);
    nd_model_free(&m);
    nd_model_free(&m2);
    nd_ctx_free(&ctx);
    nd_ctx_free(&ctx2);
}

// Notebook 02's BatchNorm U-Net: running statistics moved by a training-mode forward come back too; the
// model alone is saved (no training configuration, optimizer or EMA).
static void test_batch_norm(const char *path) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 22, 5);
    nd_model m, m2;
    nd_model_create(&m, nd_model_config_default(ND_MODEL_DLI_UNET_V1, 1, 16, 0), &ctx);
    bool grad = nd_ctx_set_grad(&ctx, false);
    nd_tensor *x = nd_empty(&ctx, ND_SHAPE(4, 1, 16, 16)), *t = nd_empty(&ctx, ND_SHAPE(4));
    nd_rand_normal(&ctx, x, 0.5f, 2.0f);
    nd_rand_uniform(&ctx, t, 0.0f, 150.0f);
    nd_model_forward(&ctx, &m, x, t, NULL, true);
    nd_ctx_set_grad(&ctx, grad);
    nd_ctx_step_end(&ctx);
    nd_model_create(&m2, m.config, &ctx);
    CHECK(m.buffers.n > 0 && !same_bits(&ctx, m.buffers.data, m2.buffers.data, m.buffers.total),
          "the forward did not move the running statistics");
    nd_error err = {{0}};
    CHECK(nd_checkpoint_save(path, &m, NULL, NULL, NULL, NULL, &ctx, &err), "save: %s", err.msg);
    CHECK(nd_checkpoint_load(path, &m2, NULL, NULL, NULL, NULL, &ctx, &err), "load: %s", err.msg);
    CHECK(same_bits(&ctx, m.params.data, m2.params.data, m.params.total), "v1 parameters differ after load");
    CHECK(same_bits(&ctx, m.buffers.data, m2.buffers.data, m.buffers.total), "BatchNorm buffers differ after load");
    nd_model_free(&m);
    nd_model_free(&m2);
    nd_ctx_free(&ctx);
}

// A model trained on the GPU loads on the CPU and on the GPU again, bit for bit: files do not depend on the
// device that wrote them. Skipped without a usable GPU.
static void test_cross_device(const char *path) {
    char why[256];
    if (!nd_cuda_available(why, sizeof why)) {
        printf("checkpoint: GPU round trip skipped: %s\n", why);
        return;
    }
    nd_ctx gpu, cpu;
    nd_ctx_init(&gpu, ND_CUDA, 1 << 22, 21);
    nd_ctx_init(&cpu, ND_CPU, 1 << 22, 22);
    nd_model m, on_cpu, on_gpu;
    nd_adam opt, opt_cpu;
    nd_ema ema, ema_cpu;
    nd_model_create(&m, small_unet(16), &gpu);
    nd_adam_init(&opt, &m.params, &gpu, nd_adam_defaults());
    nd_ema_init(&ema, &m.params, &gpu, 0.9f);
    train_step(&gpu, &m, &opt, &ema);
    nd_error err = {{0}};
    CHECK(nd_checkpoint_save(path, &m, NULL, NULL, &opt, &ema, &gpu, &err), "GPU save: %s", err.msg);
    nd_model_create(&on_cpu, m.config, &cpu);
    nd_adam_init(&opt_cpu, &on_cpu.params, &cpu, nd_adam_defaults());
    nd_ema_init(&ema_cpu, &on_cpu.params, &cpu, 0.5f);
    CHECK(nd_checkpoint_load(path, &on_cpu, NULL, NULL, &opt_cpu, &ema_cpu, &cpu, &err), "CPU load: %s", err.msg);
    CHECK(same_bits_across(&gpu, m.params.data, &cpu, on_cpu.params.data, m.params.total) &&
              same_bits_across(&gpu, opt.v, &cpu, opt_cpu.v, opt.n) &&
              same_bits_across(&gpu, ema.shadow, &cpu, ema_cpu.shadow, ema.n),
          "a GPU checkpoint loads differently on the CPU");
    nd_model_create(&on_gpu, m.config, &gpu);
    CHECK(nd_checkpoint_load(path, &on_gpu, NULL, NULL, NULL, NULL, &gpu, &err), "GPU load: %s", err.msg);
    CHECK(same_bits(&gpu, m.params.data, on_gpu.params.data, m.params.total), "GPU parameters differ after load");
    nd_ema_free(&ema);
    nd_ema_free(&ema_cpu);
    nd_adam_free(&opt);
    nd_adam_free(&opt_cpu);
    nd_model_free(&m);
    nd_model_free(&on_cpu);
    nd_model_free(&on_gpu);
    nd_ctx_free(&gpu);
    nd_ctx_free(&cpu);
}

// Loading path into m fails with a message naming the file and holding every word, and changes nothing.
static void check_load_fails(nd_ctx *ctx, nd_model *m, nd_adam *opt, nd_ema *ema, const char *path, int n_words, ...) {
    int64_t n;
    float *before = snapshot(ctx, m, opt, ema, &n);
    int64_t opt_step = opt ? opt->step : 0;
    float decay = ema ? ema->decay : 0.0f;
    nd_train_state state = {.step = -5};
    nd_error err = {{0}};
    bool ok = nd_checkpoint_load(path, m, NULL, &state, opt, ema, ctx, &err);
    CHECK(!ok, "%s: a bad checkpoint was accepted", path);
    va_list words;
    va_start(words, n_words);
    test_message_names(err.msg, path, n_words, words);
    va_end(words);
    float *after = snapshot(ctx, m, opt, ema, &n);
    CHECK(memcmp(before, after, (size_t)n * sizeof(float)) == 0 && state.step == -5 &&
              (!opt || opt->step == opt_step) && (!ema || ema->decay == decay),
          "%s: a failed load changed the model, optimizer, EMA or state", path);
    free(before);
    free(after);
}

static bool copy_file(const char *src, const char *dst, double fraction) {
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    if (!out) {
        if (in) fclose(in);
        return false;
    }
    fseek(in, 0, SEEK_END);
    long keep = (long)(ftell(in) * fraction);
    fseek(in, 0, SEEK_SET);
    for (long i = 0; i < keep; i++) fputc(fgetc(in), out);
    fclose(in);
    return fclose(out) == 0;
}

// A copy of src where dataset `name` is removed, and replaced by a float dataset of `ndim` dims when ndim > 0.
static const char *edited_copy(const char *src, const char *dst, const char *name, int ndim, const hsize_t *dims) {
    copy_file(src, dst, 1.0);
    hid_t file = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    if (H5Lexists(file, name, H5P_DEFAULT) > 0) H5Ldelete(file, name, H5P_DEFAULT);
    if (ndim > 0) {
        float zeros[64] = {0};
        hid_t space = H5Screate_simple(ndim, dims, NULL);
        hid_t dset = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
        H5Dclose(dset);
        H5Sclose(space);
    }
    H5Fclose(file);
    return dst;
}

// A copy of src with one byte of dataset `name`'s stored data flipped (the file structure stays intact).
static const char *damaged_copy(const char *src, const char *dst, const char *name) {
    copy_file(src, dst, 1.0);
    hid_t file = H5Fopen(dst, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    haddr_t addr = 0;
    hsize_t size = 0;
    unsigned filter_mask;
    hid_t space = H5Dget_space(dset);
    H5Dget_chunk_info(dset, space, 0, NULL, &filter_mask, &addr, &size);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    FILE *f = fopen(dst, "r+b");
    fseek(f, (long)(addr + size / 2), SEEK_SET);
    int byte = fgetc(f);
    fseek(f, (long)(addr + size / 2), SEEK_SET);
    fputc(byte ^ 0x10, f);
    fclose(f);
    return dst;
}

static void test_load_errors(const char *good, const char *v1) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 22, 3);
    nd_model m;
    nd_adam opt;
    nd_ema ema;
    nd_model_create(&m, small_unet(16), &ctx);
    nd_adam_init(&opt, &m.params, &ctx, nd_adam_defaults());
    nd_ema_init(&ema, &m.params, &ctx, 0.9f);
    nd_error err = {{0}};

    check_load_fails(&ctx, &m, NULL, NULL, tmp_path("missing.h5"), 2, "cannot open", "No such file");
    const char *garbage = tmp_path("garbage.h5");
    FILE *f = fopen(garbage, "wb");
    for (int i = 0; i < 4096; i++) fputc((i * 7919) & 0xff, f);
    fclose(f);
    check_load_fails(&ctx, &m, NULL, NULL, garbage, 2, "not a nanodiff checkpoint", "not an HDF5 file");
    const char *images = tmp_path("images.h5");
    hid_t file = H5Fcreate(images, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate_simple(1, (hsize_t[]){4}, NULL);
    H5Dclose(H5Dcreate2(file, "images", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space);
    H5Fclose(file);
    check_load_fails(&ctx, &m, NULL, NULL, images, 2, "not a nanodiff checkpoint", "'format'");
    const char *half = tmp_path("half.h5");
    copy_file(good, half, 0.5);
    check_load_fails(&ctx, &m, NULL, NULL, half, 1, "truncated or damaged");

    check_load_fails(&ctx, &m, NULL, NULL, v1, 1, "holds a dli-unet-v1 model, the model is a dli-unet");
    const char *small = tmp_path("img8.h5");
    nd_model m8;
    nd_model_create(&m8, small_unet(8), &ctx);
    CHECK(nd_checkpoint_save(small, &m8, NULL, NULL, NULL, NULL, &ctx, &err), "save: %s", err.msg);
    nd_model_free(&m8);
    check_load_fails(&ctx, &m, NULL, NULL, small, 1, "checkpoint has img_size 8, the model 16");

    // the last parameter registered, so every other one has passed its check before
    const char *shape = edited_copy(good, tmp_path("shape.h5"), "params/out.3.bias", 1, (hsize_t[]){2});
    check_load_fails(&ctx, &m, &opt, &ema, shape, 1,
                     "'params/out.3.bias' has shape (2) in the checkpoint, (1) in the model");
    const char *missing = edited_copy(good, tmp_path("lacks.h5"), "params/down1.model.0.model.0.weight", 0, NULL);
    check_load_fails(&ctx, &m, NULL, NULL, missing, 2, "lacks 'params/down1.model.0.model.0.weight'", "(16,16,3,3)");
    const char *extra = edited_copy(good, tmp_path("extra.h5"), "ema/extra.weight", 1, (hsize_t[]){3});
    check_load_fails(&ctx, &m, &opt, &ema, extra, 1, "has 'ema/extra.weight', which the model lacks");
    const char *damaged = damaged_copy(good, tmp_path("damaged.h5"), "params/out.0.weight");
    check_load_fails(&ctx, &m, &opt, &ema, damaged, 2, "'params/out.0.weight' cannot be read", "damaged");
    check_load_fails(&ctx, &m, &opt, NULL, small, 1, "img_size"); // the model check comes before the groups
    const char *bare = tmp_path("bare.h5");
    CHECK(nd_checkpoint_save(bare, &m, NULL, NULL, NULL, NULL, &ctx, &err), "save: %s", err.msg);
    check_load_fails(&ctx, &m, &opt, NULL, bare, 1, "no optimizer state");
    check_load_fails(&ctx, &m, NULL, &ema, bare, 1, "no EMA weights");

    nd_ddpm_config cfg;
    CHECK(!nd_checkpoint_read_config(images, &cfg, &err) && strstr(err.msg, "not a nanodiff checkpoint"),
          "read_config of a non-checkpoint: %s", err.msg);
    // nothing loaded so far: the damaged copy is the good file apart from one byte, and loads into a twin
    CHECK(!nd_checkpoint_load(damaged, &m, NULL, NULL, NULL, NULL, &ctx, &err), "a damaged file loaded");
    CHECK(nd_checkpoint_load(good, &m, NULL, NULL, &opt, &ema, &ctx, &err), "good file after errors: %s", err.msg);
    nd_ema_free(&ema);
    nd_adam_free(&opt);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

// Number of temporary files ("*.tmp.*") left in the test directory.
static int temporaries_left(void) {
    DIR *dir = opendir(tmp_dir);
    int n = 0;
    for (struct dirent *e; dir && (e = readdir(dir));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (dir) closedir(dir);
    return n;
}

static char *read_all(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)*size + 1);
    *size = (long)fread(buf, 1, (size_t)*size, f);
    fclose(f);
    return buf;
}

static void check_save_fails(nd_ctx *ctx, nd_model *m, nd_adam *opt, const char *path, const char *word) {
    nd_error err = {{0}};
    CHECK(!nd_checkpoint_save(path, m, NULL, NULL, opt, NULL, ctx, &err), "%s: an impossible save succeeded", path);
    CHECK(strstr(err.msg, path) && strstr(err.msg, word), "message lacks the path or \"%s\": %s", word, err.msg);
    CHECK(temporaries_left() == 0, "%s: a failed save left a temporary file", path);
}

static void test_save_errors(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 22, 8);
    nd_model m;
    nd_adam opt;
    nd_model_create(&m, small_unet(16), &ctx);
    nd_adam_init(&opt, &m.params, &ctx, nd_adam_defaults());
    nd_error err = {{0}};
    const char *keep = tmp_path("keep.h5");
    CHECK(nd_checkpoint_save(keep, &m, NULL, NULL, &opt, NULL, &ctx, &err), "save: %s", err.msg);
    long size = 0, size_after = 0;
    char *before = read_all(keep, &size);

    check_save_fails(&ctx, &m, &opt, tmp_path("no/such/dir/model.h5"),
                     "creating the temporary file failed: No such file");
    // the target is a directory: everything is written, then the rename fails
    const char *dir = tmp_path("a-directory");
    mkdir(dir, 0755);
    check_save_fails(&ctx, &m, &opt, dir, "renaming");
    rmdir(dir);
    // a file-size limit makes writing fail halfway (root ignores permissions, not this limit)
    train_step(&ctx, &m, &opt, NULL);
    struct rlimit saved, small = {.rlim_cur = 32 << 10};
    getrlimit(RLIMIT_FSIZE, &saved);
    small.rlim_max = saved.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    check_save_fails(&ctx, &m, &opt, keep, "File too large");
    setrlimit(RLIMIT_FSIZE, &saved);
    char *after = read_all(keep, &size_after);
    CHECK(before && after && size == size_after && memcmp(before, after, (size_t)size) == 0,
          "a failed save changed the existing checkpoint");
    CHECK(nd_checkpoint_load(keep, &m, NULL, NULL, &opt, NULL, &ctx, &err), "old checkpoint: %s", err.msg);
    free(before);
    free(after);
    nd_adam_free(&opt);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

static void remove_tmp_dir(void) {
    DIR *dir = opendir(tmp_dir);
    for (struct dirent *e; dir && (e = readdir(dir));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
    if (dir) closedir(dir);
    rmdir(tmp_dir);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // the test's own HDF5 edits print nothing either
    char good[600], v1[600];
    snprintf(good, sizeof good, "%s", tmp_path("good.h5"));
    snprintf(v1, sizeof v1, "%s", tmp_path("v1.h5"));
    test_round_trip(good);
    test_batch_norm(v1);
    test_cross_device(tmp_path("gpu.h5"));
    test_load_errors(good, v1);
    test_save_errors();
    remove_tmp_dir();
    return test_finish("checkpoint");
}
