// The progress line of long runs: step, epoch, loss, images/s and ETA, redrawn in place on a terminal and
// printed as plain lines (at most one per few seconds) into logs.
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "train.h"

#define ND_PROGRESS_TTY_PERIOD 0.25 // seconds between redraws on a terminal
#define ND_PROGRESS_LOG_PERIOD 5.0  // seconds between lines in a log

double nd_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nd_progress_init(nd_progress *p, const char *what, int64_t total_steps, int64_t first_step) {
    *p = (nd_progress){.what = what,
                       .total_steps = total_steps,
                       .first_step = first_step,
                       .start = nd_seconds(),
                       .tty = isatty(fileno(stderr))};
}

void nd_progress_update(nd_progress *p, int64_t step, int64_t epoch, int64_t epochs, double loss, int64_t images) {
    double now = nd_seconds();
    p->images += images;
    bool last = step + 1 >= p->total_steps;
    if (!last && now - p->last_print < (p->tty ? ND_PROGRESS_TTY_PERIOD : ND_PROGRESS_LOG_PERIOD)) return;
    p->last_print = now;
    double elapsed = now - p->start, rate = elapsed > 0 ? (double)p->images / elapsed : 0.0;
    int64_t done = step + 1 - p->first_step, left = p->total_steps - step - 1;
    double eta = done > 0 ? elapsed / (double)done * (double)left : 0.0;
    fprintf(stderr, "%s%s step %lld/%lld  epoch %lld/%lld  loss %.4f  %.0f img/s  ETA %d:%02d%s", p->tty ? "\r" : "",
            p->what, (long long)(step + 1), (long long)p->total_steps, (long long)(epoch + 1), (long long)epochs, loss,
            rate, (int)(eta / 60), (int)eta % 60, p->tty && !last ? "  " : "\n");
    fflush(stderr);
}
