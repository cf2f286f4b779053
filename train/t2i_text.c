// The frozen text side of text-to-image: a CLIP checkpoint's tokenizer and text encoder, and a cache of the
// features of every prompt already encoded (the encoder never changes, so a caption is encoded once).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

struct nd_text_encoder {
    nd_ctx ctx; // the encoder's own arenas: encoding never disturbs a caller's step
    nd_clip clip;
    nd_tokenizer tok;
    bool pooled;
    int tokens, width; // a prompt's context: (tokens, width)
    char hash[32];
    // the cache: prompt i's features are features[i * tokens * width ...], found through an open-addressing table
    char **prompts;  // (n) owned copies
    float *features; // (cap, tokens, width)
    int64_t n, cap;
    int64_t *slots; // (n_slots) index into prompts, -1 empty
    int64_t n_slots;
};

bool nd_file_hash(const char *path, char *hash, size_t size, nd_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return nd_error_set(err, "%s: cannot open the file to hash it", path);
    uint64_t h = ND_FNV1A64_OFFSET; // FNV-1a 64 of the whole file, a buffer at a time
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) h = nd_fnv1a64(h, buf, got);
    bool ok = !ferror(f);
    fclose(f);
    if (!ok) return nd_error_set(err, "%s: read error while hashing the file", path);
    snprintf(hash, size, "fnv1a64:%016llx", (unsigned long long)h);
    return true;
}

static uint64_t string_hash(const char *s) { return nd_fnv1a64(ND_FNV1A64_OFFSET, s, strlen(s)); }

bool nd_text_encoder_open(nd_text_encoder **out, const char *clip_path, const char *want_hash, bool pooled,
                          nd_device device, nd_error *err) {
    *out = NULL;
    nd_text_encoder *te = nd_xcalloc(1, sizeof *te);
    if (!nd_file_hash(clip_path, te->hash, sizeof te->hash, err)) {
        free(te);
        return nd_error_set(err, "%s: cannot read the CLIP checkpoint (the text encoder of the prompts)", clip_path);
    }
    if (want_hash && want_hash[0] && strcmp(want_hash, te->hash) != 0) {
        nd_error_set(err,
                     "%s: this CLIP checkpoint is not the one the model was trained with (content hash %s, "
                     "expected %s)",
                     clip_path, te->hash, want_hash);
        free(te);
        return false;
    }
    nd_ctx_init(&te->ctx, device, 8 << 20, 0);
    if (!nd_clip_load(clip_path, &te->clip, &te->tok, &te->ctx, err)) {
        nd_ctx_free(&te->ctx);
        free(te);
        return false;
    }
    te->pooled = pooled;
    te->tokens = pooled ? 1 : te->clip.config.context_length;
    te->width = pooled ? te->clip.config.embed_dim : te->clip.config.text_width;
    te->n_slots = 1024;
    te->slots = nd_xmalloc((size_t)te->n_slots * sizeof(int64_t));
    memset(te->slots, 0xff, (size_t)te->n_slots * sizeof(int64_t));
    *out = te;
    return true;
}

void nd_text_encoder_close(nd_text_encoder *te) {
    if (!te) return;
    for (int64_t i = 0; i < te->n; i++) free(te->prompts[i]);
    free(te->prompts);
    free(te->features);
    free(te->slots);
    nd_tokenizer_free(&te->tok);
    nd_clip_free(&te->clip);
    nd_ctx_free(&te->ctx);
    free(te);
}

int nd_text_encoder_tokens(const nd_text_encoder *te) { return te->tokens; }
int nd_text_encoder_width(const nd_text_encoder *te) { return te->width; }
const char *nd_text_encoder_hash(const nd_text_encoder *te) { return te->hash; }
int64_t nd_text_encoder_cached(const nd_text_encoder *te) { return te->n; }

