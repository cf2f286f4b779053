// The registry of op cases: each family's table, shared by the gradient checks and the PyTorch references.
#include <string.h>

#include "gradcheck.h"

extern const gc_case gc_cases_core[];
extern const int gc_cases_core_count;

typedef struct case_table {
    const gc_case *cases;
    const int *count;
} case_table;

static const case_table tables[] = {
    {gc_cases_core, &gc_cases_core_count},
};

const gc_case *gc_find(const char *name) {
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (int i = 0; i < *tables[t].count; i++)
            if (strcmp(tables[t].cases[i].name, name) == 0) return &tables[t].cases[i];
    return NULL;
}
