/*
 * supervisor.h - the process model (as nginx's master and workers).
 *
 * The supervisor opens one listening socket per worker on each configured
 * address (SO_REUSEPORT: the kernel spreads connections, and a socket
 * outlives its worker, so connections queued on it wait for the
 * replacement), forks [server] workers processes, and never touches
 * traffic. Each worker runs its own loop and its own plugin instances
 * (mcpgw_server); the connection limits are shared (conn_limits.h).
 *
 * A worker that dies (a signal, an exit, its handler watchdog) is logged
 * (worker_crashed, with the message type it was handling when known), its
 * slots are released, and it is replaced at once, or after a growing delay
 * when it keeps dying (up to 10 s). Signals: SIGTERM/SIGINT shut every worker
 * down gracefully (a second one forces it); SIGHUP checks the configuration
 * and has every worker reload it; SIGUSR2 starts the binary anew (its file
 * may have been replaced) with the listening sockets (MCPGW_LISTEN_FDS):
 * once its workers serve, it sends the old supervisor SIGQUIT, whose
 * workers stop accepting, keep their clients for drain_timeout_ms and shut
 * down; no connection attempt is refused meanwhile. The supervisor tells
 * systemd READY=1 (and MAINPID after an upgrade) once every worker is
 * serving.
 */
#ifndef MCPGW_SUPERVISOR_H
#define MCPGW_SUPERVISOR_H

#include "gateway.h"

/* Runs the gateway gw (initialised) until it is shut down; returns the
 * process exit code: 0 after a graceful shutdown or a hand-over to a new
 * binary, 1 when a worker could not start or a shutdown was forced. argv
 * (kept) starts the binary again on SIGUSR2. Frees nothing of gw. */
int mcpgw_supervisor_run(mcpgw_gateway *gw, char **argv);

#endif
