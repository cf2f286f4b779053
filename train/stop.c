// Stopping a training run from outside: SIGINT (Ctrl-C) and SIGTERM (schedulers, containers, `timeout`) ask
// the run to finish its step, save and exit. sigaction keeps the handler installed (C11's signal() may reset
// it after one delivery, so a second Ctrl-C killed the run before its checkpoint was written).
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "train.h"

static volatile sig_atomic_t stop_signal;
static struct sigaction previous_int, previous_term;

static void on_stop_signal(int sig) {
    static const char again[] = "\nnanodiff: finishing the step and saving the checkpoint, then stopping\n";
    if (stop_signal) {
        ssize_t unused = write(STDERR_FILENO, again, sizeof again - 1); // async-signal-safe, unlike stdio
        (void)unused;
        return;
    }
    stop_signal = sig;
}

void nd_stop_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; // reads and writes in progress resume instead of failing with EINTR
    stop_signal = 0;
    sigaction(SIGINT, &sa, &previous_int);
    sigaction(SIGTERM, &sa, &previous_term);
}

void nd_stop_signals_restore(void) {
    sigaction(SIGINT, &previous_int, NULL);
    sigaction(SIGTERM, &previous_term, NULL);
}

int nd_stop_requested(void) { return stop_signal; }
