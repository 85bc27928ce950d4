/*
 * misbehave.c - a test plugin whose handler goes wrong on request, for the
 * supervision tests: {"type":TYPE,"do":"spin","ms":N} busy-loops for N ms
 * (or forever without ms) without returning to the loop; {"do":"crash"}
 * raises SIGSEGV; {"do":"whoami"} is answered {"type":"misbehave_ok",
 * "worker":N,"workers":M} (host->worker); anything else {"type":"misbehave_ok"}.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mcpgw/plugin.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const mcpgw_host *host;
static mcpgw_plugin_ctx *host_ctx;

static int misbehave_handler(mcpgw_request *req, json_t *msg, json_t **out, void *data)
{
    const char *what = json_string_value(json_object_get(msg, "do"));
    json_t *ms = json_object_get(msg, "ms");

    (void)req;
    (void)data;
    if (what && strcmp(what, "spin") == 0) {
        double until = json_is_integer(ms) ? now_ms() + (double)json_integer_value(ms) : -1;
        volatile unsigned long spins = 0;
        while (until < 0 || now_ms() < until)
            spins++;
    } else if (what && strcmp(what, "crash") == 0) {
        raise(SIGSEGV);
    } else if (what && strcmp(what, "whoami") == 0 && MCPGW_HOST_HAS(host, worker)) {
        int n = 0, w = host->worker(host_ctx, &n);
        *out = json_pack("{s:s, s:i, s:i}", "type", "misbehave_ok", "worker", w, "workers", n);
        return MCPGW_HANDLER_DONE;
    }
    *out = json_pack("{s:s}", "type", "misbehave_ok");
    return MCPGW_HANDLER_DONE;
}

static int misbehave_init(const mcpgw_host *h, mcpgw_plugin_ctx *ctx, void **instance,
                          char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    *instance = NULL;
    host = h;
    host_ctx = ctx;
    return h->register_handler(ctx, h->handler_type(ctx), misbehave_handler, NULL);
}

static void misbehave_fini(void *instance)
{
    (void)instance;
}

MCPGW_PLUGIN_DEFINE("misbehave", "0.0.1", "test: a handler that spins or crashes on request",
                    misbehave_init, misbehave_fini);
