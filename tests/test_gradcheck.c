// Runs the gradient check of one op case by name (one ctest per case). --list prints every case as
// "<family> <name>", from which tests/discover_cases.cmake registers exactly the cases that exist.
#include <stdio.h>
#include <string.h>

#include "gradcheck.h"
#include "test.h"

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < gc_count(); i++) printf("%s %s\n", gc_family_at(i), gc_at(i)->name);
        return 0;
    }
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
