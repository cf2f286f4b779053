// Checks ex_get_img_encodings against the image encoder run on the stacked, preprocessed images of a small
// seeded data set, and ex_cosine_similarity against normalise-then-dot.
#include "check.h"

enum { N_SET = 5, N = 3, SIZE = 16 };

// The encoding of one image of ds, preprocessed into [0, 1] (unit) or [-1, 1].
static nd_tensor *encode_one(nd_ctx *ctx, const nd_clip *clip, const nd_dataset *ds, int64_t i, bool unit) {
    float img[SIZE * SIZE];
    nd_dataset_sample(img, ds, i, false, unit);
    return nd_clip_encode_image(ctx, clip, nd_from_host(ctx, ND_SHAPE(1, 1, SIZE, SIZE), img));
}

// What row i of got holds: image j's encoding (j < N_SET), the [0, 1] image j's (N_SET + j), a blank image's
// (2 N_SET), or something else (-1).
static int identify_row(nd_ctx *ctx, const nd_clip *clip, const nd_dataset *ds, nd_tensor *got, int i) {
    nd_tensor *row = nd_slice(ctx, got, 0, i, i + 1);
    for (int j = 0; j < 2 * N_SET; j++)
        if (ck_close_to(ctx, row, encode_one(ctx, clip, ds, j % N_SET, j >= N_SET), 1e-4)) return j;
    float zeros[SIZE * SIZE] = {0};
    if (ck_close_to(ctx, row, nd_clip_encode_image(ctx, clip, nd_from_host(ctx, ND_SHAPE(1, 1, SIZE, SIZE), zeros)), 1e-4))
        return 2 * N_SET;
    return -1;
}

static bool check_encodings(nd_ctx *ctx, const nd_clip *clip, const nd_dataset *ds) {
    const int64_t indices[N] = {3, 0, 4};
    nd_tensor *got = ex_get_img_encodings(ctx, clip, ds, indices, N);
    nd_tensor *rows[N];
    for (int i = 0; i < N; i++) rows[i] = encode_one(ctx, clip, ds, indices[i], false);
    nd_tensor *want = nd_concat(ctx, rows, N, 0); // (3, E)
    if (!ck_shape("get_img_encodings' result", got, want->shape)) {
        if (got && got->shape.ndim == 4)
            ck_fail("that is the stacked image batch itself: the image encoder (nd_clip_encode_image) maps it to (n, E)");
        return false;
    }
    if (ck_close_to(ctx, got, want, 1e-4)) return true;
    for (int i = 0; i < N; i++) {
        int what = identify_row(ctx, clip, ds, got, i);
        if (what == (int)indices[i]) continue;
        if (what == 2 * N_SET)
            ck_fail("row %d of your encodings is that of a blank (all-zero) image: nothing was written to place %d of "
                    "the stack; image i goes to processed_imgs + i * image (C*H*W floats each)", i, i);
        else if (what >= N_SET)
            ck_fail("row %d is the encoding of the image in [0, 1]: the CLIP was trained on x * 2 - 1, in [-1, 1] "
                    "(nd_dataset_sample's unit_range = false)", i);
        else if (what >= 0)
            ck_fail("row %d is the encoding of image %d, expected image indices[%d] = %d: is each image written to its "
                    "own place, processed_imgs + i * image?", i, what, i, (int)indices[i]);
    }
    return ck_close(ctx, "get_img_encodings' result", got, want, 1e-4);
}

static bool check_cosine(nd_ctx *ctx) {
    nd_tensor *a = ck_randn(ctx, ND_SHAPE(3, 8)), *b = nd_mul_scalar(ctx, ck_randn(ctx, ND_SHAPE(4, 8)), 3.0f);
    nd_tensor *got = ex_cosine_similarity(ctx, a, b);
    nd_tensor *a_n = nd_l2_normalize(ctx, a), *b_n = nd_l2_normalize(ctx, b);
    nd_tensor *want = nd_matmul(ctx, a_n, b_n, false, true); // (3, 4)
    if (got && got->shape.ndim == 2 && got->shape.d[0] == 4 && got->shape.d[1] == 3)
        return ck_fail("the cosine similarity has shape (4,3), expected (3,4): row i is a's row i, column j b's row j");
    if (!ck_shape("the cosine similarity", got, want->shape)) return false;
    if (ck_close_to(ctx, got, want, 1e-5)) return true;
    if (ck_close_to(ctx, got, nd_matmul(ctx, a, b, false, true), 1e-4))
        ck_fail("your similarities are the plain dot products a @ b^T: L2-normalise both first (each row divided by its "
                "length), or longer embeddings score higher whatever they point at");
    else if (ck_close_to(ctx, got, nd_matmul(ctx, a_n, b, false, true), 1e-4) ||
             ck_close_to(ctx, got, nd_matmul(ctx, a, b_n, false, true), 1e-4))
        ck_fail("only one of the two sides is L2-normalised: normalise a and b");
    return ck_close(ctx, "the cosine similarity", got, want, 1e-5);
}

static bool check(nd_ctx *ctx) {
    nd_clip_config cfg = nd_clip_config_default(300);
    cfg.img_size = SIZE, cfg.text_layers = 1, cfg.vision_layers = 1;
    nd_clip clip;
    nd_clip_create(&clip, cfg, ctx);
    static uint8_t pixels[N_SET * SIZE * SIZE];
    for (int i = 0; i < N_SET * SIZE * SIZE; i++) pixels[i] = (uint8_t)((i * 2654435761u) >> 24);
    nd_dataset ds = {.n = N_SET, .c = 1, .h = SIZE, .w = SIZE, .images = pixels};
    bool ok = check_encodings(ctx, &clip, &ds);
    ok = check_cosine(ctx) && ok;
    nd_clip_free(&clip);
    return ok;
}
