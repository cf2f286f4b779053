// Shared test harness state and comparison helpers.
#include <math.h>

#include "test.h"

int nd_test_passed, nd_test_failed;

int test_finish(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, nd_test_passed, nd_test_failed);
    return nd_test_failed ? 1 : 0;
}

double test_max_violation(const float *a, const float *b, long long n, double atol, double rtol,
                          long long *worst_index) {
    double worst = 0.0;
    if (worst_index) *worst_index = -1;
    for (long long i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double v = diff == 0.0 ? 0.0 : diff / (atol + rtol * fabs((double)b[i]));
        if (!(v <= worst)) { // also catches NaN
            worst = isnan(v) ? INFINITY : v;
            if (worst_index) *worst_index = i;
        }
    }
    return worst;
}
