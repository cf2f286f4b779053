// Shared by the fuzz harnesses: libFuzzer's entry point, and a scratch file for readers that take a path.
#ifndef ND_FUZZ_H
#define ND_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Writes the input to this process's scratch file (under $TMPDIR or /tmp, removed at exit) and returns its
// path; `suffix` lets a reader that looks at the name see the one it expects (".gz", ".h5").
const char *nd_fuzz_file(const uint8_t *data, size_t size, const char *suffix);

#endif
