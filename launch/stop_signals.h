/* stop_signals.h: the preemption signals of `qtx train` (SIGTERM, SIGINT, SIGUSR1, which
 * mpirun forwards to every rank): the run finishes its step, saves and exits 0. */
#ifndef QTX_STOP_SIGNALS_H
#define QTX_STOP_SIGNALS_H

/* Call first, before MPI or any other thread starts: blocks the three signals in this thread
 * (every thread made later inherits that) and starts the one thread that waits for them.
 * Until qtx_stop_signals_arm, a signal ends the process as it would by default. */
void qtx_stop_signals_start(void);

/* The step loop runs: from now on a signal is only recorded. */
void qtx_stop_signals_arm(void);

/* 0, or the first signal recorded since arming. */
int qtx_stop_signal(void);

#endif
