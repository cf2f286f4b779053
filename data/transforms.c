// The course's transforms: Resize (PIL's separable bilinear resampling, bit for bit), ToTensor,
// RandomHorizontalFlip, x*2-1, and the Philox draws behind shuffling and flipping.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "nd_random.h"
#include "private/resize.h"

// PIL's fixed point for 8-bit images: 8 bits of value, 2 bits of headroom for filters with negative lobes.
#define PIL_PRECISION_BITS (32 - 8 - 2)
#define BILINEAR_SUPPORT 1.0

// Keys the data streams apart from the model's random numbers drawn with the same seed.
#define DATA_STREAM_KEY 0x6461746173747265ull
enum { STREAM_SHUFFLE = 0, STREAM_FLIP = 1 };

// One axis of a resize: for output i, `taps[i]` input samples from `first[i]` on, weighted by
// coeffs[i * ksize + k] (doubles) or fixed[i * ksize + k] (PIL's 8-bit fixed point).
typedef struct resample_axis {
    int in_size, out_size, ksize;
    int *first, *taps; // (out_size)
    double *coeffs;    // (out_size, ksize)
    int32_t *fixed;    // (out_size, ksize)
} resample_axis;

// PIL's bilinear_filter: the triangle of support 1.
static double bilinear_filter(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static void resample_axis_free(resample_axis *a) {
    free(a->first);
    free(a->taps);
    free(a->coeffs);
    free(a->fixed);
    memset(a, 0, sizeof *a);
}

// PIL's precompute_coeffs and normalize_coeffs_8bpc: a triangle filter whose support grows with the
// downscale ratio (antialiasing), taps normalized to sum 1, then rounded half away from zero to fixed point.
static bool resample_axis_init(resample_axis *a, int in_size, int out_size) {
    memset(a, 0, sizeof *a);
    double scale = (double)in_size / out_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = BILINEAR_SUPPORT * filter_scale;
    a->in_size = in_size;
    a->out_size = out_size;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->first = nd_xmalloc((size_t)out_size * sizeof *a->first);
    a->taps = malloc((size_t)out_size * sizeof *a->taps);
    a->coeffs = calloc((size_t)out_size * a->ksize, sizeof *a->coeffs);
    a->fixed = calloc((size_t)out_size * a->ksize, sizeof *a->fixed);
    if (!a->first || !a->taps || !a->coeffs || !a->fixed) {
        resample_axis_free(a);
        return false;
    }
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale;
        // PIL rounds the window ends by truncation after adding 0.5; keep its exact arithmetic.
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        double *k = a->coeffs + (size_t)i * a->ksize, total = 0.0, inv_scale = 1.0 / filter_scale;
        for (int x = 0; x < hi - lo; x++) {
            k[x] = bilinear_filter((x + lo - center + 0.5) * inv_scale);
            total += k[x];
        }
        for (int x = 0; x < hi - lo; x++) {
            if (total != 0.0) k[x] /= total;
            double f = k[x] * (1 << PIL_PRECISION_BITS);
            a->fixed[(size_t)i * a->ksize + x] = (int32_t)(k[x] < 0 ? f - 0.5 : f + 0.5);
        }
        a->first[i] = lo;
        a->taps[i] = hi - lo;
    }
    return true;
}

// PIL's clip8: drop the fixed-point fraction and saturate to 0..255.
static uint8_t pil_clip8(int32_t v) {
    if (v <= 0) return 0;
    v >>= PIL_PRECISION_BITS;
    return v > 255 ? 255 : (uint8_t)v;
}

// PIL's ImagingResample{Horizontal,Vertical}_8bpc: `lines` independent lines; a line starts `line_step` after the
// previous one and its samples lie `step` apart (horizontal: step 1; vertical: step = the row width).
static void resample_pass_u8(uint8_t *dst, const uint8_t *src, const resample_axis *a, int lines, int64_t line_step_in,
                             int64_t line_step_out, int64_t step_in, int64_t step_out) {
    for (int line = 0; line < lines; line++) {
        const uint8_t *in = src + line * line_step_in;
        uint8_t *out = dst + line * line_step_out;
        for (int i = 0; i < a->out_size; i++) {
            const int32_t *k = a->fixed + (size_t)i * a->ksize;
            const uint8_t *first = in + a->first[i] * step_in;
            int32_t sum = 1 << (PIL_PRECISION_BITS - 1);
            for (int x = 0; x < a->taps[i]; x++) sum += first[x * step_in] * k[x];
            out[i * step_out] = pil_clip8(sum);
        }
    }
}

