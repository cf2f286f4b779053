// Byte-level BPE (Sennrich et al.; GPT-2/CLIP's byte-level form): every byte is a base token, so nothing is
// unknown; merges learnt from a corpus join frequent neighbours inside words, and encoding replays them by rank.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

static uint8_t lower_byte(uint8_t b) { return (b >= 'A' && b <= 'Z') ? (uint8_t)(b + 32) : b; }
static bool is_letter(uint8_t b) { return (b >= 'a' && b <= 'z') || b >= 0x80; } // UTF-8 stays in its word
static bool is_digit(uint8_t b) { return b >= '0' && b <= '9'; }

// Length of the word starting at text[0] (lower-cased bytes): a space and the letters after it, letters, a
// run of digits, or one other byte.
static size_t word_length(const uint8_t *text, size_t len) {
    size_t i = 0;
    if (text[0] == ' ' && len > 1 && is_letter(text[1])) i = 1;
    if (is_letter(text[i])) {
        while (i < len && is_letter(text[i])) i++;
        return i;
    }
    if (is_digit(text[0])) {
        while (i < len && is_digit(text[i])) i++;
        return i;
    }
    return 1;
}

static uint64_t pair_hash(int64_t key) {
    uint64_t x = (uint64_t)key * 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 29);
}

static int32_t pair_lookup(const nd_tokenizer *tok, int32_t a, int32_t b) {
    int64_t key = ((int64_t)a << 32) | (uint32_t)b;
    for (uint64_t i = pair_hash(key) & (uint64_t)(tok->table_size - 1);;
         i = (i + 1) & (uint64_t)(tok->table_size - 1)) {
        if (tok->pair_keys[i] == key) return tok->pair_rank[i];
        if (tok->pair_keys[i] < 0) return -1;
    }
}

void nd_tokenizer_free(nd_tokenizer *tok) {
    if (tok->bytes)
        for (int i = 0; i < tok->vocab_size; i++) free(tok->bytes[i]);
    free(tok->bytes), free(tok->n_bytes), free(tok->merges), free(tok->pair_keys), free(tok->pair_rank);
    memset(tok, 0, sizeof *tok);
}

bool nd_tokenizer_from_merges(nd_tokenizer *tok, const int32_t *merges, int n_merges, int context, nd_error *err) {
    memset(tok, 0, sizeof *tok);
    if (n_merges < 0 || context < 2)
        return nd_error_set(err, "tokenizer: %d merges and context %d (expected >= 0 merges, context >= 2)", n_merges,
                            context);
    tok->n_merges = n_merges, tok->context = context;
    tok->vocab_size = 256 + n_merges + 2;
    tok->sot = tok->vocab_size - 2, tok->eot = tok->vocab_size - 1;
    tok->table_size = 64;
    while (tok->table_size < 2 * (int64_t)n_merges + 2) tok->table_size *= 2;
    tok->merges = malloc((size_t)(n_merges > 0 ? n_merges : 1) * 2 * sizeof *tok->merges);
    tok->bytes = calloc((size_t)tok->vocab_size, sizeof *tok->bytes);
    tok->n_bytes = calloc((size_t)tok->vocab_size, sizeof *tok->n_bytes);
    tok->pair_keys = malloc((size_t)tok->table_size * sizeof *tok->pair_keys);
    tok->pair_rank = malloc((size_t)tok->table_size * sizeof *tok->pair_rank);
    if (!tok->merges || !tok->bytes || !tok->n_bytes || !tok->pair_keys || !tok->pair_rank) {
        nd_tokenizer_free(tok);
        return nd_error_set(err, "tokenizer: out of memory for %d merges", n_merges);
    }
    memset(tok->pair_keys, 0xff, (size_t)tok->table_size * sizeof *tok->pair_keys);
    for (int i = 0; i < 256; i++) {
        tok->bytes[i] = nd_xmalloc(1);
        tok->bytes[i][0] = (uint8_t)i, tok->n_bytes[i] = 1;
    }
    for (int i = 0; i < n_merges; i++) {
        int32_t a = merges[2 * i], b = merges[2 * i + 1], id = 256 + i;
        if (a < 0 || b < 0 || a >= id || b >= id) {
            nd_tokenizer_free(tok);
            return nd_error_set(err,
                                "tokenizer: merge %d joins tokens %d and %d, but only tokens 0..%d exist before it", i,
                                a, b, id - 1);
        }
        tok->merges[2 * i] = a, tok->merges[2 * i + 1] = b;
        tok->n_bytes[id] = tok->n_bytes[a] + tok->n_bytes[b];
        tok->bytes[id] = nd_xmalloc((size_t)tok->n_bytes[id]);
        memcpy(tok->bytes[id], tok->bytes[a], (size_t)tok->n_bytes[a]);
        memcpy(tok->bytes[id] + tok->n_bytes[a], tok->bytes[b], (size_t)tok->n_bytes[b]);
        int64_t key = ((int64_t)a << 32) | (uint32_t)b;
        uint64_t s = pair_hash(key) & (uint64_t)(tok->table_size - 1);
        while (tok->pair_keys[s] >= 0 && tok->pair_keys[s] != key) s = (s + 1) & (uint64_t)(tok->table_size - 1);
        if (tok->pair_keys[s] == key) continue; // a repeated merge never wins over its first rank
        tok->pair_keys[s] = key, tok->pair_rank[s] = i;
    }
    return true;
}

