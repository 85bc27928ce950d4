/*
 * example.c - the libmcpgw-client example of README.md: connect to the
 * gateway, send a ping as a request (the library adds a UUID "id" and
 * matches the reply), print the reply, close.
 *
 *   cc example.c $(pkg-config --cflags --libs mcpgw-client) -o example
 *   ./example ws://127.0.0.1:8080/ws "$TOKEN"
 */
#include <stdio.h>
#include <stdlib.h>
#include <event2/event.h>
#include <mcpgw/client.h>

static void on_reply(mcpgw_client *c, mcpgw_request_status st, json_t *reply, void *arg)
{
    int *status = arg;

    if (st == MCPGW_REQUEST_OK) {
        char *s = json_dumps(reply, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        *status = 0;
    } else {
        fprintf(stderr, "request failed (%d)\n", (int)st);
    }
    mcpgw_client_close(c);                      /* a DISCONNECTED event follows */
}

static void on_event(mcpgw_client *c, const mcpgw_client_event *ev, void *arg)
{
    struct event_base *base = arg;

    (void)c;
    if (ev->type == MCPGW_CLIENT_EV_ERROR)
        fprintf(stderr, "error: %s\n", ev->error);  /* e.g. "401 Unauthorized: Invalid token" */
    else if ((ev->type == MCPGW_CLIENT_EV_DISCONNECTED && !ev->will_reconnect)
             || ev->type == MCPGW_CLIENT_EV_RECONNECT_FAILED)
        event_base_loopexit(base, NULL);
}

int main(int argc, char **argv)
{
    struct event_base *base;
    mcpgw_client_opts opts;
    mcpgw_client *c;
    json_t *ping;
    char err[256];
    int status = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s URL TOKEN\n", argv[0]);
        return 2;
    }
    base = event_base_new();
    mcpgw_client_opts_init(&opts);              /* the reference client's defaults */
    opts.token = argv[2];                       /* sent as ?token=... */
    c = mcpgw_client_new(base, argv[1], &opts, on_event, base, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "%s\n", err);
        event_base_free(base);
        return 2;
    }
    ping = json_pack("{s:s}", "type", "ping");
    mcpgw_client_request(c, ping, 5000, on_reply, &status, NULL);   /* queued until connected */
    json_decref(ping);
    mcpgw_client_connect(c);
    event_base_dispatch(base);
    mcpgw_client_free(c);
    event_base_free(base);
    return status;
}
