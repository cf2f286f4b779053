// The files of a training run shared by every training loop: its output directory and its loss log.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "train.h"

bool nd_run_dir_make(const char *dir, nd_error *err) {
    char path[1100];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return nd_error_set(err, "output directory %.60s...: longer than %zu bytes", dir, sizeof path - 1);
    for (char *p = path + 1;; p++) { // mkdir -p
        bool end = *p == 0;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return nd_error_set(err, "%s: cannot create the output directory: %s", path, strerror(errno));
            if (end) break;
            *p = '/';
        }
    }
    return true;
}

FILE *nd_loss_log_open(const char *out_dir, bool resume, const char *header, nd_error *err) {
    char path[1100];
    snprintf(path, sizeof path, "%s/loss.csv", out_dir);
    FILE *log = fopen(path, resume ? "a" : "w");
    if (!log) {
        nd_error_set(err, "%s: cannot write: %s", path, strerror(errno));
        return NULL;
    }
    if (!resume) fprintf(log, "%s\n", header);
    return log;
}

void nd_loss_log_row(FILE *log, int64_t step, int64_t epoch, const float *values, int n) {
    fprintf(log, "%lld,%lld", (long long)step, (long long)epoch);
    for (int i = 0; i < n; i++) fprintf(log, ",%.6f", values[i]);
    fputc('\n', log);
    fflush(log); // a killed run keeps its log up to its last step
}
