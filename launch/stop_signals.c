/* stop_signals.c: preemption signals received by a thread of their own (sigwait), never by a
 * handler interrupting the threads that compute and communicate.
 *
 * Why not a handler: with SIGUSR1 forwarded by mpirun to a 2-stage pipeline beside two busy
 * loops, 4 stops in 60 corrupted a rank's heap (glibc aborting in free or malloc, inside
 * oneDNN, cJSON or at exit), although the handler only stored a sig_atomic_t; with the
 * signals blocked in every thread and taken by sigwait, 0 in 120. A handler stays installed
 * all the same, in case a library unblocks the signals in a thread of its own.
 *
 * The process state this keeps (the signal received, whether the loop is armed) is its only
 * purpose: signals are process-wide.
 */
#include "stop_signals.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "check.h"

static atomic_int g_stop;  /* the first signal after arming, 0 before */
static atomic_int g_armed; /* 1: the step loop runs */
static sigset_t g_set;     /* SIGTERM, SIGINT, SIGUSR1 */

/* Before arming: the signal's default action (the process ends), from the thread that took
 * it; after: recorded once. */
static void take(int sig) {
    if (!atomic_load(&g_armed)) {
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        return;
    }
    int none = 0;
    atomic_compare_exchange_strong(&g_stop, &none, sig);
}

static void on_signal(int sig) { /* lock-free atomics only: async-signal-safe */
    int none = 0;
    if (atomic_load(&g_armed)) atomic_compare_exchange_strong(&g_stop, &none, sig);
}

static void *waiter(void *arg) {
    (void)arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&g_set, &sig) == 0) take(sig);
    }
    return NULL;
}

void qtx_stop_signals_start(void) {
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    sigemptyset(&g_set);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaddset(&g_set, sigs[i]);
        sigaction(sigs[i], &sa, NULL);
    }
    QTX_CHECK(pthread_sigmask(SIG_BLOCK, &g_set, NULL) == 0, "cannot block the stop signals");
    pthread_t t;
    QTX_CHECK(pthread_create(&t, NULL, waiter, NULL) == 0, "cannot start the signal thread");
    pthread_detach(t);
}

void qtx_stop_signals_arm(void) {
    atomic_store(&g_armed, 1);
}

int qtx_stop_signal(void) {
    return atomic_load(&g_stop);
}
