// Notebook 05: get_img_encodings (preprocess each image, stack them, encode) and the cosine similarity.
//
// get_img_encodings: clip_preprocess turns each image into what the CLIP saw in training (nanodiff's: ToTensor,
// then x * 2 - 1, which nd_dataset_sample does for image i of a data set already resized to the CLIP's size),
// np.stack makes one (n, C, S, S) batch of them, and the image encoder (nd_clip_encode_image) maps the batch to
// (n, E). The cosine similarity of two embeddings is the dot product of their L2-normalised versions; for every
// pair of rows at once it is a matrix product, a_n @ b_n^T.
// The reference solution.
#include <stdlib.h>

#include "exercise.h"

// images indices[0..n-1] of ds (already at the CLIP's size) -> (n, E), not normalised
nd_tensor *ex_get_img_encodings(nd_ctx *ctx, const nd_clip *clip, const nd_dataset *ds, const int64_t *indices, int n) {
    long image = (long)ds->c * ds->h * ds->w;
    float *processed_imgs = calloc((size_t)(n * image), sizeof(float)); // the stack: (n, C, S, S)
    for (int i = 0; i < n; i++) // clip_preprocess of image indices[i], written to its place in the stack
        nd_dataset_sample(processed_imgs + i * image, ds, indices[i], false, false);
    nd_tensor *clip_imgs = nd_from_host(ctx, ND_SHAPE(n, ds->c, ds->h, ds->w), processed_imgs); // (n, C, S, S)
    free(processed_imgs);
    nd_tensor *clip_img_encodings = nd_clip_encode_image(ctx, clip, clip_imgs); // the image encoder on clip_imgs: (n, E)
    return clip_img_encodings;
}

// a (n, E), b (m, E) -> (n, m): the cosine similarity of a's row i with b's row j at [i, j]
nd_tensor *ex_cosine_similarity(nd_ctx *ctx, nd_tensor *a, nd_tensor *b) {
    nd_tensor *a_n = nd_l2_normalize(ctx, a); // (n, E), each row of unit length
    nd_tensor *b_n = nd_l2_normalize(ctx, b); // (m, E)
    return nd_matmul(ctx, a_n, b_n, false, true);
}
