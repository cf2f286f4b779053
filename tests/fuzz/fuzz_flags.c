// libFuzzer harness: the command-line flag parser. The input is split at NUL bytes into arguments and
// parsed against a table holding every flag type.
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz.h"

#define FUZZ_MAX_ARGS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[FUZZ_MAX_ARGS];
    int argc = 0;
    for (size_t at = 0; at <= size && argc < FUZZ_MAX_ARGS; at += strlen(text + at) + 1) argv[argc++] = text + at;
    int64_t steps = 10;
    int64_t seed = 0;
    double lr = 1e-3, w = 0;
    const char *out = "runs/x";
    bool resume = false;
    const nd_flag flags[] = {
        {"--steps", ND_FLAG_INT, &steps, "steps"},
        {"--lr", ND_FLAG_FLOAT, &lr, "learning rate"},
        {"--seed", ND_FLAG_INT, &seed, "seed"},
        {"--w", ND_FLAG_FLOAT, &w, "guidance"},
        {"--out", ND_FLAG_STRING, &out, "output"},
        {"--resume", ND_FLAG_BOOL, &resume, "resume"},
    };
    nd_flags_parse("fuzz", argc, argv, 0, flags, (int)(sizeof flags / sizeof flags[0]));
    free(text);
    return 0;
}
