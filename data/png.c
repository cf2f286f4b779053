// PNG output: image grids as torchvision lays them out, written as 8-bit grey or RGB PNGs with zlib.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data.h"

#define PNG_MAX_SIDE (1 << 16) // keeps every size computation far from overflow

// torchvision.utils.make_grid (pad_value 0) followed by save_image's mul(255).add(0.5).clamp(0, 255).byte();
// [-1, 1] images first go through the course's (t + 1) / 2.
bool nd_image_grid(nd_image8 *out, const float *images, int n, int c, int h, int w, int nrow, int padding,
                   bool unit_range, nd_error *err) {
    memset(out, 0, sizeof *out);
    if (n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || nrow < 1 || padding < 0)
        return nd_error_set(err,
                            "image grid of %d images of %dx%dx%d, %d per row, padding %d: expected at "
                            "least one image of 1 or 3 channels, nrow >= 1, padding >= 0",
                            n, c, h, w, nrow, padding);
    // make_grid returns a single image as it is, without padding.
    if (n == 1) padding = 0;
    int cols = n < nrow ? n : nrow, rows = (n + cols - 1) / cols;
    int64_t grid_h = (int64_t)rows * (h + padding) + padding, grid_w = (int64_t)cols * (w + padding) + padding;
    if (grid_h > PNG_MAX_SIDE || grid_w > PNG_MAX_SIDE)
        return nd_error_set(err, "image grid of %lldx%lld pixels: expected at most %d on a side", (long long)grid_h,
                            (long long)grid_w, PNG_MAX_SIDE);
    out->pixels = calloc((size_t)(grid_h * grid_w * c), 1); // (grid_h, grid_w, C)
    if (!out->pixels)
        return nd_error_set(err, "out of memory for a %lldx%lld grid", (long long)grid_h, (long long)grid_w);
    out->height = (int)grid_h;
    out->width = (int)grid_w;
    out->channels = c;
    for (int k = 0; k < n; k++) {
        int64_t top = (int64_t)(k / cols) * (h + padding) + padding;
        int64_t left = (int64_t)(k % cols) * (w + padding) + padding;
        for (int ch = 0; ch < c; ch++) {
            for (int y = 0; y < h; y++) {
                const float *src = images + (((int64_t)k * c + ch) * h + y) * w; // (W)
                uint8_t *dst = out->pixels + ((top + y) * grid_w + left) * c + ch;
                for (int x = 0; x < w; x++) {
                    float v = unit_range ? src[x] : (src[x] + 1.0f) / 2.0f;
                    v = v * 255.0f + 0.5f;
                    if (!(v > 0.0f)) v = 0.0f; // NaN too
                    if (v > 255.0f) v = 255.0f;
                    dst[(int64_t)x * c] = (uint8_t)v;
                }
            }
        }
    }
    return true;
}

bool nd_image8_scale(nd_image8 *out, const nd_image8 *img, int factor, nd_error *err) {
    memset(out, 0, sizeof *out);
    if (factor < 1) return nd_error_set(err, "image scale %d: expected 1 or more", factor);
    int64_t h = (int64_t)img->height * factor, w = (int64_t)img->width * factor, c = img->channels;
    if (h > PNG_MAX_SIDE || w > PNG_MAX_SIDE)
        return nd_error_set(err, "a %dx%d image scaled %d times is %lldx%lld pixels: expected at most %d on a side",
                            img->height, img->width, factor, (long long)h, (long long)w, PNG_MAX_SIDE);
    out->pixels = malloc((size_t)(h * w * c)); // (h, w, C)
    if (!out->pixels) return nd_error_set(err, "out of memory for a %lldx%lld image", (long long)h, (long long)w);
    out->height = (int)h, out->width = (int)w, out->channels = (int)c;
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *src = img->pixels + (y / factor) * img->width * c; // (W, C)
        uint8_t *dst = out->pixels + y * w * c;
        for (int64_t x = 0; x < w; x++) memcpy(dst + x * c, src + (x / factor) * c, (size_t)c);
    }
    return true;
}

void nd_image8_free(nd_image8 *img) {
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

// PNG integers are big-endian.
static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// One chunk: length, type, data, CRC-32 of type and data.
static bool png_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len) {
    uint8_t head[8], tail[4];
    put_u32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, len);
    put_u32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) && fwrite(tail, 1, 4, f) == 4;
}

// Filter type 0 (none) on every row, one zlib stream in one IDAT.
static bool png_encode(FILE *f, const nd_image8 *img) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    size_t row = (size_t)img->width * img->channels, raw_len = (row + 1) * img->height;
    uint8_t *raw = nd_xmalloc(raw_len);
    uLongf packed_len = compressBound((uLong)raw_len);
    uint8_t *packed = nd_xmalloc(packed_len);
    bool ok = raw && packed;
    if (ok) {
        for (int y = 0; y < img->height; y++) {
            raw[y * (row + 1)] = 0;
            memcpy(raw + y * (row + 1) + 1, img->pixels + y * row, row);
        }
        ok = compress2(packed, &packed_len, raw, (uLong)raw_len, Z_DEFAULT_COMPRESSION) == Z_OK;
    }
    uint8_t ihdr[13];
    put_u32(ihdr, (uint32_t)img->width);
    put_u32(ihdr + 4, (uint32_t)img->height);
    ihdr[8] = 8;                          // bit depth
    ihdr[9] = img->channels == 3 ? 2 : 0; // colour type: RGB or grey
    ihdr[10] = ihdr[11] = ihdr[12] = 0;   // deflate, adaptive filtering, no interlace
    ok = ok && fwrite(signature, 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) &&
         png_chunk(f, "IDAT", packed, (uint32_t)packed_len) && png_chunk(f, "IEND", NULL, 0);
    free(raw);
    free(packed);
    return ok;
}

// PIL Image.save(path, "PNG") for mode "L" or "RGB", made atomic (nd_atomic_open).
bool nd_png_write(const char *path, const nd_image8 *img, nd_error *err) {
    if ((img->channels != 1 && img->channels != 3) || img->width < 1 || img->height < 1 || img->width > PNG_MAX_SIDE ||
        img->height > PNG_MAX_SIDE)
        return nd_error_set(err,
                            "%s: image of %dx%d with %d channels: expected 1 to %d pixels a side, 1 (grey) "
                            "or 3 (RGB) channels",
                            path, img->height, img->width, img->channels, PNG_MAX_SIDE);
    nd_atomic_file af;
    if (!nd_atomic_open(&af, path, err)) return false;
    errno = 0;
    if (!png_encode(af.f, img)) {
        nd_atomic_abort(&af);
        return nd_error_set(err, "%s: cannot write: %s", path, errno ? strerror(errno) : "out of memory");
    }
    return nd_atomic_commit(&af, err);
}
