// PNG output: files are read back with a small decoder built on zlib (chunk CRCs, IDAT inflate, filter 0),
// grids are checked against torchvision.utils.make_grid's layout, and failed writes leave nothing behind.
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "test.h"

static char tmp_dir[] = "/tmp/nd_test_png_XXXXXX";

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Decodes the PNGs nd_png_write makes (8-bit grey or RGB, no interlace) into img; false on any defect.
static bool png_read(const char *path, nd_image8 *img) {
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    static uint8_t file[1 << 20];
    size_t len = fread(file, 1, sizeof file, f);
    fclose(f);
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    CHECK(len >= 8 && memcmp(file, signature, 8) == 0, "%s: bad PNG signature", path);
    uint8_t *idat = malloc(len);
    size_t idat_len = 0, at = 8;
    bool ended = false, ok = len >= 8;
    while (ok && !ended && at + 12 <= len) {
        uint32_t chunk_len = get_u32(file + at);
        const uint8_t *type = file + at + 4, *data = file + at + 8;
        ok = at + 12 + chunk_len <= len;
        if (!ok) break;
        uLong crc = crc32(crc32(0L, type, 4), data, chunk_len);
        CHECK(crc == get_u32(data + chunk_len), "%s: chunk %.4s has a bad CRC", path, (const char *)type);
        ok = crc == get_u32(data + chunk_len);
        if (memcmp(type, "IHDR", 4) == 0) {
            img->width = (int)get_u32(data);
            img->height = (int)get_u32(data + 4);
            CHECK(data[8] == 8 && (data[9] == 0 || data[9] == 2) && data[10] == 0 && data[11] == 0 && data[12] == 0,
                  "%s: IHDR depth %d colour %d", path, data[8], data[9]);
            img->channels = data[9] == 2 ? 3 : 1;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            memcpy(idat + idat_len, data, chunk_len);
            idat_len += chunk_len;
        } else if (memcmp(type, "IEND", 4) == 0) {
            ended = chunk_len == 0;
        }
        at += 12 + chunk_len;
    }
    CHECK(ended && at == len, "%s: IEND missing or bytes after it", path);
    ok = ok && ended && at == len && img->width > 0 && img->height > 0;
    size_t row = (size_t)img->width * img->channels;
    uLongf raw_len = (uLongf)((row + 1) * img->height);
    uint8_t *raw = ok ? malloc(raw_len) : NULL;
    ok = ok && uncompress(raw, &raw_len, idat, (uLong)idat_len) == Z_OK && raw_len == (row + 1) * img->height;
    if (ok) {
        img->pixels = malloc(row * img->height);
        for (int y = 0; y < img->height; y++) {
            ok = ok && raw[y * (row + 1)] == 0; // filter type 0: the row as it is
            memcpy(img->pixels + y * row, raw + y * (row + 1) + 1, row);
        }
    }
    free(raw);
    free(idat);
    if (!ok) nd_image8_free(img);
    return ok;
}

