// Winograd's F(4x4, 3x3) transforms, written once for host and device (cpu/cpu_winograd.c runs them; a CUDA
// kernel can call the same functions): a 3x3 correlation of a 6x6 input tile d with a filter g is
// Y (4x4) = A^T [(G g G^T) .* (B^T d B)] A, so a convolution becomes 36 matrix products over channels
// between transformed tiles and transformed filters.
//
// The matrices are the Toom-Cook ones of the interpolation points 0, +-5/8, +-3/2 and infinity rather than
// the usual 0, +-1, +-2, infinity: the transforms' entries then spread less (the largest ratio in A^T is
// 27/8 : 125/512 instead of 8 : 1), and float32 rounding grows less. Measured on 6x6 tiles of 64 channels of
// unit normal data against a double direct correlation (relative RMS error of the outputs): 5.3e-7 with
// these points, 7.4e-7 with 0, +-1/2, +-2, 1.17e-6 with 0, +-1, +-2; a float32 direct sum: 1.1e-7.
// The powers of two among the entries (5/8, 3/2, 9/4, ...) are exact in float32.
//
//        [ 225/256    0     -169/64    0    1  0 ]          [ 1    1        1       1     1    0 ]
//        [   0     -45/32    -9/4     5/8   1  0 ]   A^T =  [ 0   5/8     -5/8     3/2  -3/2   0 ]
//  B^T = [   0      45/32    -9/4    -5/8   1  0 ]          [ 0  25/64    25/64    9/4   9/4   0 ]
//        [   0     -75/128  -25/64    3/2   1  0 ]          [ 0 125/512 -125/512  27/8 -27/8   1 ]
//        [   0      75/128  -25/64   -3/2   1  0 ]
//        [   0     225/256    0    -169/64  0  1 ]
//
//  G = [ 256/225, 0, 0 ; -2048/2975, -256/595, -32/119 ; -2048/2975, 256/595, -32/119 ;
//        128/1071, 64/357, 32/119 ; 128/1071, -64/357, 32/119 ; 0, 0, 1 ]
#ifndef ND_WINOGRAD_MATH_H
#define ND_WINOGRAD_MATH_H

#include "nd_random.h" // ND_HD

#define ND_WINO_OUT 4    // output tile side
#define ND_WINO_TILE 6   // input tile side: ND_WINO_OUT + 3 - 1
#define ND_WINO_ELEMS 36 // ND_WINO_TILE^2: the number of matrix products

// out[i * os] = (B^T in)[i] for the 6 values in[j * is].
ND_HD static inline void nd_winograd_input_1d(float *out, int os, const float *in, int is) {
    float d0 = in[0], d1 = in[is], d2 = in[2 * is], d3 = in[3 * is], d4 = in[4 * is], d5 = in[5 * is];
    float a1 = d4 - 2.25f * d2, b1 = 0.625f * d3 - 1.40625f * d1;
    float a3 = d4 - 0.390625f * d2, b3 = 1.5f * d3 - 0.5859375f * d1;
    out[0] = 0.87890625f * d0 - 2.640625f * d2 + d4;
    out[os] = a1 + b1;
    out[2 * os] = a1 - b1;
    out[3 * os] = a3 + b3;
    out[4 * os] = a3 - b3;
    out[5 * os] = 0.87890625f * d1 - 2.640625f * d3 + d5;
}

// v (6x6) = B^T d B for an input tile d (6x6, row-major).
ND_HD static inline void nd_winograd_input_tile(float v[ND_WINO_ELEMS], const float d[ND_WINO_ELEMS]) {
    float t[ND_WINO_ELEMS]; // B^T d
    for (int c = 0; c < ND_WINO_TILE; c++) nd_winograd_input_1d(t + c, ND_WINO_TILE, d + c, ND_WINO_TILE);
    for (int r = 0; r < ND_WINO_TILE; r++) nd_winograd_input_1d(v + r * ND_WINO_TILE, 1, t + r * ND_WINO_TILE, 1);
}

// out[i * os] = (G in)[i] for the 3 values in[j * is], in double: a filter is transformed once and reused.
ND_HD static inline void nd_winograd_filter_1d(double *out, int os, const double *in, int is) {
    double g0 = in[0], g1 = in[is], g2 = in[2 * is];
    double a1 = -2048.0 / 2975.0 * g0 - 32.0 / 119.0 * g2, b1 = 256.0 / 595.0 * g1;
    double a3 = 128.0 / 1071.0 * g0 + 32.0 / 119.0 * g2, b3 = 64.0 / 357.0 * g1;
    out[0] = 256.0 / 225.0 * g0;
    out[os] = a1 - b1;
    out[2 * os] = a1 + b1;
    out[3 * os] = a3 + b3;
    out[4 * os] = a3 - b3;
    out[5 * os] = g2;
}

// u (6x6) = G g G^T for a filter g (3x3, row-major), rounded to float32 once at the end.
ND_HD static inline void nd_winograd_filter_tile(float u[ND_WINO_ELEMS], const float g[9]) {
    double gd[9], t[ND_WINO_TILE * 3], ud[ND_WINO_ELEMS]; // t = G g (6x3)
    for (int i = 0; i < 9; i++) gd[i] = g[i];
    for (int c = 0; c < 3; c++) nd_winograd_filter_1d(t + c, 3, gd + c, 3);
    for (int r = 0; r < ND_WINO_TILE; r++) nd_winograd_filter_1d(ud + r * ND_WINO_TILE, 1, t + r * 3, 1);
    for (int i = 0; i < ND_WINO_ELEMS; i++) u[i] = (float)ud[i];
}

// out[i * os] = (A^T in)[i] for the 6 values in[j * is].
ND_HD static inline void nd_winograd_output_1d(float *out, int os, const float *in, int is) {
    float m0 = in[0], m1 = in[is], m2 = in[2 * is], m3 = in[3 * is], m4 = in[4 * is], m5 = in[5 * is];
    float s1 = m1 + m2, d1 = m1 - m2, s3 = m3 + m4, d3 = m3 - m4;
    out[0] = m0 + s1 + s3;
    out[os] = 0.625f * d1 + 1.5f * d3;
    out[2 * os] = 0.390625f * s1 + 2.25f * s3;
    out[3 * os] = 0.244140625f * d1 + 3.375f * d3 + m5;
}

// y (4x4, row-major) = A^T m A for a product tile m (6x6).
ND_HD static inline void nd_winograd_output_tile(float y[ND_WINO_OUT * ND_WINO_OUT], const float m[ND_WINO_ELEMS]) {
    float t[ND_WINO_OUT * ND_WINO_TILE]; // A^T m (4x6)
    for (int c = 0; c < ND_WINO_TILE; c++) nd_winograd_output_1d(t + c, ND_WINO_TILE, m + c, ND_WINO_TILE);
    for (int r = 0; r < ND_WINO_OUT; r++) nd_winograd_output_1d(y + r * ND_WINO_OUT, 1, t + r * ND_WINO_TILE, 1);
}

#endif
