// nanodiff text: captions made from Fashion-MNIST images (label + attributes measured on the image itself) and
// a byte-level BPE tokenizer learnt from them (CLIP's: lower case, start/end tokens, a fixed context).
// Included by data.h.
#ifndef ND_TEXT_H
#define ND_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nd_dataset;
struct nd_error;

// ---------------------------------------------------------------------------------------------------
// captions

#define ND_CAPTION_MAX 128 // longest caption, terminator included

typedef enum { ND_FACING_NONE = -1, ND_FACING_LEFT = 0, ND_FACING_RIGHT = 1 } nd_facing;

// What a caption may say about one image, measured on the image as the model sees it (flipped or not).
typedef struct nd_caption_attrs {
    int label;        // class index
    float ink;        // mean grey level of the inked pixels, in [0, 1]
    float fill;       // fraction of pixels inked (grey level > ND_CAPTION_INK_LEVEL)
    bool dark;        // ink below the class's median: "dark", else "light"
    bool small;       // fill below the class's median: "small", else "large"
    nd_facing facing; // shoes only (sandal, sneaker, ankle boot): where the toe points; NONE otherwise
} nd_caption_attrs;

#define ND_CAPTION_INK_LEVEL 0.1f // a pixel counts as inked above this grey level (in [0, 1])

// Per-class thresholds of the attributes (medians over a data set), so "dark" and "small" mean dark or small
// for that kind of garment. Labels must be Fashion-MNIST's ten (nd_fashion_mnist_classes).
typedef struct nd_captioner {
    uint64_t seed;         // template choices are Philox draws of (seed, image index, variant)
    float ink_median[10];  // by class
    float fill_median[10]; // by class
} nd_captioner;

// True for sandal (5), sneaker (7) and ankle boot (9): the classes whose facing a caption states.
bool nd_caption_is_shoe(int label);
// Fashion-MNIST's class names as captions say them: "t-shirt", "trouser", "pullover", "dress", "coat",
// "sandal", "shirt", "sneaker", "bag", "ankle boot".
extern const char *const nd_caption_class_names[10];

// Measures ds's images (unflipped) for the per-class medians; ds must be labelled with 10 classes and one
// channel. False with err naming the data set otherwise.
bool nd_captioner_init(nd_captioner *c, const struct nd_dataset *ds, uint64_t seed, struct nd_error *err);
// Attributes of image (H, W) with grey levels in [0, 1], as shown (already flipped when flipped); facing is
// measured for shoes only: the ink of the shoe's upper rows (shaft, heel, strap) lies behind the centre of all
// its ink, and the toe points the other way.
void nd_caption_measure(const nd_captioner *c, const float *image, int h, int w, int label, nd_caption_attrs *out);
// The caption of image `index` of ds shown flipped or not: a template (several per class; some state no
// attribute, some one or two) chosen by a draw of (seed, index, variant) and filled with the attributes
// measured on the flipped image. variant lets training draw a new template each epoch (pass the epoch);
// variant 0 is "the" caption of an image. Writes at most ND_CAPTION_MAX bytes; returns the attributes in out
// when out is not NULL.
void nd_caption_make(const nd_captioner *c, const struct nd_dataset *ds, int64_t index, bool flip, uint64_t variant,
                     char *caption, nd_caption_attrs *out);
// The zero-shot prompt of a class: "a photo of a sneaker" / "a photo of an ankle boot".
void nd_caption_class_prompt(int label, char *caption, size_t size);

// ---------------------------------------------------------------------------------------------------
// byte-level BPE tokenizer

#define ND_TOKENIZER_CONTEXT 77 // CLIP's context length

// Token ids: 0..255 are the bytes, 256..256+n_merges-1 the merges in the order learnt, then start-of-text and
// end-of-text (the two largest ids, so the end token is each row's argmax, as in CLIP). Padding is 0 as in
// OpenAI's clip.tokenize; the end token's position marks where a prompt stops.
typedef struct nd_tokenizer {
    int n_merges;
    int32_t *merges; // (n_merges, 2): token 256 + i is merges[2i] followed by merges[2i+1]
    int vocab_size;  // 256 + n_merges + 2
    int sot, eot;    // vocab_size - 2, vocab_size - 1
    int context;     // tokens per encoded prompt, start and end included
    uint8_t **bytes; // (vocab_size) the bytes each token stands for (none for sot/eot)
    int *n_bytes;    // (vocab_size)
    // the merge rank of a pair, as an open-addressing hash table (encoding's lookup)
    int64_t *pair_keys; // (table_size) a * 2^32 + b, or -1 for an empty slot
    int32_t *pair_rank; // (table_size)
    int64_t table_size;
} nd_tokenizer;

// Learns merges from texts (lower-cased, split into words: a run of letters with the space before it, a run
// of digits, or any other single byte) until vocab_size tokens exist or no pair occurs twice.
bool nd_tokenizer_train(nd_tokenizer *tok, const char *const *texts, int64_t n_texts, int vocab_size, int context,
                        struct nd_error *err);
// Builds a tokenizer from a merge list (a checkpoint's); false with err saying which merge refers to a token
// that does not exist yet.
bool nd_tokenizer_from_merges(nd_tokenizer *tok, const int32_t *merges, int n_merges, int context,
                              struct nd_error *err);
void nd_tokenizer_free(nd_tokenizer *tok);

// clip.tokenize of one prompt of len bytes (any bytes, NUL included): ids (context) get sot, the BPE tokens of
// the lower-cased text, eot, then 0s. A prompt longer than the context is cut so that eot still fits, and
// *truncated (when not NULL) says so. Returns the number of ids written before the padding (sot and eot
// included), so the end token sits at the return value minus one.
int nd_tokenizer_encode_bytes(const nd_tokenizer *tok, const uint8_t *text, size_t len, int32_t *ids, bool *truncated);
// The same for a C string; prints "warning: prompt ... truncated to N tokens" to stderr when cut.
int nd_tokenizer_encode(const nd_tokenizer *tok, const char *text, int32_t *ids);
// Encodes n prompts into ids (n, context); warns once per truncated prompt.
void nd_tokenizer_encode_batch(const nd_tokenizer *tok, const char *const *texts, int n, int32_t *ids);
// The bytes of ids (n of them) without sot, eot and padding (stops at the first eot); writes at most size - 1
// bytes and a terminator, returns the length the full text has.
size_t nd_tokenizer_decode(const nd_tokenizer *tok, const int32_t *ids, int n, char *text, size_t size);
// Position of the end token in a row of ids (context): CLIP's argmax; context - 1 when there is none.
int nd_tokenizer_eot_position(const nd_tokenizer *tok, const int32_t *ids);

#endif