static int count_dir_entries(void) {
    DIR *d = opendir(tmp_dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void check_roundtrip(const char *name, int h, int w, int c, int seed) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    nd_image8 img = {.height = h, .width = w, .channels = c, .pixels = malloc((size_t)h * w * c)};
    for (int i = 0; i < h * w * c; i++) img.pixels[i] = (uint8_t)(i * 31 + seed);
    nd_error err = {{0}};
    CHECK(nd_png_write(path, &img, &err), "%s", err.msg);
    nd_image8 back;
    bool ok = png_read(path, &back);
    CHECK(ok, "%s does not decode", path);
    if (ok) {
        CHECK(back.height == h && back.width == w && back.channels == c, "%s: %dx%dx%d", path, back.height, back.width,
              back.channels);
        CHECK(memcmp(back.pixels, img.pixels, (size_t)h * w * c) == 0, "%s: pixels differ", path);
    }
    nd_image8_free(&back);
    nd_image8_free(&img);
}

static void test_write(void) {
    check_roundtrip("grey.png", 7, 5, 1, 0);
    check_roundtrip("rgb.png", 3, 4, 3, 1);
    check_roundtrip("grey.png", 9, 2, 1, 2); // replaces the first file
    CHECK(count_dir_entries() == 2, "temporary files left behind: %d entries", count_dir_entries());

    char path[256];
    snprintf(path, sizeof path, "%s/no-such-dir/out.png", tmp_dir);
    uint8_t px[4] = {1, 2, 3, 4};
    nd_image8 img = {.pixels = px, .height = 2, .width = 2, .channels = 1};
    nd_error err = {{0}};
    CHECK(!nd_png_write(path, &img, &err) && strstr(err.msg, path) && strstr(err.msg, "No such file"),
          "missing directory: %s", err.msg);
    img.channels = 2;
    snprintf(path, sizeof path, "%s/two.png", tmp_dir);
    CHECK(!nd_png_write(path, &img, &err) && strstr(err.msg, "2 channels"), "2 channels accepted: %s", err.msg);
    CHECK(count_dir_entries() == 2, "a failed write left a file");
}

static void test_grid(void) {
    enum { N = 5, H = 2, W = 3 };
    float images[N * H * W]; // (N, 1, H, W) in [-1, 1], image k filled with -1 + 0.5 k except pixel 0
    for (int k = 0; k < N; k++)
        for (int p = 0; p < H * W; p++) images[k * H * W + p] = -1.0f + 0.5f * k;
    images[0] = 3.0f;  // clamps to 255
    images[1] = -7.0f; // clamps to 0
    images[2] = NAN;   // becomes 0
    nd_image8 grid;
    nd_error err = {{0}};
    CHECK(nd_image_grid(&grid, images, N, 1, H, W, 3, 2, false, &err), "%s", err.msg);
    // make_grid: min(nrow, N) = 3 columns, ceil(5 / 3) = 2 rows, each cell (H + 2) x (W + 2), plus 2.
    CHECK(grid.height == 2 * (H + 2) + 2 && grid.width == 3 * (W + 2) + 2 && grid.channels == 1, "grid %dx%dx%d",
          grid.height, grid.width, grid.channels);
    const uint8_t levels[N] = {0, 64, 128, 191, 255}; // (x + 1) / 2 * 255 + 0.5, truncated
    int wrong = 0, padding_wrong = 0;
    for (int y = 0; y < grid.height; y++) {
        for (int x = 0; x < grid.width; x++) {
            int cell_y = (y - 2) / (H + 2), cell_x = (x - 2) / (W + 2);
            int iy = (y - 2) % (H + 2), ix = (x - 2) % (W + 2);
            int k = cell_y * 3 + cell_x;
            uint8_t v = grid.pixels[y * grid.width + x];
            if (y < 2 || x < 2 || iy >= H || ix >= W || k >= N) {
                padding_wrong += v != 0;
                continue;
            }
            int p = iy * W + ix;
            uint8_t want = k == 0 && p == 0 ? 255 : k == 0 && p < 3 ? 0 : levels[k];
            wrong += v != want;
        }
    }
    CHECK(wrong == 0 && padding_wrong == 0, "grid: %d pixels and %d padding pixels wrong", wrong, padding_wrong);
    char path[256];
    snprintf(path, sizeof path, "%s/grid.png", tmp_dir);
    CHECK(nd_png_write(path, &grid, &err), "%s", err.msg);
    nd_image8 back;
    CHECK(png_read(path, &back) && memcmp(back.pixels, grid.pixels, (size_t)grid.height * grid.width) == 0,
          "grid PNG differs");
    nd_image8_free(&back);
    nd_image8_free(&grid);

    // One image: make_grid returns it without padding. RGB in [0, 1]: channels interleave.
    float rgb[3 * 1 * 2] = {0.0f, 1.0f, 0.5f, 0.5f, 1.0f, 0.0f}; // (1, 3, 1, 2)
    CHECK(nd_image_grid(&grid, rgb, 1, 3, 1, 2, 8, 2, true, &err), "%s", err.msg);
    const uint8_t want[6] = {0, 128, 255, 255, 128, 0};
    CHECK(grid.height == 1 && grid.width == 2 && grid.channels == 3 && memcmp(grid.pixels, want, 6) == 0,
          "single RGB image: %dx%dx%d", grid.height, grid.width, grid.channels);
    nd_image8_free(&grid);
    CHECK(!nd_image_grid(&grid, rgb, 1, 2, 1, 3, 8, 2, true, &err) && strstr(err.msg, "1 or 3 channels"),
          "2 channels accepted: %s", err.msg);
}

// Nearest-neighbour upscaling (sample --scale): every pixel becomes a factor x factor block, channels kept
// together; a result past the PNG size limit is refused.
static void test_scale(void) {
    uint8_t rgb[2 * 3 * 3]; // (2, 3, RGB)
    for (int i = 0; i < 18; i++) rgb[i] = (uint8_t)(10 * i + 1);
    nd_image8 img = {.pixels = rgb, .height = 2, .width = 3, .channels = 3}, big;
    nd_error err = {{0}};
    CHECK(nd_image8_scale(&big, &img, 4, &err), "%s", err.msg);
    CHECK(big.height == 8 && big.width == 12 && big.channels == 3, "scaled 4 times: %dx%dx%d", big.height, big.width,
          big.channels);
    int wrong = 0;
    for (int y = 0; y < big.height; y++)
        for (int x = 0; x < big.width; x++)
            for (int c = 0; c < 3; c++)
                wrong += big.pixels[(y * big.width + x) * 3 + c] != rgb[((y / 4) * 3 + x / 4) * 3 + c];
    CHECK(wrong == 0, "%d values of the scaled image differ from their source pixel", wrong);
    nd_image8_free(&big);
    CHECK(nd_image8_scale(&big, &img, 1, &err) && big.height == 2 && memcmp(big.pixels, rgb, sizeof rgb) == 0,
          "scale 1 changed the image");
    nd_image8_free(&big);
    nd_image8 wide = {.pixels = rgb, .height = 1, .width = 5000, .channels = 1};
    CHECK(!nd_image8_scale(&big, &wide, 16, &err) && strstr(err.msg, "80000") && !big.pixels,
          "a 1x5000 image scaled 16 times: %s", err.msg);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_write();
    test_grid();
    test_scale();
    const char *names[] = {"grey.png", "rgb.png", "grid.png"};
    for (int i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", tmp_dir, names[i]);
        unlink(path);
    }
    CHECK(rmdir(tmp_dir) == 0, "%s not empty", tmp_dir);
    return test_finish("data.png");
}
