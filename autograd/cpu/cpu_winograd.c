// Inference 3x3 convolutions (stride 1, padding 1) by Winograd's F(4x4, 3x3): F.conv2d(x, w, b, 1, 1)
// with 4x fewer multiplications than the direct sum (36 per 16 outputs and channel pair, not 144), for
// sampling where the convolution library has no Winograd of its own (oneDNN 2.6 has one only on AVX-512
// CPUs; the build without oneDNN has none).
//
// The output is cut into 4x4 tiles (batch * ceil(H/4) * ceil(W/4) of them); each reads a 6x6 input tile.
// The input is first copied with its channels in blocks of 16 (as oneDNN's nChw16c), so that a tile's
// window loads 16 channels of a pixel as one vector and the transforms run on 16 channels side by side.
// Then, per chunk of tiles: every input tile of every channel is transformed (winograd_math.h) into
// V (36, tiles, in_c); 36 matrix products M_e (tiles, out_c) = V_e (tiles, in_c) U_e (in_c, out_c) with the
// transformed filter U (36, in_c, out_c) run through the backend's GEMM; each M tile is transformed back,
// gets its bias and is cropped to the image. Each thread runs whole chunks, and chunks keep V and M at
// ND_WINO_CHUNK_BYTES, so they stay in the core's cache between the transforms and the products whatever
// the batch.
//
// The filter transform costs about as much as one small batch's convolution, and sampling runs the same
// weights for every step, so transformed filters are cached, keyed by the weights' address and shape.
// An entry holds a copy of the weights it was made from and every call compares the weights with it: an
// optimizer step, a loaded checkpoint or EMA weights copied into the same buffer are seen (as the oneDNN
// weight cache in cpu_dnnl.c does), at the cost of reading the weights twice per call.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../winograd_math.h"
#include "cpu.h"

// V and M of one chunk of tiles, per thread: about a core's L2. The 64->64 convolution of 50 16x16 images on
// one AVX-512 core: 4.5 ms a call with 0.5-1 MiB chunks, 5.3 with 2 MiB, 6.1 with 8 MiB.
#define ND_WINO_CHUNK_BYTES ((size_t)1 << 20)
#define ND_WINO_MAX_FILTERS 64 // a U-Net has about 20 convolutions

// The grow-only buffers: the input in channel blocks; V then M of a chunk of tiles.
enum { SCRATCH_BLOCKED, SCRATCH_CHUNK, N_SCRATCH };

typedef struct filter_entry {
    const float *user;   // the weights' address
    int64_t out_c, in_c; // their shape (out_c, in_c, 3, 3)
    float *plain;        // (out_c, in_c, 3, 3) the weights `transformed` was made from
    float *transformed;  // (36, in_c, out_c)
} filter_entry;

static struct {
    filter_entry filters[ND_WINO_MAX_FILTERS];
    int n_filters, next_filter; // entries filled; the entry a full cache replaces next
    void *scratch[N_SCRATCH];
    size_t scratch_bytes[N_SCRATCH];
    size_t filter_bytes; // held by the cache's entries
} wino;

nd_winograd_choice nd_cpu_winograd_choice(const nd_conv_geom *g, int64_t filters, bool transposed, bool inference) {
    bool qualifies = inference && !transposed && g->kernel_h == 3 && g->kernel_w == 3 && g->stride == 1 &&
                     g->padding == 1;
    if (!qualifies) return ND_WINOGRAD_NEVER;
    const char *env = getenv("ND_CONV_WINOGRAD");
    if (env && strcmp(env, "0") == 0) return ND_WINOGRAD_NEVER;
    if (env && strcmp(env, "1") == 0) return ND_WINOGRAD_ALWAYS;
    if (env && *env) {
        static bool warned;
        if (!warned) fprintf(stderr, "nanodiff: ND_CONV_WINOGRAD=%s is neither 0 nor 1; ignored\n", env);
        warned = true;
    }
    // Below 16 input channels the products are too thin for the transforms to pay (the U-Nets' first
    // convolution reads 1 or 3 channels). Few output channels are fine: the U-Net's last convolution,
    // 64 -> 1 at 16x16 (batch 50, 2 cores): 1.1 ms by ours, 3.6 by im2col + GEMM; 1.8 and 2.0 by oneDNN
    // on AVX2.
    return g->channels >= 16 ? ND_WINOGRAD_UNLESS_LIBRARY : ND_WINOGRAD_NEVER;
}

size_t nd_cpu_winograd_bytes(void) {
    return wino.scratch_bytes[SCRATCH_BLOCKED] + wino.scratch_bytes[SCRATCH_CHUNK] + wino.filter_bytes;
}

