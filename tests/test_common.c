// Shared test harness state and comparison helpers.
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

int nd_test_passed, nd_test_failed;

void test_message_names(const char *msg, const char *path, int n_words, va_list words) {
    CHECK(strstr(msg, path) != NULL, "message does not name %s: %s", path, msg);
    for (int i = 0; i < n_words; i++) {
        const char *word = va_arg(words, const char *);
        CHECK(strstr(msg, word) != NULL, "message lacks \"%s\": %s", word, msg);
    }
}

int test_finish(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, nd_test_passed, nd_test_failed);
    if (nd_test_passed + nd_test_failed == 0) {
        // a suite or case that checked nothing proves nothing: a skip must say so with ND_TEST_SKIP instead
        fprintf(stderr, "%s: no check ran\n", suite);
        return 1;
    }
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

bool test_aborts_with(void (*fn)(void), char *err, size_t size) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return false;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        fn();
        _exit(0);
    }
    close(pipefd[1]);
    size_t used = 0;
    ssize_t got;
    while (used + 1 < size && (got = read(pipefd[0], err + used, size - 1 - used)) > 0) used += (size_t)got;
    err[used] = 0;
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}
