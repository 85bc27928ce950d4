/*
 * admin_ops.c - the admin API's actions on connections over every worker
 * (see admin_ops.h): this worker's part (list, close by id, close a user's),
 * the requests and answers between workers on the bus, and the pending
 * HTTP answers that wait for them.
 *
 * Between workers, control messages are JSON objects:
 *   {"op":"list","req":R,"from":W,"until":T,"limit":L}
 *   {"op":"close","req":R,"from":W,"until":T,"id":ID}
 *   {"op":"close_user","req":R,"from":W,"until":T,"user":U}
 * answered to worker W alone with
 *   {"op":"reply","req":R,"worker":w,"count":N,"list":[...]}   (list)
 *   {"op":"reply","req":R,"worker":w,"closed":N}               (closes)
 * R is unique within worker W; an answer that comes after its operation
 * was answered finds no operation and is dropped. T is when worker W stops
 * waiting (CLOCK_MONOTONIC, ms, the same clock in every process): a worker
 * that reads the request later (it was stopped or stuck) ignores it, so
 * that nothing is closed after the answer said it was not.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "admin_ops.h"
#include "bus.h"
#include "conn.h"
#include "http.h"
#include "http_api.h"
#include "json_read.h"
#include "json_write.h"
#include "log.h"
#include "mcp_http.h"
#include "metrics.h"
#include "server.h"
#include "ws_frame.h"
#include "worker_board.h"

typedef enum { OP_LIST = 0, OP_CLOSE, OP_CLOSE_USER } op_kind;

static const char *const op_names[] = { "list", "close", "close_user" };

struct mcpgw_admin_op {
    mcpgw_server *srv;
    struct mcpgw_admin_op *next;
    mcpgw_conn *conn;               /* the HTTP request (a reference) */
    struct event *timer;            /* MCPGW_ADMIN_WAIT_MS */
    uint64_t req;
    op_kind kind;
    int asked, answered;            /* other workers asked, and answers so far */
    int deferred;                   /* answered after the handler returned */
    char method[8], path[96];       /* for the access log of a late answer */

    /* the result so far */
    json_t *base;                   /* OP_LIST: the answer's other fields */
    json_t *list;                   /* OP_LIST: every worker's entries */
    size_t limit;
    uint64_t count;                 /* OP_LIST: connections seen; closes: closed */
    uint64_t id;                    /* OP_CLOSE */
    char *user;                     /* OP_CLOSE_USER; OP_CLOSE: the closed one's */
    char admin[128];                /* who asked (for the log line) */
};

typedef struct mcpgw_admin_op admin_op;

/* ------------------------------------------------------ this worker's part */

static int several_workers(const mcpgw_server *srv)
{
    return srv->gw->board && srv->gw->board->n_workers > 1;
}

static json_t *conn_entry(mcpgw_server *srv, const mcpgw_conn *c)
{
    struct timeval tv = { (time_t)c->opened_at, 0 };
    char since[40];
    json_t *e;

    mcpgw_format_iso8601(&tv, since, sizeof(since));
    e = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "id", (json_int_t)c->id,
                  "user", c->user ? c->user : "", "ip", mcpgw_conn_peer(c), "since", since, "path",
                  c->endpoint ? c->endpoint->path : srv->gw->cfg->path, "messages_in",
                  (json_int_t)c->messages[MCPGW_DIR_IN], "messages_out",
                  (json_int_t)c->messages[MCPGW_DIR_OUT], "bytes_in",
                  (json_int_t)c->wire_bytes[MCPGW_DIR_IN], "bytes_out",
                  (json_int_t)c->wire_bytes[MCPGW_DIR_OUT], "compression",
                  c->pmd.enabled ? "permessage-deflate" : "none");
    if (e && several_workers(srv))
        json_object_set_new(e, "worker", json_integer(srv->worker_id));
    if (e)
        json_object_set_new(e, "transport", json_string(c->mcp_session ? "http" : "websocket"));
    return e;
}

