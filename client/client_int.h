/*
 * client_int.h - the client's private structure, shared by client.c (the
 * connection: connect, upgrade, frames, close, reconnect, offline queue)
 * and request.c (requests matched to replies by id). Not installed.
 */
#ifndef MCPGW_CLIENT_INT_H
#define MCPGW_CLIENT_INT_H

#include <event2/event.h>
#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include <mcpgw/client.h>
#include "pmd.h"
#include "queue.h"
#include "upgrade.h"
#include "url.h"

typedef enum {
    CS_IDLE = 0,        /* never connected, or closed intentionally (connect() restarts) */
    CS_CONNECTING,      /* TCP (+TLS) under way */
    CS_UPGRADING,       /* request sent, waiting for the response head */
    CS_REJECTED,        /* non-101 answer: reading its body */
    CS_OPEN,
    CS_CLOSING,         /* close frame sent or received, waiting for TCP to end */
    CS_WAITING,         /* reconnect timer armed */
    CS_CLOSED           /* gave up (reconnect disabled, failed, or auth refused) */
} mcpgw_client_state;

typedef struct mcpgw_creq {
    struct mcpgw_creq *next, *prev;
    json_t *id;                 /* owned reference */
    char *text;                 /* owned serialisation (for resends) */
    size_t len;
    unsigned sent_gen;          /* connection generation it was last written on; 0 = never */
    int queued;                 /* sitting in the offline queue */
    struct event *timeout;      /* owned; NULL when no timeout */
    mcpgw_request_cb cb;
    void *arg;
    struct mcpgw_client *c;
} mcpgw_creq;

struct mcpgw_client {
    struct event_base *base;
    mcpgw_client_opts o;            /* token and ca_file point at our copies */
    mcpgw_curl url;
    char *target;                   /* request target, token added when in the URL */
    mcpgw_client_event_cb cb;
    void *arg;

    mcpgw_client_state state;
    struct bufferevent *bev;
    SSL_CTX *ssl_ctx;
    struct evdns_base *dns;
    struct event *reconnect_ev;
    struct event *deadline_ev;      /* connect timeout, or close timeout */
    char key[25];
    int attempt;                    /* reconnect attempts since the last open */
    int intentional;
    int ever_open_this_attempt;
    unsigned gen;                   /* increments on every successful upgrade */

    mcpgw_cqueue q;

    struct mcpgw_ws_msg *msg;       /* the incoming message being assembled (owned,
                                       ws_msg.h): only while one is open, else NULL */
    /* permessage-deflate of this connection (core/pmd.c, client role):
     * outgoing messages with a stream reset for each, incoming ones with a
     * stream reset for each too when the server answered
     * server_no_context_takeover, else with pmd_state's own */
    mcpgw_pmd_params pmd;           /* in force when pmd.enabled */
    mcpgw_pmd_pool pmd_pool;
    mcpgw_pmd_state pmd_state;

    /* close handshake bookkeeping */
    int close_sent;
    int close_code;                 /* what the server's close said (1005 none) */
    char close_reason[128];
    int got_close;

    mcpgw_cup_response resp;        /* a refused upgrade's head */

    mcpgw_creq *req_head, *req_tail;
    size_t n_req;

    int busy;                       /* callbacks on the stack */
    int doomed;                     /* free() was called while busy */
};

/* client.c */
void mcpgw_cl_enter(mcpgw_client *c);
/* Returns 0 if the client was freed on leaving (the caller must not touch it). */
int mcpgw_cl_leave(mcpgw_client *c);
int mcpgw_cl_write_text(mcpgw_client *c, const char *text, size_t len);
int mcpgw_cl_enqueue(mcpgw_client *c, const char *text, size_t len, mcpgw_creq *tag);

/* request.c */
void mcpgw_creq_resend_all_(mcpgw_client *c);       /* after a reconnect */
int mcpgw_creq_match_(mcpgw_client *c, json_t *msg); /* 1 if a request took it */
void mcpgw_creq_fail_all_(mcpgw_client *c, mcpgw_request_status st, int notify);
void mcpgw_creq_finish_(mcpgw_creq *r, mcpgw_request_status st, json_t *reply);
void mcpgw_creq_sent_(mcpgw_creq *r);               /* flushed from the queue */

#endif
