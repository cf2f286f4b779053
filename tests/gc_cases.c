// The registry of op cases: each family's table, shared by the gradient checks and the PyTorch references.
#include <string.h>

#include "gradcheck.h"

extern const gc_case gc_cases_core[];
extern const int gc_cases_core_count;
extern const gc_case gc_cases_norm[];
extern const int gc_cases_norm_count;
extern const gc_case gc_cases_random[];
extern const int gc_cases_random_count;
extern const gc_case gc_cases_conv[];
extern const int gc_cases_conv_count;

typedef struct case_table {
    const char *family; // the cases' file gradcheck_<family>.c and fixture fixtures/<family>.ndfx
    const gc_case *cases;
    const int *count;
} case_table;

static const case_table tables[] = {
    {"core", gc_cases_core, &gc_cases_core_count},
    {"norm", gc_cases_norm, &gc_cases_norm_count},
    {"random", gc_cases_random, &gc_cases_random_count},
    {"conv", gc_cases_conv, &gc_cases_conv_count},
};

const gc_case *gc_find(const char *name) {
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (int i = 0; i < *tables[t].count; i++)
            if (strcmp(tables[t].cases[i].name, name) == 0) return &tables[t].cases[i];
    return NULL;
}

int gc_count(void) {
    int n = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) n += *tables[t].count;
    return n;
}

const gc_case *gc_at(int i) {
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        if (i < *tables[t].count) return &tables[t].cases[i];
        i -= *tables[t].count;
    }
    return NULL;
}

const char *gc_family_at(int i) {
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        if (i < *tables[t].count) return tables[t].family;
        i -= *tables[t].count;
    }
    return NULL;
}