// Buffer `which`, grown to at least `bytes` (mapped: nd_cpu_grow_mapped).
static float *scratch(int which, size_t bytes) {
    return nd_cpu_grow_mapped(&wino.scratch[which], &wino.scratch_bytes[which], bytes, "Winograd");
}

// u (36, in_c, out_c) = G w G^T of every filter w (out_c, in_c, 3, 3).
static void transform_filters(float *u, const float *w, int64_t out_c, int64_t in_c) {
#pragma omp parallel for
    for (int64_t oc = 0; oc < out_c * in_c; oc++) {
        int64_t o = oc / in_c, c = oc % in_c;
        float t[ND_WINO_ELEMS];
        nd_winograd_filter_tile(t, w + oc * 9);
        for (int e = 0; e < ND_WINO_ELEMS; e++) u[(e * in_c + c) * out_c + o] = t[e];
    }
}

// The transformed filter of w (out_c, in_c, 3, 3), from the cache when it holds these very weights.
static const float *cached_filter(const float *w, int64_t out_c, int64_t in_c) {
    size_t plain_bytes = (size_t)(out_c * in_c * 9) * sizeof(float);
    filter_entry *e = NULL;
    for (int i = 0; i < wino.n_filters && !e; i++) {
        filter_entry *f = &wino.filters[i];
        if (f->user == w && f->out_c == out_c && f->in_c == in_c) e = f;
    }
    if (e && memcmp(e->plain, w, plain_bytes) == 0) return e->transformed;
    if (!e) {
        if (wino.n_filters == ND_WINO_MAX_FILTERS) {
            e = &wino.filters[wino.next_filter];
            wino.next_filter = (wino.next_filter + 1) % ND_WINO_MAX_FILTERS;
            wino.filter_bytes -= (size_t)(e->out_c * e->in_c) * (9 + ND_WINO_ELEMS) * sizeof(float);
            nd_cpu_free(e->plain);
            nd_cpu_free(e->transformed);
        } else {
            e = &wino.filters[wino.n_filters++];
        }
        e->user = w, e->out_c = out_c, e->in_c = in_c;
        e->plain = nd_cpu_alloc(plain_bytes);
        e->transformed = nd_cpu_alloc((size_t)(out_c * in_c * ND_WINO_ELEMS) * sizeof(float));
        wino.filter_bytes += (size_t)(out_c * in_c) * (9 + ND_WINO_ELEMS) * sizeof(float);
    }
    transform_filters(e->transformed, w, out_c, in_c);
    memcpy(e->plain, w, plain_bytes);
    return e->transformed;
}

// The output tiles: tiles_h x tiles_w per image, numbered image by image, row by row.
typedef struct tile_grid {
    int64_t tiles_h, tiles_w, per_image;
} tile_grid;

// Channels transformed side by side: each 1-D transform of winograd_math.h runs on ND_WINO_LANES channels
// at once (one simd loop), so the transforms run as vector code instead of one tile at a time.
#define ND_WINO_LANES 16

// v (36, lanes) = B^T d B of d (36, lanes), lane by lane, as vector loops.
static inline void input_tiles(float v[ND_WINO_ELEMS][ND_WINO_LANES], float d[ND_WINO_ELEMS][ND_WINO_LANES]) {
    float t[ND_WINO_ELEMS][ND_WINO_LANES]; // B^T d
    for (int c = 0; c < ND_WINO_TILE; c++)
#pragma omp simd
        for (int l = 0; l < ND_WINO_LANES; l++)
            nd_winograd_input_1d(&t[c][l], ND_WINO_TILE * ND_WINO_LANES, &d[c][l], ND_WINO_TILE * ND_WINO_LANES);
    for (int r = 0; r < ND_WINO_TILE; r++)
#pragma omp simd
        for (int l = 0; l < ND_WINO_LANES; l++)
            nd_winograd_input_1d(&v[r * ND_WINO_TILE][l], ND_WINO_LANES, &t[r * ND_WINO_TILE][l], ND_WINO_LANES);
}

// y (16, lanes) = A^T m A of m (36, lanes), lane by lane.
static inline void output_tiles(float y[ND_WINO_OUT * ND_WINO_OUT][ND_WINO_LANES],
                                float m[ND_WINO_ELEMS][ND_WINO_LANES]) {
    float t[ND_WINO_OUT * ND_WINO_TILE][ND_WINO_LANES]; // A^T m
    for (int c = 0; c < ND_WINO_TILE; c++)
#pragma omp simd
        for (int l = 0; l < ND_WINO_LANES; l++)
            nd_winograd_output_1d(&t[c][l], ND_WINO_TILE * ND_WINO_LANES, &m[c][l], ND_WINO_TILE * ND_WINO_LANES);
    for (int r = 0; r < ND_WINO_OUT; r++)
#pragma omp simd
        for (int l = 0; l < ND_WINO_LANES; l++)
            nd_winograd_output_1d(&y[r * ND_WINO_OUT][l], ND_WINO_LANES, &t[r * ND_WINO_TILE][l], ND_WINO_LANES);
}

