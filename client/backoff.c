/*
 * backoff.c - the client's option defaults and the reconnect schedule, a
 * pure function of the options, the attempt number and a random number the
 * caller supplies (so tests can check it with a seeded source).
 */
#include <math.h>
#include <string.h>

#include <mcpgw/client.h>

void mcpgw_client_opts_init(mcpgw_client_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->reconnect = 1;
    o->reconnect_base_ms = 1000;
    o->reconnect_factor = 1.5;
    o->reconnect_max_ms = 30000;
    o->reconnect_jitter = 0.3;
    o->reconnect_max_attempts = 10;
    o->queue_max_messages = 1000;
    o->queue_max_bytes = 16u << 20;
    o->queue_policy = MCPGW_QUEUE_REFUSE_NEW;
    o->connect_timeout_ms = 10000;
    o->close_timeout_ms = 2000;
    o->max_message_bytes = 16u << 20;
    o->compression = 1;
}

unsigned mcpgw_client_backoff_ms(const mcpgw_client_opts *o, int attempt, double random01)
{
    double backoff, delay;

    if (attempt < 1)
        attempt = 1;
    if (random01 < 0 || !(random01 == random01))
        random01 = 0;
    if (random01 >= 1)
        random01 = 0.999999999;
    /* min(cap, base * factor^(attempt-1)); pow() overflowing to inf is fine */
    backoff = (double)o->reconnect_base_ms * pow(o->reconnect_factor, (double)(attempt - 1));
    if (!(backoff <= (double)o->reconnect_max_ms))
        backoff = (double)o->reconnect_max_ms;
    delay = backoff + random01 * o->reconnect_jitter * backoff;
    if (delay > 4294967295.0)
        delay = 4294967295.0;
    return (unsigned)delay;
}