// The slot of prompt: where it is, or the empty slot where it would go.
static int64_t find_slot(const nd_text_encoder *te, const char *prompt) {
    int64_t i = (int64_t)(string_hash(prompt) & (uint64_t)(te->n_slots - 1));
    while (te->slots[i] >= 0 && strcmp(te->prompts[te->slots[i]], prompt) != 0) i = (i + 1) & (te->n_slots - 1);
    return i;
}

// Doubles the table when it is half full (linear probing stays short).
static void grow_slots(nd_text_encoder *te) {
    if (2 * (te->n + 1) <= te->n_slots) return;
    free(te->slots);
    te->n_slots *= 2;
    te->slots = nd_xmalloc((size_t)te->n_slots * sizeof(int64_t));
    memset(te->slots, 0xff, (size_t)te->n_slots * sizeof(int64_t));
    for (int64_t k = 0; k < te->n; k++) te->slots[find_slot(te, te->prompts[k])] = k;
}

// Encodes n new prompts (not yet cached) and appends them to the cache. One prompt at a time: a batched matrix
// product rounds differently with the batch's size, and a prompt's features must not depend on which prompts
// happened to be encoded with it, or a resumed run (whose cache starts empty) would drift from an unbroken one.
static void encode_new(nd_text_encoder *te, const char *const *prompts, int n) {
    int64_t row = (int64_t)te->tokens * te->width, context = te->clip.config.context_length;
    if (te->n + n > te->cap) {
        te->cap = 2 * (te->n + n);
        te->prompts = nd_xrealloc(te->prompts, (size_t)te->cap * sizeof(char *));
        te->features = nd_xrealloc(te->features, (size_t)(te->cap * row) * sizeof(float));
    }
    int32_t *ids = nd_xmalloc((size_t)context * sizeof(int32_t)); // (1, context)
    bool grad = nd_ctx_set_grad(&te->ctx, false);
    for (int i = 0; i < n; i++) {
        nd_tokenizer_encode_batch(&te->tok, prompts + i, 1, ids);
        nd_tensor *tokens = NULL; // (1, context, W)
        nd_tensor *pooled = nd_clip_encode_text(&te->ctx, &te->clip, ids, 1, te->pooled ? NULL : &tokens); // (1, E)
        nd_copy_to_host(&te->ctx, te->pooled ? pooled : tokens, te->features + te->n * row);
        nd_ctx_step_end(&te->ctx);
        grow_slots(te);
        size_t len = strlen(prompts[i]) + 1;
        te->prompts[te->n] = memcpy(nd_xmalloc(len), prompts[i], len);
        te->slots[find_slot(te, prompts[i])] = te->n;
        te->n++;
    }
    nd_ctx_set_grad(&te->ctx, grad);
    free(ids);
}

void nd_text_encoder_features(nd_text_encoder *te, const char *const *prompts, int n, float *out) {
    int64_t row = (int64_t)te->tokens * te->width;
    const char **missing = nd_xmalloc((size_t)(n ? n : 1) * sizeof(char *));
    int n_missing = 0;
    for (int i = 0; i < n; i++) {
        bool seen = te->slots[find_slot(te, prompts[i])] >= 0;
        for (int k = 0; !seen && k < n_missing; k++) seen = strcmp(missing[k], prompts[i]) == 0;
        if (!seen) missing[n_missing++] = prompts[i];
    }
    if (n_missing) encode_new(te, missing, n_missing);
    free(missing);
    for (int i = 0; i < n; i++)
        memcpy(out + i * row, te->features + te->slots[find_slot(te, prompts[i])] * row, (size_t)row * sizeof(float));
}

nd_tensor *nd_text_encoder_context(nd_text_encoder *te, nd_ctx *ctx, const char *const *prompts, int n,
                                   bool persistent) {
    nd_shape shape = ND_SHAPE(n, te->tokens, te->width);
    float *host = nd_xmalloc((size_t)nd_shape_numel(shape) * sizeof(float));
    nd_text_encoder_features(te, prompts, n, host);
    nd_tensor *context = persistent ? nd_empty_persistent(ctx, shape) : nd_empty(ctx, shape);
    nd_copy_from_host(ctx, context, host);
    free(host);
    return context;
}