// The same pass on float planes, accumulated in double as PIL's 32bpc path.
static void resample_pass_f32(float *dst, const float *src, const resample_axis *a, int lines, int64_t line_step_in,
                              int64_t line_step_out, int64_t step_in, int64_t step_out) {
    for (int line = 0; line < lines; line++) {
        const float *in = src + line * line_step_in;
        float *out = dst + line * line_step_out;
        for (int i = 0; i < a->out_size; i++) {
            const double *k = a->coeffs + (size_t)i * a->ksize;
            const float *first = in + a->first[i] * step_in;
            double sum = 0.0;
            for (int x = 0; x < a->taps[i]; x++) sum += first[x * step_in] * k[x];
            out[i * step_out] = (float)sum;
        }
    }
}

// A whole resize: PIL's ImagingResampleInner, horizontal pass into a rounded temporary, then vertical; a pass
// whose size does not change is skipped.
typedef struct resampler {
    int in_h, in_w, out_h, out_w;
    resample_axis horiz, vert;
    void *temp; // (in_h, out_w) of the element type
} resampler;

static void resampler_free(resampler *r) {
    resample_axis_free(&r->horiz);
    resample_axis_free(&r->vert);
    free(r->temp);
}

// Coefficients for both axes and the temporary between the passes.
static bool resampler_init(resampler *r, int out_h, int out_w, int in_h, int in_w, size_t elem_size) {
    *r = (resampler){.in_h = in_h, .in_w = in_w, .out_h = out_h, .out_w = out_w};
    r->temp = malloc((size_t)in_h * out_w * elem_size);
    if (!r->temp || !resample_axis_init(&r->horiz, in_w, out_w) || !resample_axis_init(&r->vert, in_h, out_h)) {
        resampler_free(r);
        return false;
    }
    return true;
}

// One 8-bit plane, (in_h, in_w) -> (out_h, out_w).
static void resampler_run_u8(const resampler *r, uint8_t *dst, const uint8_t *src) {
    if (r->out_w == r->in_w && r->out_h == r->in_h) {
        memcpy(dst, src, (size_t)r->in_h * r->in_w);
        return;
    }
    if (r->out_w == r->in_w) {
        resample_pass_u8(dst, src, &r->vert, r->in_w, 1, 1, r->in_w, r->in_w);
        return;
    }
    uint8_t *rows = r->out_h == r->in_h ? dst : r->temp; // (in_h, out_w)
    resample_pass_u8(rows, src, &r->horiz, r->in_h, r->in_w, r->out_w, 1, 1);
    if (rows != dst) resample_pass_u8(dst, rows, &r->vert, r->out_w, 1, 1, r->out_w, r->out_w);
}

// One float plane, (in_h, in_w) -> (out_h, out_w).
static void resampler_run_f32(const resampler *r, float *dst, const float *src) {
    if (r->out_w == r->in_w && r->out_h == r->in_h) {
        memcpy(dst, src, (size_t)r->in_h * r->in_w * sizeof *dst);
        return;
    }
    if (r->out_w == r->in_w) {
        resample_pass_f32(dst, src, &r->vert, r->in_w, 1, 1, r->in_w, r->in_w);
        return;
    }
    float *rows = r->out_h == r->in_h ? dst : r->temp; // (in_h, out_w)
    resample_pass_f32(rows, src, &r->horiz, r->in_h, r->in_w, r->out_w, 1, 1);
    if (rows != dst) resample_pass_f32(dst, rows, &r->vert, r->out_w, 1, 1, r->out_w, r->out_w);
}

// PIL Image.resize((out_w, out_h), Image.BILINEAR) on a mode "L" image.
bool nd_resize_u8(uint8_t *dst, int out_h, int out_w, const uint8_t *src, int in_h, int in_w) {
    resampler r;
    if (!resampler_init(&r, out_h, out_w, in_h, in_w, 1)) return false;
    resampler_run_u8(&r, dst, src);
    resampler_free(&r);
    return true;
}

// PIL Image.resize((out_w, out_h), Image.BILINEAR) on a mode "F" image.
bool nd_resize_f32(float *dst, int out_h, int out_w, const float *src, int in_h, int in_w) {
    resampler r;
    if (!resampler_init(&r, out_h, out_w, in_h, in_w, sizeof(float))) return false;
    resampler_run_f32(&r, dst, src);
    resampler_free(&r);
    return true;
}

