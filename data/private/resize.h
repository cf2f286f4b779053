// The plane resizes behind nd_dataset_resize, private to data/ (not on any include path above it); the
// resize tests check them against PIL directly, with data/private on their include path.
#ifndef ND_RESIZE_H
#define ND_RESIZE_H

#include <stdbool.h>
#include <stdint.h>

// PIL Image.resize(BILINEAR) of one 8-bit plane, (in_h, in_w) -> (out_h, out_w), in PIL's fixed point: the
// same bytes as torchvision.transforms.Resize on a PIL image. False only when memory runs out.
bool nd_resize_u8(uint8_t *dst, int out_h, int out_w, const uint8_t *src, int in_h, int in_w);
// The same on a float plane (PIL mode "F": double accumulation, no rounding).
bool nd_resize_f32(float *dst, int out_h, int out_w, const float *src, int in_h, int in_w);

#endif
