// High-frequency energy of images: the share of each image's spectral energy above half the Nyquist radius,
// from a 2-D DFT of the image with its mean removed (plain separable loops: the images are tiny).
#include <math.h>
#include <stdlib.h>

#include "eval.h"

// The high-frequency share of one image (C, S, S), its channels' energies pooled; 0 when it has no variation.
// cos_table and sin_table (S, S) hold cos and sin of 2 pi k x / S at [k * S + x]; re and im (S, S) are scratch.
static double image_hf_fraction(const float *image, int channels, int size, const double *cos_table,
                                const double *sin_table, double *re, double *im) {
    double high = 0.0, total = 0.0;
    for (int c = 0; c < channels; c++) {
        const float *plane = image + (int64_t)c * size * size; // (S, S)
        double mean = 0.0;
        for (int i = 0; i < size * size; i++) mean += plane[i];
        mean /= (double)size * size;
        // rows: R[y][v] = sum_x (plane[y][x] - mean) e^{-2 pi i v x / S}
        for (int y = 0; y < size; y++)
            for (int v = 0; v < size; v++) {
                double sr = 0.0, si = 0.0;
                for (int x = 0; x < size; x++) {
                    double d = plane[y * size + x] - mean;
                    sr += d * cos_table[v * size + x];
                    si -= d * sin_table[v * size + x];
                }
                re[y * size + v] = sr, im[y * size + v] = si;
            }
        // columns: X[u][v] = sum_y R[y][v] e^{-2 pi i u y / S}, and its energy by radius
        for (int u = 0; u < size; u++) {
            int ku = u < size - u ? u : size - u;
            for (int v = 0; v < size; v++) {
                int kv = v < size - v ? v : size - v;
                double xr = 0.0, xi = 0.0;
                for (int y = 0; y < size; y++) {
                    double cr = cos_table[u * size + y], ci = -sin_table[u * size + y];
                    xr += re[y * size + v] * cr - im[y * size + v] * ci;
                    xi += re[y * size + v] * ci + im[y * size + v] * cr;
                }
                double energy = xr * xr + xi * xi;
                total += energy;
                // radius (ku, kv) / S cycles a pixel beyond half of Nyquist's 1/2: ku^2 + kv^2 > (S / 4)^2
                if (16 * (ku * ku + kv * kv) > size * size) high += energy;
            }
        }
    }
    return total > 0.0 ? high / total : 0.0;
}

double nd_hf_energy(const float *images, int64_t n, int channels, int size) {
    if (n < 1 || channels < 1 || size < 1) return NAN;
    size_t plane = (size_t)size * (size_t)size;
    double *cos_table = nd_xmalloc(plane * sizeof(double)); // (S, S)
    double *sin_table = nd_xmalloc(plane * sizeof(double)); // (S, S)
    double *re = nd_xmalloc(plane * sizeof(double));        // (S, S)
    double *im = nd_xmalloc(plane * sizeof(double));        // (S, S)
    for (int k = 0; k < size; k++)
        for (int x = 0; x < size; x++) {
            const double two_pi = 6.28318530717958647692;
            double angle = two_pi * (double)((k * x) % size) / size; // k x mod S: exact angles of the periodic basis
            cos_table[k * size + x] = cos(angle), sin_table[k * size + x] = sin(angle);
        }
    double sum = 0.0;
    int64_t image = (int64_t)channels * size * size;
    for (int64_t i = 0; i < n; i++)
        sum += image_hf_fraction(images + i * image, channels, size, cos_table, sin_table, re, im);
    free(cos_table);
    free(sin_table);
    free(re);
    free(im);
    return sum / (double)n;
}
