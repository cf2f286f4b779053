// libFuzzer harness: the BPE tokenizer. The input's first byte gives a merge count m (at most 255), the next
// 4m bytes m merges (two little-endian 16-bit token ids each, as a checkpoint's merge list would hold them),
// the rest is a prompt: built from the merges, encoded, decoded; and a tokenizer learnt from the prompt's lines.
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fuzz.h"

#define FUZZ_MAX_LINES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int n_merges = data[0];
    if (size < 1 + 4 * (size_t)n_merges) return 0;
    int32_t *merges = malloc((size_t)(n_merges ? n_merges : 1) * 2 * sizeof(int32_t));
    for (int i = 0; i < 2 * n_merges; i++) merges[i] = data[1 + 2 * i] | data[2 + 2 * i] << 8;
    const uint8_t *text = data + 1 + 4 * n_merges;
    size_t len = size - 1 - 4 * (size_t)n_merges;
    nd_tokenizer tok;
    nd_error err;
    if (nd_tokenizer_from_merges(&tok, merges, n_merges, ND_TOKENIZER_CONTEXT, &err)) {
        int32_t ids[ND_TOKENIZER_CONTEXT];
        bool truncated;
        int n = nd_tokenizer_encode_bytes(&tok, text, len, ids, &truncated);
        char decoded[1024];
        nd_tokenizer_decode(&tok, ids, n, decoded, sizeof decoded);
        nd_tokenizer_eot_position(&tok, ids);
        nd_tokenizer_free(&tok);
    }
    free(merges);
    // the prompt's lines (NUL-terminated copies) as a corpus to learn merges from
    char *copy = malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *lines[FUZZ_MAX_LINES];
    int n_lines = 0;
    for (char *p = copy; p && n_lines < FUZZ_MAX_LINES;) {
        lines[n_lines++] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
    if (nd_tokenizer_train(&tok, lines, n_lines, 300, ND_TOKENIZER_CONTEXT, &err)) nd_tokenizer_free(&tok);
    free(copy);
    return 0;
}
