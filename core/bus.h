/*
 * bus.h - the local bus between worker processes: a broadcast or a send to
 * one user, serialised once by the worker where it starts, reaches every
 * other worker, which frames it once and delivers it to its own matching
 * connections.
 *
 * One inbound ring per worker in shared memory (made by the supervisor
 * before it forks), many writers under a robust process-shared lock, one
 * reader (its worker), and an eventfd per worker to wake it. Messages from
 * one worker to another arrive in the order they were published. A ring is
 * bounded: a worker that does not keep up (stuck, or far behind) misses
 * what does not fit and the miss is counted (mcpgw_bus_dropped); nobody
 * ever waits for it. The reader is woken only when it went to sleep on an
 * empty ring, so a busy reader costs a writer no system call.
 *
 * Ownership: mcpgw_bus_new() maps it and makes the eventfds;
 * mcpgw_bus_free() unmaps it and closes them in the calling process.
 * Records peeked with mcpgw_bus_peek() stay valid until mcpgw_bus_done().
 */
#ifndef MCPGW_BUS_H
#define MCPGW_BUS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mcpgw_bus mcpgw_bus;

/* Rings of at least ring_bytes (rounded up to a power of two) for
 * n_workers workers. NULL on failure. */
mcpgw_bus *mcpgw_bus_new(int n_workers, size_t ring_bytes);
void mcpgw_bus_free(mcpgw_bus *b);

/* Empties worker's ring (the supervisor, before starting a replacement). */
void mcpgw_bus_reset(mcpgw_bus *b, int worker);
/* The eventfd that is readable when worker's ring has something. */
int mcpgw_bus_fd(const mcpgw_bus *b, int worker);
/* The largest message the bus carries. */
size_t mcpgw_bus_max_message(const mcpgw_bus *b);

/* Publishes text[0..len) to every worker but `from`, for all connections
 * (user NULL) or one user's. Returns how many workers' rings took it;
 * took (may be NULL) gets them as a mask, bit w for worker w. */
int mcpgw_bus_publish(mcpgw_bus *b, int from, const char *user, const char *text, size_t len,
                      uint64_t *took);

/* Sends a control message text[0..len) to worker `to` alone (the admin
 * API's requests and answers between workers, admin_ops.c). 1 if its ring
 * took it, else 0. */
int mcpgw_bus_send(mcpgw_bus *b, int to, const char *text, size_t len);
/* How many workers the bus serves. */
int mcpgw_bus_workers(const mcpgw_bus *b);

/* The reader's side, for worker: 1 and the oldest message (user NULL for
 * all connections; *control set for a mcpgw_bus_send message), or 0 when
 * the ring is empty. */
int mcpgw_bus_peek(mcpgw_bus *b, int worker, const char **user, const char **text, size_t *len,
                   int *control);
/* Releases the message peek returned. */
void mcpgw_bus_done(mcpgw_bus *b, int worker);
/* The ring is empty and the reader goes to sleep: 1 if it really is empty
 * now (the next publish writes the eventfd), 0 if a message came in
 * meanwhile (peek again). Also drains the eventfd. */
int mcpgw_bus_sleep(mcpgw_bus *b, int worker);
/* Handing a TCP connection to the worker that serves it (a Streamable HTTP
 * session lives in one worker): the socket and the bytes already read from
 * it (at most MCPGW_BUS_HANDOVER_MAX) as one datagram, SCM_RIGHTS, on a
 * socket pair per worker that every worker inherits. */
#define MCPGW_BUS_HANDOVER_MAX 65536
/* The socket worker reads handovers from (readable when one waits). */
int mcpgw_bus_handover_fd(const mcpgw_bus *b, int worker);
/* Sends fd (duplicated by the kernel; the caller still closes its own) and
 * bytes[0..len) (1 <= len <= MCPGW_BUS_HANDOVER_MAX) to worker `to`. 0, or
 * -1 (full, or too large): the caller answers the client itself. */
int mcpgw_bus_handover(mcpgw_bus *b, int to, int fd, const void *bytes, size_t len);
/* The next handover for worker: its bytes into buf (cap bytes), the socket
 * in *fd. The length, -1 when none waits, -2 for one that could not be
 * used (dropped). */
long mcpgw_bus_handover_recv(mcpgw_bus *b, int worker, int *fd, void *buf, size_t cap);

/* Messages worker missed because its ring was full. */
uint64_t mcpgw_bus_dropped(const mcpgw_bus *b, int worker);

#endif