// Applies the merges to one word's tokens in place, lowest rank first; returns the new count.
static int bpe_word(const nd_tokenizer *tok, int32_t *t, int n) {
    for (;;) {
        int32_t best = -1;
        for (int i = 0; i + 1 < n; i++) {
            int32_t r = pair_lookup(tok, t[i], t[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) best = r;
        }
        if (best < 0) return n;
        int32_t a = tok->merges[2 * best], b = tok->merges[2 * best + 1], m = 0;
        for (int i = 0; i < n; i++) {
            if (i + 1 < n && t[i] == a && t[i + 1] == b)
                t[m++] = 256 + best, i++;
            else
                t[m++] = t[i];
        }
        n = m;
    }
}

// ---------------------------------------------------------------------------------------------------
// learning the merges

typedef struct word_entry {
    int32_t *tokens;
    int n;
    int64_t count;
} word_entry;

typedef struct word_table {
    word_entry *items;
    int n, cap;
} word_table;

static bool word_add(word_table *w, const uint8_t *bytes, int n) {
    for (int i = 0; i < w->n; i++) { // corpora of captions hold a few dozen distinct words
        if (w->items[i].n != n) continue;
        int j = 0;
        while (j < n && w->items[i].tokens[j] == bytes[j]) j++;
        if (j == n) return w->items[i].count++, true;
    }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        word_entry *items = realloc(w->items, (size_t)cap * sizeof *items);
        if (!items) return false;
        w->items = items, w->cap = cap;
    }
    word_entry *e = &w->items[w->n];
    e->tokens = malloc((size_t)n * sizeof *e->tokens);
    if (!e->tokens) return false;
    for (int j = 0; j < n; j++) e->tokens[j] = bytes[j];
    e->n = n, e->count = 1;
    w->n++;
    return true;
}

