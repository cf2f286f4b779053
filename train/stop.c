// Stopping a training run from outside: SIGINT (Ctrl-C) and SIGTERM (schedulers, containers, `timeout`) ask
// the run to finish its step, save and exit. sigaction keeps the handler installed (C11's signal() may reset
// it after one delivery, so a second Ctrl-C killed the run before its checkpoint was written).
//
// The threads that compute never take these signals: they block them, and one thread of our own receives
// them with sigwait. A handler runs on the stack of the thread it interrupts, and Debian's oneDNN (2.6)
// points the stack register of its AVX-512 sgemm kernel into a heap buffer while the kernel runs (for an
// inner dimension above 84; oneDNN issue #4845, fixed upstream in 2026): a signal delivered to that thread
// then writes its frame into the heap, and the run died later in malloc ("unaligned tcache chunk detected")
// instead of saving. The handler stays installed for threads created before the run (a data loader, a GPU
// driver's), which run no such kernel.
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "train.h"

static volatile sig_atomic_t stop_signal;
static struct sigaction previous_int, previous_term;
static sigset_t previous_mask;
static pthread_t waiter;
static bool waiting;

static void on_stop_signal(int sig) {
    static const char again[] = "\nnanodiff: finishing the step and saving the checkpoint, then stopping\n";
    if (stop_signal) {
        ssize_t unused = write(STDERR_FILENO, again, sizeof again - 1); // async-signal-safe, unlike stdio
        (void)unused;
        return;
    }
    stop_signal = sig;
}

static sigset_t stop_set(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

// The thread that takes the signals the others block, until nd_stop_signals_restore cancels it.
static void *wait_for_stop(void *arg) {
    (void)arg;
    sigset_t set = stop_set();
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) == 0) on_stop_signal(sig);
    }
    return NULL;
}

// Blocks (or unblocks) the stop signals in every thread of the OpenMP team, the threads that run BLAS and
// oneDNN; threads created later by a blocking thread inherit its mask.
static void team_mask(int how) {
    sigset_t set = stop_set();
#ifdef _OPENMP
#pragma omp parallel num_threads(omp_get_max_threads())
#endif
    pthread_sigmask(how, &set, NULL);
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
    sigset_t set = stop_set();
    pthread_sigmask(SIG_BLOCK, &set, &previous_mask);
    team_mask(SIG_BLOCK);
    waiting = pthread_create(&waiter, NULL, wait_for_stop, NULL) == 0; // born with the signals blocked
    if (!waiting) team_mask(SIG_UNBLOCK), pthread_sigmask(SIG_SETMASK, &previous_mask, NULL); // the handler alone
}

void nd_stop_signals_restore(void) {
    if (waiting) {
        pthread_cancel(waiter); // sigwait is a cancellation point
        pthread_join(waiter, NULL);
        waiting = false;
        // a signal that came after the waiter stopped is delivered here, to the handler, while nothing computes
        team_mask(SIG_UNBLOCK);
        pthread_sigmask(SIG_SETMASK, &previous_mask, NULL);
    }
    sigaction(SIGINT, &previous_int, NULL);
    sigaction(SIGTERM, &previous_term, NULL);
}

int nd_stop_requested(void) { return stop_signal; }
