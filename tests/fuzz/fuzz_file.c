// The scratch file the path-taking readers are fuzzed through.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char scratch[512];

static void remove_scratch(void) { unlink(scratch); }

const char *nd_fuzz_file(const uint8_t *data, size_t size, const char *suffix) {
    if (!scratch[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/nd_fuzz_%d%s", dir && *dir ? dir : "/tmp", (int)getpid(), suffix);
        atexit(remove_scratch);
    }
    FILE *f = fopen(scratch, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        perror(scratch);
        abort();
    }
    fclose(f);
    return scratch;
}