bool nd_tokenizer_train(nd_tokenizer *tok, const char *const *texts, int64_t n_texts, int vocab_size, int context,
                        nd_error *err) {
    if (vocab_size < 258) return nd_error_set(err, "tokenizer: vocab size %d is below the 258 base tokens", vocab_size);
    word_table words = {0};
    bool ok = true;
    for (int64_t t = 0; t < n_texts && ok; t++) {
        size_t len = strlen(texts[t]);
        uint8_t *lower = nd_xmalloc(len + 1);
        for (size_t i = 0; i < len; i++) lower[i] = lower_byte((uint8_t)texts[t][i]);
        for (size_t i = 0; i < len && ok;) {
            size_t n = word_length(lower + i, len - i);
            ok = word_add(&words, lower + i, (int)n);
            i += n;
        }
        free(lower);
    }
    int max_merges = vocab_size - 258, n_merges = 0;
    int32_t *merges = malloc((size_t)(max_merges > 0 ? max_merges : 1) * 2 * sizeof *merges);
    if (!merges) ok = false;
    while (ok && n_merges < max_merges) {
        // The most frequent neighbouring pair over the words (ties: the pair met first, for determinism).
        int64_t best_count = 1;
        int32_t best_a = -1, best_b = -1;
        for (int i = 0; i < words.n; i++)
            for (int j = 0; j + 1 < words.items[i].n; j++) {
                int32_t a = words.items[i].tokens[j], b = words.items[i].tokens[j + 1];
                if (a == best_a && b == best_b) continue;
                int64_t c = 0;
                for (int k = 0; k < words.n; k++)
                    for (int l = 0; l + 1 < words.items[k].n; l++)
                        if (words.items[k].tokens[l] == a && words.items[k].tokens[l + 1] == b)
                            c += words.items[k].count;
                if (c > best_count) best_count = c, best_a = a, best_b = b;
            }
        if (best_a < 0) break;
        int32_t id = 256 + n_merges;
        merges[2 * n_merges] = best_a, merges[2 * n_merges + 1] = best_b;
        n_merges++;
        for (int i = 0; i < words.n; i++) {
            word_entry *e = &words.items[i];
            int m = 0;
            for (int j = 0; j < e->n; j++) {
                if (j + 1 < e->n && e->tokens[j] == best_a && e->tokens[j + 1] == best_b)
                    e->tokens[m++] = id, j++;
                else
                    e->tokens[m++] = e->tokens[j];
            }
            e->n = m;
        }
    }
    for (int i = 0; i < words.n; i++) free(words.items[i].tokens);
    free(words.items);
    if (!ok) {
        free(merges);
        return nd_error_set(err, "tokenizer: out of memory learning merges from %lld texts", (long long)n_texts);
    }
    ok = nd_tokenizer_from_merges(tok, merges, n_merges, context, err);
    free(merges);
    return ok;
}

// ---------------------------------------------------------------------------------------------------
// encoding and decoding

int nd_tokenizer_encode_bytes(const nd_tokenizer *tok, const uint8_t *text, size_t len, int32_t *ids, bool *truncated) {
    int room = tok->context - 2, n = 0; // text tokens that fit between sot and eot
    bool cut = false;
    int32_t *word = nd_xmalloc((len > 0 ? len : 1) * sizeof *word);
    uint8_t *lower = nd_xmalloc(len > 0 ? len : 1);
    for (size_t i = 0; i < len; i++) lower[i] = lower_byte(text[i]);
    memset(ids, 0, (size_t)tok->context * sizeof *ids);
    ids[0] = tok->sot;
    for (size_t i = 0; i < len && !cut;) {
        size_t wl = word_length(lower + i, len - i);
        for (size_t j = 0; j < wl; j++) word[j] = lower[i + j];
        int m = bpe_word(tok, word, (int)wl);
        for (int j = 0; j < m; j++) {
            if (n == room) {
                cut = true;
                break;
            }
            ids[1 + n++] = word[j];
        }
        i += wl;
    }
    ids[1 + n] = tok->eot;
    free(word), free(lower);
    if (truncated) *truncated = cut;
    return n + 2;
}

int nd_tokenizer_encode(const nd_tokenizer *tok, const char *text, int32_t *ids) {
    bool cut;
    int n = nd_tokenizer_encode_bytes(tok, (const uint8_t *)text, strlen(text), ids, &cut);
    if (cut)
        fprintf(stderr, "warning: prompt \"%.40s%s\" is longer than the context: truncated to %d tokens\n", text,
                strlen(text) > 40 ? "..." : "", tok->context);
    return n;
}

void nd_tokenizer_encode_batch(const nd_tokenizer *tok, const char *const *texts, int n, int32_t *ids) {
    for (int i = 0; i < n; i++) nd_tokenizer_encode(tok, texts[i], ids + (int64_t)i * tok->context);
}

size_t nd_tokenizer_decode(const nd_tokenizer *tok, const int32_t *ids, int n, char *text, size_t size) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id == tok->eot) break;
        if (id == tok->sot || id < 0 || id >= tok->vocab_size) continue;
        for (int j = 0; j < tok->n_bytes[id]; j++, len++)
            if (len + 1 < size) text[len] = (char)tok->bytes[id][j];
    }
    if (size > 0) text[len < size ? len : size - 1] = 0;
    return len;
}

int nd_tokenizer_eot_position(const nd_tokenizer *tok, const int32_t *ids) {
    for (int i = 0; i < tok->context; i++)
        if (ids[i] == tok->eot) return i;
    return tok->context - 1;
}