// torchvision.transforms.Resize((out_h, out_w)) on every image; PIL resizes the bands of an RGB image
// independently, so each channel plane is one resize.
bool nd_dataset_resize(nd_dataset *ds, int out_h, int out_w, nd_error *err) {
    if (out_h < 1 || out_w < 1 || (int64_t)out_h * out_w > (1 << 24))
        return nd_error_set(err, "image size %dx%d: expected 1 to 2^24 pixels", out_h, out_w);
    if (out_h == ds->h && out_w == ds->w) return true;
    bool is_u8 = ds->images != NULL;
    size_t elem = is_u8 ? 1 : sizeof(float);
    int64_t planes = ds->n * ds->c;
    resampler r;
    char *out = malloc((size_t)planes * out_h * out_w * elem); // (N, C, out_h, out_w)
    if (!out || !resampler_init(&r, out_h, out_w, ds->h, ds->w, elem)) {
        free(out);
        return nd_error_set(err, "out of memory resizing %lld images to %dx%d", (long long)ds->n, out_h, out_w);
    }
    for (int64_t p = 0; p < planes; p++) {
        if (is_u8)
            resampler_run_u8(&r, (uint8_t *)out + p * out_h * out_w, ds->images + p * ds->h * ds->w);
        else
            resampler_run_f32(&r, (float *)out + p * out_h * out_w, ds->images_f32 + p * ds->h * ds->w);
    }
    resampler_free(&r);
    if (is_u8) {
        free(ds->images);
        ds->images = (uint8_t *)out;
    } else {
        free(ds->images_f32);
        ds->images_f32 = (float *)out;
    }
    ds->h = out_h;
    ds->w = out_w;
    return true;
}

// ToTensor() -> RandomHorizontalFlip() -> Lambda(t * 2 - 1), the course's per-sample transform.
void nd_dataset_sample(float *dst, const nd_dataset *ds, int64_t i, bool flip, bool unit_range) {
    int64_t plane = (int64_t)ds->h * ds->w, image = ds->c * plane;
    for (int64_t c = 0; c < ds->c; c++) {
        for (int y = 0; y < ds->h; y++) {
            int64_t row = i * image + c * plane + (int64_t)y * ds->w;
            float *out = dst + c * plane + (int64_t)y * ds->w;
            for (int x = 0; x < ds->w; x++) {
                int64_t at = row + (flip ? ds->w - 1 - x : x);
                // torch divides by 255 in float32 and then computes t*2-1: same operations, same bits.
                float v = ds->images ? (float)ds->images[at] / 255.0f : ds->images_f32[at];
                out[x] = unit_range ? v : v * 2.0f - 1.0f;
            }
        }
    }
}

void nd_dataset_moments(const nd_dataset *ds, bool random_flip, bool unit_range, double *mean, double *var) {
    int64_t image = (int64_t)ds->c * ds->h * ds->w;
    float *x = nd_xmalloc((size_t)image * sizeof(float));
    for (int64_t j = 0; j < image; j++) mean[j] = var[j] = 0.0; // var holds the sum of squares until the end
    int views = random_flip ? 2 : 1;
    for (int64_t i = 0; i < ds->n; i++)
        for (int v = 0; v < views; v++) {
            nd_dataset_sample(x, ds, i, v == 1, unit_range);
            for (int64_t j = 0; j < image; j++) mean[j] += x[j], var[j] += (double)x[j] * x[j];
        }
    double count = (double)ds->n * views;
    for (int64_t j = 0; j < image; j++) {
        mean[j] /= count;
        var[j] = var[j] / count - mean[j] * mean[j];
        if (var[j] < 0.0) var[j] = 0.0; // rounding, for a pixel that never changes
    }
    free(x);
}

// Counter layout: epoch in bits 34..63, stream in bits 32..33, position or image index in bits 0..31.
static nd_u32x4 data_draw(uint64_t seed, int64_t epoch, int stream, int64_t i) {
    uint64_t counter = (uint64_t)epoch << 34 | (uint64_t)stream << 32 | (uint64_t)(i & 0xFFFFFFFF);
    return nd_philox4x32(seed ^ DATA_STREAM_KEY, counter);
}

// RandomHorizontalFlip(p=0.5): the top bit of one draw.
bool nd_flip_coin(uint64_t seed, int64_t epoch, int64_t index) {
    return data_draw(seed, epoch, STREAM_FLIP, index).v[0] >> 31;
}

// torch.randperm's role in DataLoader(shuffle=True), as a Fisher-Yates with 64-bit draws (bias < 2^-32).
void nd_shuffle_order(int64_t *order, int64_t n, uint64_t seed, int64_t epoch) {
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        nd_u32x4 r = data_draw(seed, epoch, STREAM_SHUFFLE, i);
        uint64_t draw = (uint64_t)r.v[0] << 32 | r.v[1];
        int64_t j = (int64_t)(draw % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}