/* Up to limit of this worker's open connections, newest first; *count: all
 * of them. */
static json_t *local_list(mcpgw_server *srv, size_t limit, uint64_t *count)
{
    json_t *list = json_array();
    size_t n = 0;

    for (mcpgw_conn *c = srv->conns; c; c = c->next) {
        if (c->state != MCPGW_CONN_OPEN)
            continue;
        n++;
        if (list && json_array_size(list) < limit)
            json_array_append_new(list, conn_entry(srv, c));
    }
    for (mcpgw_conn *v = mcpgw_mcp_http_next(srv, NULL); v; v = mcpgw_mcp_http_next(srv, v)) {
        n++;                        /* Streamable HTTP sessions */
        if (list && json_array_size(list) < limit)
            json_array_append_new(list, conn_entry(srv, v));
    }
    *count = n;
    return list;
}

/* Closes connection id if this worker has it open: 1 (and its user), or 0. */
static int local_close_id(mcpgw_server *srv, uint64_t id, char **user)
{
    for (mcpgw_conn *c = srv->conns; c; c = c->next) {
        if (c->id != id || c->state != MCPGW_CONN_OPEN)
            continue;
        if (user && !*user && c->user)
            *user = strdup(c->user);
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_POLICY, MCPGW_ADMIN_CLOSE_REASON);
        return 1;
    }
    for (mcpgw_conn *v = mcpgw_mcp_http_next(srv, NULL); v; v = mcpgw_mcp_http_next(srv, v))
        if (v->id == id) {          /* a Streamable HTTP session */
            if (user && !*user && v->user)
                *user = strdup(v->user);
            return mcpgw_mcp_http_end(srv, id, NULL) > 0;
        }
    return 0;
}

static size_t local_close_user(mcpgw_server *srv, const char *user)
{
    mcpgw_conn *c, *next;
    size_t n = 0;

    for (c = srv->conns; c; c = next) {
        next = c->next;     /* closing keeps c in the list, but be safe */
        if (c->state != MCPGW_CONN_OPEN || !c->user || strcmp(c->user, user) != 0)
            continue;
        mcpgw_conn_close(c, MCPGW_WS_CLOSE_POLICY, MCPGW_ADMIN_CLOSE_REASON);
        n++;
    }
    return n + mcpgw_mcp_http_end(srv, 0, user);   /* and its Streamable HTTP sessions */
}

/* ------------------------------------------------------------ the bus */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends msg (stolen) to worker `to`; 1 if its ring took it. */
static int bus_send(mcpgw_server *srv, int to, json_t *msg)
{
    mcpgw_jbuf buf = { NULL, 0, 0 };
    int ok = 0;

    if (msg && mcpgw_json_write(&buf, msg) == 0)
        ok = mcpgw_bus_send(srv->gw->bus, to, buf.data, buf.len);
    mcpgw_jbuf_free(&buf);
    json_decref(msg);
    return ok;
}

/* Asks every other live worker; returns how many rings took the request. */
static int ask_others(mcpgw_server *srv, admin_op *op)
{
    const mcpgw_worker_board *board = srv->gw->board;
    int64_t until = now_ms() + MCPGW_ADMIN_WAIT_MS;
    int asked = 0, n;

    if (!srv->gw->bus || !board)
        return 0;
    n = mcpgw_bus_workers(srv->gw->bus);
    for (int w = 0; w < n && w < board->n_workers; w++) {
        json_t *msg;
        if (w == srv->worker_id || board->slot[w].pid == 0)
            continue;
        msg = json_pack("{s:s, s:I, s:i, s:I}", "op", op_names[op->kind], "req",
                        (json_int_t)op->req, "from", srv->worker_id, "until", (json_int_t)until);
        if (!msg)
            continue;
        if (op->kind == OP_LIST)
            json_object_set_new(msg, "limit", json_integer((json_int_t)op->limit));
        else if (op->kind == OP_CLOSE)
            json_object_set_new(msg, "id", json_integer((json_int_t)op->id));
        else
            json_object_set_new(msg, "user", json_string(op->user));
        asked += bus_send(srv, w, msg);
    }
    return asked;
}

