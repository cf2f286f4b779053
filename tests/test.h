// A small test harness: CHECK counts, reports file:line on failure, and test_finish() prints the summary
// line and returns the process exit status (1 on any failure or when no check ran, 0 otherwise).
#ifndef ND_TEST_H
#define ND_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>

#define ND_TEST_SKIP 77 // ctest's SKIP_RETURN_CODE for suites that cannot run here (no GPU)

extern int nd_test_passed, nd_test_failed;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) {                                                                                                    \
            nd_test_passed++;                                                                                          \
        } else {                                                                                                       \
            nd_test_failed++;                                                                                          \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

int test_finish(const char *suite);

// Checks that a user-facing error message names `path` and holds each of the n_words words that follow.
void test_message_names(const char *msg, const char *path, int n_words, va_list words);

// Largest |a - b| / (atol + rtol * |b|) over n values; <= 1 means every element is within tolerance.
double test_max_violation(const float *a, const float *b, long long n, double atol, double rtol,
                          long long *worst_index);

// Runs fn in a child process; copies its stderr into err and returns whether it died of SIGABRT (the way
// programmer errors end).
bool test_aborts_with(void (*fn)(void), char *err, size_t size);

#endif
