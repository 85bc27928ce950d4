/*
 * listen.h - opening the listening sockets: resolve, bind, listen, and
 * report the bound address (port 0 picks one). Used before any loop runs:
 * by the supervisor for every worker's socket, or by a lone server.
 */
#ifndef MCPGW_LISTEN_H
#define MCPGW_LISTEN_H

#include <stddef.h>

typedef struct mcpgw_listen_addr {
    char ip[64];                /* the bound address, printable */
    int port;                   /* the bound port */
} mcpgw_listen_addr;

/* A non-blocking, close-on-exec TCP socket listening on host:port (backlog
 * 1024, SO_REUSEADDR; SO_REUSEPORT too when reuseport, so that each worker
 * can have its own socket on one port and the kernel spreads connections).
 * Resolving a host name blocks: call it only before the loops run. Returns
 * the fd and fills *bound, or -1 with a reason in err. */
int mcpgw_listen_open(const char *host, int port, int reuseport, mcpgw_listen_addr *bound,
                      char *err, size_t errcap);

/* The bound address of a listening socket fd (one inherited across a
 * binary upgrade). 0, or -1 if fd is no listening TCP socket. */
int mcpgw_listen_describe(int fd, mcpgw_listen_addr *bound);

#endif