// xb (batch, blocks, h * w, ND_WINO_LANES) = x (batch, in_c, h * w) with the channels in blocks of
// ND_WINO_LANES, the last block padded with zeros: a tile's window then loads each pixel's lanes as one
// contiguous vector instead of one value per channel plane.
static void block_channels(float *xb, const float *x, int64_t batch, int64_t in_c, int64_t positions) {
    int64_t blocks = (in_c + ND_WINO_LANES - 1) / ND_WINO_LANES;
#pragma omp parallel for schedule(static)
    for (int64_t nb = 0; nb < batch * blocks; nb++) {
        int64_t n = nb / blocks, c0 = (nb % blocks) * ND_WINO_LANES;
        int lanes = in_c - c0 < ND_WINO_LANES ? (int)(in_c - c0) : ND_WINO_LANES;
        float *out = xb + nb * positions * ND_WINO_LANES;  // (positions, lanes)
        const float *in = x + (n * in_c + c0) * positions; // (lanes, positions)
        if (lanes < ND_WINO_LANES) memset(out, 0, (size_t)(positions * ND_WINO_LANES) * sizeof(float));
        for (int64_t p0 = 0; p0 < positions; p0 += ND_WINO_LANES) { // 16 x 16 squares stay in L1
            int64_t p1 = p0 + ND_WINO_LANES < positions ? p0 + ND_WINO_LANES : positions;
            for (int l = 0; l < lanes; l++)
                for (int64_t p = p0; p < p1; p++) out[p * ND_WINO_LANES + l] = in[l * positions + p];
        }
    }
}

// v (36, count, in_c) = B^T d B of the input tiles first .. first + count - 1 of xb (batch, blocks, h, w,
// lanes), each 6x6 window starting one pixel above and left of its output tile, zeros outside the image.
static void transform_inputs(float *v, const float *xb, const tile_grid *tg, int64_t first, int64_t count, int64_t in_c,
                             int64_t h, int64_t w) {
    int64_t blocks = (in_c + ND_WINO_LANES - 1) / ND_WINO_LANES;
    for (int64_t i = 0; i < count; i++) {
        int64_t t = first + i, n = t / tg->per_image, r = t % tg->per_image;
        int64_t y0 = (r / tg->tiles_w) * ND_WINO_OUT - 1, x0 = (r % tg->tiles_w) * ND_WINO_OUT - 1;
        int a0 = y0 < 0 ? 1 : 0, b0 = x0 < 0 ? 1 : 0; // the window's rows and columns inside the image
        int a1 = y0 + ND_WINO_TILE > h ? (int)(h - y0) : ND_WINO_TILE;
        int b1 = x0 + ND_WINO_TILE > w ? (int)(w - x0) : ND_WINO_TILE;
        bool edge = a0 > 0 || b0 > 0 || a1 < ND_WINO_TILE || b1 < ND_WINO_TILE;
        float d[ND_WINO_ELEMS][ND_WINO_LANES], vt[ND_WINO_ELEMS][ND_WINO_LANES];
        if (edge) memset(d, 0, sizeof d);
        for (int64_t cb = 0; cb < blocks; cb++) {
            const float *window = xb + ((n * blocks + cb) * h * w + y0 * w + x0) * ND_WINO_LANES; // (6, w, lanes)
            for (int a = a0; a < a1; a++)
                for (int b = b0; b < b1; b++)
#pragma omp simd
                    for (int l = 0; l < ND_WINO_LANES; l++)
                        d[a * ND_WINO_TILE + b][l] = window[(a * w + b) * ND_WINO_LANES + l];
            input_tiles(vt, d);
            int64_t c0 = cb * ND_WINO_LANES;
            float *out = v + i * in_c + c0; // element e at out[e * count * in_c]
            if (in_c - c0 >= ND_WINO_LANES)
                for (int e = 0; e < ND_WINO_ELEMS; e++)
#pragma omp simd
                    for (int l = 0; l < ND_WINO_LANES; l++) out[e * count * in_c + l] = vt[e][l];
            else
                for (int e = 0; e < ND_WINO_ELEMS; e++)
                    for (int l = 0; l < in_c - c0; l++) out[e * count * in_c + l] = vt[e][l];
        }
    }
}