/* ---------------------------------------------------------- operations */

static void op_unlink(admin_op *op)
{
    admin_op **pp = (admin_op **)&op->srv->admin_ops;

    while (*pp && *pp != op)
        pp = &(*pp)->next;
    if (*pp)
        *pp = op->next;
}

static void op_free(admin_op *op)
{
    if (op->timer)
        event_free(op->timer);
    json_decref(op->base);
    json_decref(op->list);
    free(op->user);
    free(op);
}

static int by_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));

    return x > y ? -1 : x < y;     /* newest (highest id) first */
}

/* The list answer: every worker's entries, newest first, at most limit. */
static json_t *list_answer(admin_op *op)
{
    json_t *answer = op->base, *list = json_array();
    size_t n = json_array_size(op->list), keep = n < op->limit ? n : op->limit;
    json_t **v = n ? malloc(n * sizeof(*v)) : NULL;

    op->base = NULL;
    if (!answer || !list || (n && !v)) {
        free(v);
        json_decref(list);
        json_decref(answer);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(op->list, i);
    qsort(v, n, sizeof(*v), by_id);
    for (size_t i = 0; i < keep; i++)
        json_array_append(list, v[i]);
    free(v);
    json_object_set_new(answer, "list", list);
    json_object_set_new(answer, "listed", json_integer((json_int_t)keep));
    json_object_set_new(answer, "limit", json_integer((json_int_t)op->limit));
    json_object_set_new(answer, "truncated", json_boolean(op->count > keep));
    return answer;
}

static void log_close(admin_op *op, int closed)
{
    mcpgw_server *srv = op->srv;
    json_t *f;

    if (!mcpgw_log_enabled(&srv->gw->log, MCPGW_LOG_INFO))
        return;
    if (op->kind == OP_CLOSE)
        f = json_pack("{s:I, s:b, s:s?, s:s}", "connection", (json_int_t)op->id, "found",
                      closed > 0, "user", op->user, "admin", op->admin);
    else
        f = json_pack("{s:s, s:I, s:s}", "user", op->user, "closed", (json_int_t)closed, "admin",
                      op->admin);
    if (f && op->answered < op->asked)
        json_object_set_new(f, "workers_unanswered", json_integer(op->asked - op->answered));
    mcpgw_log_event(&srv->gw->log, MCPGW_LOG_INFO,
                    op->kind == OP_CLOSE ? "admin_disconnect" : "admin_disconnect_user", f,
                    mcpgw_clock_iso(&srv->clock));
}

/* Answers the HTTP request and frees op (unlinked already, or never linked). */
static void op_finish(admin_op *op)
{
    mcpgw_conn *c = op->conn;
    int partial = op->answered < op->asked, status = 200;
    json_t *answer;

    if (op->kind == OP_LIST) {
        answer = list_answer(op);
    } else if (op->kind == OP_CLOSE) {
        log_close(op, (int)op->count);
        if (op->count) {
            answer = json_pack("{s:I, s:I, s:s?, s:i, s:s}", "id", (json_int_t)op->id, "closed",
                               (json_int_t)1, "user", op->user, "code", MCPGW_WS_CLOSE_POLICY,
                               "reason", MCPGW_ADMIN_CLOSE_REASON);
        } else if (partial) {
            /* it may be on the worker that did not answer (which will not
             * act on the request later: see "until") */
            status = 503;
            answer = json_pack("{s:s, s:I}", "error",
                               "Not found on the workers that answered; a worker did not answer",
                               "id", (json_int_t)op->id);
        } else {
            status = 404;
            answer = json_pack("{s:s, s:I}", "error", "No such connection", "id",
                               (json_int_t)op->id);
        }
        partial = partial && !op->count;    /* found: nobody else can have it */
    } else {
        log_close(op, (int)op->count);
        answer = json_pack("{s:s, s:I, s:i, s:s}", "user", op->user, "closed",
                           (json_int_t)op->count, "code", MCPGW_WS_CLOSE_POLICY, "reason",
                           MCPGW_ADMIN_CLOSE_REASON);
    }
    if (answer && partial)      /* some worker did not answer in time */
        json_object_set_new(answer, "workers_unanswered",
                            json_integer(op->asked - op->answered));
    if (!answer) {
        status = 500;
        answer = json_pack("{s:s}", "error", "Out of memory");
    }
    if (!op->deferred) {
        /* still inside the handler: the caller drains the connection */
        mcpgw_http_api_answer(c, status, answer);
    } else {
        mcpgw_http_api_answer_deferred(c, op->method, op->path, status, answer);
        mcpgw_conn_unref(c);
    }
    op_free(op);
}

static void op_timeout(evutil_socket_t fd, short what, void *arg)
{
    admin_op *op = arg;

    (void)fd;
    (void)what;
    op_unlink(op);
    op_finish(op);
}

static admin_op *op_new(mcpgw_conn *c, op_kind kind, const char *admin)
{
    mcpgw_server *srv = c->srv;
    admin_op *op = calloc(1, sizeof(*op));
    const mcpgw_http_request *req = c->http_req;

    if (!op)
        return NULL;
    op->srv = srv;
    op->conn = c;
    op->kind = kind;
    op->req = ++srv->admin_seq;
    if (admin)
        snprintf(op->admin, sizeof(op->admin), "%s", admin);
    if (req) {
        snprintf(op->method, sizeof(op->method), "%.*s", (int)req->method.len, req->method.p);
        snprintf(op->path, sizeof(op->path), "%.*s", (int)req->path.len, req->path.p);
    }
    return op;
}

/* The local part is done: asks the others, or answers now. */
static void op_start(admin_op *op, int done)
{
    mcpgw_server *srv = op->srv;
    struct timeval tv = { MCPGW_ADMIN_WAIT_MS / 1000, (MCPGW_ADMIN_WAIT_MS % 1000) * 1000 };

    if (!done)
        op->asked = ask_others(srv, op);
    if (op->asked == 0 || !(op->timer = evtimer_new(srv->base, op_timeout, op)) ||
        evtimer_add(op->timer, &tv) != 0) {
        op->answered = op->asked = 0;   /* no timer: answer with what we have */
        op_finish(op);
        return;
    }
    op->deferred = 1;
    op->conn->api_pending = 1;
    mcpgw_conn_ref(op->conn);
    op->next = srv->admin_ops;
    srv->admin_ops = op;
}

void mcpgw_admin_list(mcpgw_conn *c, json_t *base, size_t limit)
{
    admin_op *op = op_new(c, OP_LIST, NULL);

    if (!op || !base) {
        free(op);
        json_decref(base);
        mcpgw_http_api_error(c, 500, "Out of memory");
        return;
    }
    op->base = base;
    op->limit = limit;
    op->list = local_list(c->srv, limit, &op->count);
    op_start(op, 0);
}

void mcpgw_admin_close_conn(mcpgw_conn *c, uint64_t id, const char *admin)
{
    admin_op *op = op_new(c, OP_CLOSE, admin);

    if (!op) {
        mcpgw_http_api_error(c, 500, "Out of memory");
        return;
    }
    op->id = id;
    op->count = (uint64_t)local_close_id(c->srv, id, &op->user);
    op_start(op, op->count > 0);
}

void mcpgw_admin_close_user(mcpgw_conn *c, const char *user, const char *admin)
{
    admin_op *op = op_new(c, OP_CLOSE_USER, admin);

    if (!op || !(op->user = strdup(user))) {
        free(op);
        mcpgw_http_api_error(c, 500, "Out of memory");
        return;
    }
    op->count = local_close_user(c->srv, user);
    op_start(op, 0);
}

/* -------------------------------------------------- from other workers */

static void on_reply(mcpgw_server *srv, json_t *msg)
{
    uint64_t req = (uint64_t)json_integer_value(json_object_get(msg, "req"));
    admin_op *op;

    for (op = srv->admin_ops; op && op->req != req; op = op->next) {
    }
    if (!op)
        return;     /* answered already (timed out) */
    op->answered++;
    if (op->kind == OP_LIST) {
        json_t *list = json_object_get(msg, "list");
        op->count += (uint64_t)json_integer_value(json_object_get(msg, "count"));
        if (json_is_array(list))
            json_array_extend(op->list, list);
    } else {
        json_int_t closed = json_integer_value(json_object_get(msg, "closed"));
        op->count += closed > 0 ? (uint64_t)closed : 0;
        if (op->kind == OP_CLOSE && closed > 0 && !op->user) {
            const char *u = json_string_value(json_object_get(msg, "user"));
            op->user = u ? strdup(u) : NULL;
        }
    }
    if (op->answered >= op->asked || (op->kind == OP_CLOSE && op->count)) {
        op_unlink(op);
        op_finish(op);
    }
}

void mcpgw_admin_bus_message(mcpgw_server *srv, const char *text, size_t len)
{
    mcpgw_json_read_error jerr;
    json_t *msg = mcpgw_json_read(text, len, &jerr), *reply = NULL;
    const char *op = json_string_value(json_object_get(msg, "op"));
    json_int_t from = json_integer_value(json_object_get(msg, "from"));
    json_t *req = json_object_get(msg, "req");

    if (!op || !json_is_integer(req)) {
        json_decref(msg);
        return;
    }
    if (strcmp(op, "reply") == 0) {
        on_reply(srv, msg);
        json_decref(msg);
        return;
    }
    if (now_ms() > json_integer_value(json_object_get(msg, "until"))) {
        /* its worker has answered without us: acting now would contradict it */
        mcpgw_server_log(srv, MCPGW_LOG_INFO, "admin_request_expired", "{s:s, s:I}", "op", op,
                         "from", from);
        json_decref(msg);
        return;
    }
    reply = json_pack("{s:s, s:O, s:i}", "op", "reply", "req", req, "worker", srv->worker_id);
    if (reply && strcmp(op, "list") == 0) {
        json_int_t limit = json_integer_value(json_object_get(msg, "limit"));
        uint64_t count = 0;
        json_t *list = local_list(srv, limit > 0 && limit <= MCPGW_ADMIN_LIST_MAX ? (size_t)limit
                                                                                 : MCPGW_ADMIN_LIST_DEFAULT,
                                  &count);
        json_object_set_new(reply, "list", list ? list : json_array());
        json_object_set_new(reply, "count", json_integer((json_int_t)count));
    } else if (reply && strcmp(op, "close") == 0) {
        char *user = NULL;
        int closed = local_close_id(
            srv, (uint64_t)json_integer_value(json_object_get(msg, "id")), &user);
        json_object_set_new(reply, "closed", json_integer(closed));
        if (user)
            json_object_set_new(reply, "user", json_string(user));
        free(user);
    } else if (reply && strcmp(op, "close_user") == 0) {
        const char *user = json_string_value(json_object_get(msg, "user"));
        json_object_set_new(reply, "closed",
                            json_integer(user ? (json_int_t)local_close_user(srv, user) : 0));
    } else {
        json_decref(reply);     /* not ours to know: nothing to answer */
        reply = NULL;
    }
    if (reply && srv->gw->bus)
        bus_send(srv, (int)from, reply);
    else
        json_decref(reply);
    json_decref(msg);
}

void mcpgw_admin_ops_free(mcpgw_server *srv)
{
    admin_op *op = srv->admin_ops;

    srv->admin_ops = NULL;
    while (op) {
        admin_op *next = op->next;
        mcpgw_conn_unref(op->conn);
        op_free(op);
        op = next;
    }
}
