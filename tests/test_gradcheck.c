// Runs the gradient check of one op case by name (one ctest per case).
#include <stdio.h>

#include "gradcheck.h"
#include "test.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_gradcheck CASE\n");
        return 2;
    }
    const gc_case *c = gc_find(argv[1]);
    if (!c) {
        fprintf(stderr, "test_gradcheck: no case named \"%s\"\n", argv[1]);
        return 2;
    }
    gc_run(c);
    return test_finish("gradcheck");
}
