// Runs one gradient-check case by name (one ctest per op), or every case with no argument.
#include <stdio.h>
#include <string.h>

#include "gradcheck.h"
#include "test.h"

extern const gc_case gc_cases_core[];
extern const int gc_cases_core_count;

typedef struct case_table {
    const gc_case *cases;
    const int *count;
} case_table;

static const case_table tables[] = {{gc_cases_core, &gc_cases_core_count}};

int main(int argc, char **argv) {
    int ran = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (int i = 0; i < *tables[t].count; i++) {
            const gc_case *c = &tables[t].cases[i];
            if (argc > 1 && strcmp(argv[1], c->name) != 0) continue;
            gc_run(c);
            ran++;
        }
    if (!ran) {
        fprintf(stderr, "test_gradcheck: no case named \"%s\"\n", argc > 1 ? argv[1] : "");
        return 1;
    }
    return test_finish("gradcheck");
}
