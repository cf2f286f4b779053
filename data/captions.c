// Captions of Fashion-MNIST images: the class name plus attributes measured on the image as shown (tone, size,
// and for shoes the way the toe points), phrased by one of several templates drawn from (seed, index, variant).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

const char *const nd_caption_class_names[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                                "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};

bool nd_caption_is_shoe(int label) { return label == 5 || label == 7 || label == 9; }

// splitmix64: the template draws are a pure function of their key, like every other random choice in nanodiff.
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// The column centroid of the ink in rows [r0, r1), weighted by grey level; -1 without ink.
static double ink_centroid(const float *image, int w, int r0, int r1) {
    double mass = 0, moment = 0;
    for (int r = r0; r < r1; r++)
        for (int c = 0; c < w; c++) {
            float v = image[r * w + c];
            if (v > ND_CAPTION_INK_LEVEL) mass += v, moment += v * c;
        }
    return mass > 0 ? moment / mass : -1;
}

// The shaft, heel or strap of a shoe rises above its sole at the back: the ink of the upper half of the shoe's
// rows sits behind the shoe's overall centre, so the toe points the other way.
static nd_facing measure_facing(const float *image, int h, int w) {
    int top = -1, bottom = -1;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++)
            if (image[r * w + c] > ND_CAPTION_INK_LEVEL) {
                if (top < 0) top = r;
                bottom = r;
            }
    if (top < 0) return ND_FACING_LEFT;
    double all = ink_centroid(image, w, top, bottom + 1);
    double upper = ink_centroid(image, w, top, (top + bottom) / 2 + 1);
    return upper > all ? ND_FACING_LEFT : ND_FACING_RIGHT;
}

static void measure_raw(const float *image, int h, int w, float *ink, float *fill) {
    double sum = 0;
    int64_t inked = 0;
    for (int i = 0; i < h * w; i++)
        if (image[i] > ND_CAPTION_INK_LEVEL) sum += image[i], inked++;
    *ink = inked ? (float)(sum / (double)inked) : 0.0f;
    *fill = (float)inked / (float)(h * w);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

bool nd_captioner_init(nd_captioner *c, const nd_dataset *ds, uint64_t seed, nd_error *err) {
    if (!ds->labels || ds->num_classes != 10 || ds->c != 1)
        return nd_error_set(err, "captions need Fashion-MNIST-like data: 10 labelled classes of 1-channel images, "
                                 "found %d classes of %d-channel images", ds->num_classes, ds->c);
    memset(c, 0, sizeof *c);
    c->seed = seed;
    int64_t hw = (int64_t)ds->h * ds->w;
    float *image = nd_xmalloc((size_t)hw * sizeof *image);
    float *inks = nd_xmalloc((size_t)ds->n * sizeof *inks), *fills = nd_xmalloc((size_t)ds->n * sizeof *fills);
    for (int k = 0; k < 10; k++) {
        int64_t m = 0;
        for (int64_t i = 0; i < ds->n; i++) {
            if (ds->labels[i] != k) continue;
            nd_dataset_sample(image, ds, i, false, true);
            measure_raw(image, ds->h, ds->w, &inks[m], &fills[m]);
            m++;
        }
        if (m == 0) continue;
        qsort(inks, (size_t)m, sizeof *inks, cmp_float);
        qsort(fills, (size_t)m, sizeof *fills, cmp_float);
        c->ink_median[k] = inks[m / 2];
        c->fill_median[k] = fills[m / 2];
    }
    free(image), free(inks), free(fills);
    return true;
}

void nd_caption_measure(const nd_captioner *c, const float *image, int h, int w, int label, nd_caption_attrs *out) {
    out->label = label;
    measure_raw(image, h, w, &out->ink, &out->fill);
    out->dark = out->ink < c->ink_median[label];
    out->small = out->fill < c->fill_median[label];
    out->facing = nd_caption_is_shoe(label) ? measure_facing(image, h, w) : ND_FACING_NONE;
}

static bool starts_with_vowel(const char *word) { return word[0] && strchr("aeiou", word[0]) != NULL; }

// Appends " <article> <words...>" choosing "a" or "an" by the first word that follows.
static void append_noun_phrase(char *caption, const char *const *words, int n_words) {
    size_t len = strlen(caption);
    len += (size_t)snprintf(caption + len, ND_CAPTION_MAX - len, "%s", starts_with_vowel(words[0]) ? "an" : "a");
    for (int i = 0; i < n_words && len < ND_CAPTION_MAX; i++)
        len += (size_t)snprintf(caption + len, ND_CAPTION_MAX - len, " %s", words[i]);
}

void nd_caption_make(const nd_captioner *c, const nd_dataset *ds, int64_t index, bool flip, uint64_t variant,
                     char *caption, nd_caption_attrs *out) {
    static const char *const prefixes[] = {"", "a photo of ", "a picture of ", "a black and white picture of ",
                                           "an image of "};
    int64_t hw = (int64_t)ds->h * ds->w;
    float *image = nd_xmalloc((size_t)hw * sizeof *image);
    nd_caption_attrs a;
    nd_dataset_sample(image, ds, index, flip, true);
    nd_caption_measure(c, image, ds->h, ds->w, ds->labels[index], &a);
    free(image);
    if (out) *out = a;

    uint64_t r = mix64(mix64(c->seed ^ 0x636170u) ^ mix64((uint64_t)index) ^ mix64(variant + 0x51ed27u));
    // Each choice uses its own bits of r: the prefix, whether to state the tone, the size, the facing.
    const char *prefix = prefixes[(r & 0xffff) % (sizeof prefixes / sizeof prefixes[0])];
    bool say_tone = ((r >> 16) & 0xff) < 90, say_size = ((r >> 24) & 0xff) < 90; // ~35% each
    bool say_facing = a.facing != ND_FACING_NONE && ((r >> 32) & 0xff) < 160;   // ~60% of shoe captions
    const char *words[3];
    int n = 0;
    if (say_size) words[n++] = a.small ? "small" : "large";
    if (say_tone) words[n++] = a.dark ? "dark" : "light";
    words[n++] = nd_caption_class_names[a.label];
    snprintf(caption, ND_CAPTION_MAX, "%s", prefix);
    append_noun_phrase(caption, words, n);
    if (say_facing) {
        size_t len = strlen(caption);
        snprintf(caption + len, ND_CAPTION_MAX - len, " facing %s", a.facing == ND_FACING_LEFT ? "left" : "right");
    }
}

void nd_caption_class_prompt(int label, char *caption, size_t size) {
    const char *name = nd_caption_class_names[label];
    snprintf(caption, size, "a photo of %s %s", starts_with_vowel(name) ? "an" : "a", name);
}
