// The progress line of long runs (training steps, sampling steps): what, where it is, images/s and the ETA,
// redrawn in place on a terminal; into a log, a plain line now and then so the log stays short.
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "train.h"

#define ND_PROGRESS_TTY_PERIOD 0.25    // seconds between redraws on a terminal
#define ND_PROGRESS_LOG_PERIOD 5.0     // seconds at least between lines in a log
#define ND_PROGRESS_LOG_FRACTION 0.1   // a log line when this much more of the run is done...
#define ND_PROGRESS_LOG_HEARTBEAT 60.0 // ...or this many seconds have passed, so a long run still shows it lives

double nd_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nd_progress_init(nd_progress *p, const char *what, int64_t total_steps, int64_t first_step) {
    *p = (nd_progress){.what = what,
                       .total_steps = total_steps,
                       .first_step = first_step,
                       .printed_step = first_step,
                       .start = nd_seconds(),
                       .tty = isatty(fileno(stderr))};
}

// Whether the line is due after step: always after the last one; on a terminal every fraction of a second;
// in a log every tenth of the run or every minute, never twice within a few seconds.
static bool progress_due(const nd_progress *p, int64_t step, double now) {
    if (step + 1 >= p->total_steps) return true;
    double since = now - p->last_print;
    if (p->tty) return since >= ND_PROGRESS_TTY_PERIOD;
    double advanced = (double)(step + 1 - p->printed_step) / (double)(p->total_steps - p->first_step);
    return since >= ND_PROGRESS_LOG_PERIOD &&
           (advanced >= ND_PROGRESS_LOG_FRACTION || since >= ND_PROGRESS_LOG_HEARTBEAT);
}

void nd_progress_show(nd_progress *p, int64_t step, double images, const char *fields, ...) {
    double now = nd_seconds();
    p->images += images;
    if (!progress_due(p, step, now)) return;
    bool last = step + 1 >= p->total_steps;
    p->last_print = now;
    p->printed_step = step + 1;
    double elapsed = now - p->start, rate = elapsed > 0 ? p->images / elapsed : 0.0;
    int64_t done = step + 1 - p->first_step, left = p->total_steps - step - 1;
    double eta = done > 0 ? elapsed / (double)done * (double)left : 0.0;
    fprintf(stderr, "%s%s ", p->tty ? "\r" : "", p->what);
    va_list args;
    va_start(args, fields);
    vfprintf(stderr, fields, args);
    va_end(args);
    // a tenth of an image a second where a slow sampler draws fewer than ten
    fprintf(stderr, "  %.*f img/s  ETA %d:%02d%s", rate < 9.95 ? 1 : 0, rate, (int)(eta / 60), (int)eta % 60,
            p->tty && !last ? "  " : "\n");
    fflush(stderr);
}

void nd_progress_update(nd_progress *p, int64_t step, int64_t epoch, int64_t epochs, double loss, int64_t images) {
    nd_progress_show(p, step, (double)images, "step %lld/%lld  epoch %lld/%lld  loss %.4f", (long long)(step + 1),
                     (long long)p->total_steps, (long long)(epoch + 1), (long long)epochs, loss);
}