// y (batch, out_c, h, w) at the output tiles first .. first + count - 1 = A^T m A of m (36, count, out_c)
// + bias (out_c, or NULL), cropped to the image.
static void transform_outputs(float *y, const float *m, const float *bias, const tile_grid *tg, int64_t first,
                              int64_t count, int64_t out_c, int64_t h, int64_t w) {
    for (int64_t i = 0; i < count; i++) {
        int64_t t = first + i, n = t / tg->per_image, r = t % tg->per_image;
        int64_t y0 = (r / tg->tiles_w) * ND_WINO_OUT, x0 = (r % tg->tiles_w) * ND_WINO_OUT;
        int rows = h - y0 < ND_WINO_OUT ? (int)(h - y0) : ND_WINO_OUT;
        int cols = w - x0 < ND_WINO_OUT ? (int)(w - x0) : ND_WINO_OUT;
        float mt[ND_WINO_ELEMS][ND_WINO_LANES], yt[ND_WINO_OUT * ND_WINO_OUT][ND_WINO_LANES];
        for (int64_t o0 = 0; o0 < out_c; o0 += ND_WINO_LANES) {
            int lanes = out_c - o0 < ND_WINO_LANES ? (int)(out_c - o0) : ND_WINO_LANES;
            const float *in = m + i * out_c + o0; // element e at in[e * count * out_c]
            if (lanes == ND_WINO_LANES) {
                for (int e = 0; e < ND_WINO_ELEMS; e++)
#pragma omp simd
                    for (int l = 0; l < ND_WINO_LANES; l++) mt[e][l] = in[e * count * out_c + l];
            } else {
                memset(mt, 0, sizeof mt);
                for (int e = 0; e < ND_WINO_ELEMS; e++)
                    for (int l = 0; l < lanes; l++) mt[e][l] = in[e * count * out_c + l];
            }
            output_tiles(yt, mt);
            for (int l = 0; l < lanes; l++) {
                float b = bias ? bias[o0 + l] : 0.0f;
                float *plane = y + (n * out_c + o0 + l) * h * w; // (h, w)
                for (int a = 0; a < rows; a++)
                    for (int c = 0; c < cols; c++) plane[(y0 + a) * w + x0 + c] = yt[a * ND_WINO_OUT + c][l] + b;
            }
        }
    }
}

void nd_cpu_winograd_conv_forward(float *y, const float *x, const float *w, const float *bias, int64_t batch,
                                  int64_t in_c, int64_t out_c, int64_t h, int64_t width) {
    const float *u = cached_filter(w, out_c, in_c); // (36, in_c, out_c)
    tile_grid tg = {(h + ND_WINO_OUT - 1) / ND_WINO_OUT, (width + ND_WINO_OUT - 1) / ND_WINO_OUT, 0};
    tg.per_image = tg.tiles_h * tg.tiles_w;
    int64_t tiles = batch * tg.per_image;
    size_t tile_bytes = (size_t)(ND_WINO_ELEMS * (in_c + out_c)) * sizeof(float);
    int threads = omp_get_max_threads();
    int64_t chunk = (int64_t)(ND_WINO_CHUNK_BYTES / tile_bytes);
    if (chunk < 1) chunk = 1;
    // equal chunks, as many as the threads or a multiple of them, so no thread waits long for the last
    int64_t n_chunks = (tiles + chunk - 1) / chunk;
    n_chunks = (n_chunks + threads - 1) / threads * threads;
    chunk = (tiles + n_chunks - 1) / n_chunks;
    n_chunks = (tiles + chunk - 1) / chunk;
    int64_t blocks = (in_c + ND_WINO_LANES - 1) / ND_WINO_LANES;
    float *xb = scratch(SCRATCH_BLOCKED, (size_t)(batch * blocks * h * width * ND_WINO_LANES) * sizeof(float));
    float *chunks = scratch(SCRATCH_CHUNK, (size_t)(threads * chunk) * tile_bytes); // a chunk's V and M a thread
    block_channels(xb, x, batch, in_c, h * width);
    // Each thread takes whole chunks: its transforms and products run on one core, out of that core's
    // cache, and the products (one thread each, as BLAS and oneDNN run inside a parallel region) wait at
    // no barrier.
#pragma omp parallel num_threads(threads)
    {
        // (36, chunk, in_c)
        float *v = chunks + (size_t)omp_get_thread_num() * (size_t)chunk * (tile_bytes / sizeof(float));
        float *m = v + ND_WINO_ELEMS * chunk * in_c; // (36, chunk, out_c)
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 0; k < n_chunks; k++) {
            int64_t first = k * chunk, count = tiles - first < chunk ? tiles - first : chunk;
            transform_inputs(v, xb, &tg, first, count, in_c, h, width);
            nd_cpu_gemm(false, false, count, out_c, in_c, 1.0f, v, in_c, count * in_c, u, out_c, in_c * out_c, 0.0f, m,
                        out_c, count * out_c, ND_WINO_ELEMS);
            transform_outputs(y, m, bias, &tg, first, count, out_c, h, width);
        }
    }
}
