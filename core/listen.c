/*
 * listen.c - listening sockets (see listen.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"

int mcpgw_listen_describe(int fd, mcpgw_listen_addr *bound)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int listening = 0;
    socklen_t len = sizeof(listening);

    memset(bound, 0, sizeof(*bound));
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0)
        return -1;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, bound->ip, sizeof(bound->ip));
        bound->port = ntohs(a->sin6_port);
    } else if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, bound->ip, sizeof(bound->ip));
        bound->port = ntohs(a->sin_port);
    } else {
        return -1;
    }
    return 0;
}

int mcpgw_listen_open(const char *host, int port, int reuseport, mcpgw_listen_addr *bound,
                      char *err, size_t errcap)
{
    struct addrinfo hints, *ai = NULL;
    char portstr[16];
    int fd = -1, one = 1, gai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    snprintf(portstr, sizeof(portstr), "%d", port);
    gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errcap, "%s", gai_strerror(gai));
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0)
        goto fail;
    freeaddrinfo(ai);
    ai = NULL;

    if (mcpgw_listen_describe(fd, bound) != 0) {
        memset(bound, 0, sizeof(*bound));
        bound->port = port;
    }
    return fd;
fail:
    snprintf(err, errcap, "%s", strerror(errno));
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    return -1;
}
