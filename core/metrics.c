/*
 * metrics.c - counter helpers and the Prometheus text exposition of a
 * server's metrics (see metrics.h). Rendering runs only when /metrics is
 * scraped; nothing here is on the message path but the increments.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "bus.h"
#include "dispatch.h"
#include "metrics.h"
#include "server.h"
#include "worker_board.h"

const double mcpgw_hist_bounds[MCPGW_HIST_BUCKETS] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0
};

void mcpgw_metrics_reject(mcpgw_metrics *m, const char *reason)
{
    for (int i = 0; i < MCPGW_REJECT_REASONS; i++) {
        if (!m->reject_reason[i])
            m->reject_reason[i] = reason;
        if (m->reject_reason[i] == reason || strcmp(m->reject_reason[i], reason) == 0) {
            m->reject_count[i]++;
            return;
        }
    }
}

void mcpgw_histogram_observe(mcpgw_histogram *h, double seconds)
{
    for (int i = 0; i < MCPGW_HIST_BUCKETS; i++)
        if (seconds <= mcpgw_hist_bounds[i]) {
            h->buckets[i]++;
            break;
        }
    h->count++;
    h->sum += seconds;
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void close_codes(struct evbuffer *out, const char *dir, const uint64_t *t)
{
    for (int i = 0; i <= MCPGW_CLOSE_CODES; i++) {
        if (!t[i])
            continue;
        if (i < MCPGW_CLOSE_CODES)
            evbuffer_add_printf(out, "mcpgw_close_codes_total{direction=\"%s\",code=\"%d\"} %llu\n",
                                dir, 1000 + i, (unsigned long long)t[i]);
        else
            evbuffer_add_printf(out, "mcpgw_close_codes_total{direction=\"%s\",code=\"other\"} %llu\n",
                                dir, (unsigned long long)t[i]);
    }
}

/* Label values are message types: escape what Prometheus requires. */
static void label_value(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(out, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

static void process_metrics(struct evbuffer *out)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    struct rusage ru;
    DIR *d;
    long fds = 0;

    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    family(out, "mcpgw_process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    evbuffer_add_printf(out, "mcpgw_process_resident_memory_bytes %ld\n",
                        rss * sysconf(_SC_PAGESIZE));
    d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            fds++;
        closedir(d);
        fds -= 3;   /* ".", ".." and the directory's own descriptor */
    }
    family(out, "mcpgw_process_open_fds", "gauge", "Open file descriptors.");
    evbuffer_add_printf(out, "mcpgw_process_open_fds %ld\n", fds);
    getrusage(RUSAGE_SELF, &ru);
    family(out, "mcpgw_process_cpu_seconds_total", "counter", "User and system CPU time spent.");
    evbuffer_add_printf(out, "mcpgw_process_cpu_seconds_total %.3f\n",
                        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
}

void mcpgw_metrics_render(mcpgw_server *srv, struct evbuffer *out)
{
    const mcpgw_metrics *m = &srv->metrics;
    static const char *const dirs[2] = { "in", "out" };
    static const char *const kinds[MCPGW_ERR_KINDS] = { "server", "network", "protocol", "auth" };

    family(out, "mcpgw_connections_open", "gauge", "Open WebSocket connections.");
    evbuffer_add_printf(out, "mcpgw_connections_open %zu\n", srv->n_open);
    family(out, "mcpgw_tcp_connections_open", "gauge", "Open TCP connections, upgraded or not.");
    evbuffer_add_printf(out, "mcpgw_tcp_connections_open %zu\n", srv->n_conns);
    if (srv->gw->board) {
        static const char *const reasons[MCPGW_RESTART_REASONS] = { "crash", "exit", "watchdog" };
        const mcpgw_worker_board *b = srv->gw->board;
        family(out, "mcpgw_workers", "gauge", "Worker processes configured.");
        evbuffer_add_printf(out, "mcpgw_workers %d\n", b->n_workers);
        family(out, "mcpgw_worker_restarts_total", "counter",
               "Worker processes replaced, by why the old one ended.");
        for (int i = 0; i < MCPGW_RESTART_REASONS; i++)
            evbuffer_add_printf(out, "mcpgw_worker_restarts_total{reason=\"%s\"} %llu\n",
                                reasons[i], (unsigned long long)b->restarts[i]);
    }
    if (srv->gw->bus) {
        unsigned long long dropped = 0;
        for (int i = 0; srv->gw->board && i < srv->gw->board->n_workers; i++)
            dropped += mcpgw_bus_dropped(srv->gw->bus, i);
        family(out, "mcpgw_bus_dropped_total", "counter",
               "Broadcasts a worker missed because its bus ring was full.");
        evbuffer_add_printf(out, "mcpgw_bus_dropped_total %llu\n", dropped);
    }
    family(out, "mcpgw_users_connected", "gauge", "Users with at least one connection.");
    evbuffer_add_printf(out, "mcpgw_users_connected %zu\n", mcpgw_limits_users(srv->gw->limits));

    family(out, "mcpgw_upgrades_accepted_total", "counter", "WebSocket upgrades accepted.");
    evbuffer_add_printf(out, "mcpgw_upgrades_accepted_total %llu\n",
                        (unsigned long long)m->upgrades_accepted);
    family(out, "mcpgw_upgrades_rejected_total", "counter",
           "Requests refused before the upgrade, by reason.");
    for (int i = 0; i < MCPGW_REJECT_REASONS && m->reject_reason[i]; i++)
        evbuffer_add_printf(out, "mcpgw_upgrades_rejected_total{reason=\"%s\"} %llu\n",
                            m->reject_reason[i], (unsigned long long)m->reject_count[i]);

    family(out, "mcpgw_messages_total", "counter", "WebSocket data messages, by direction.");
    for (int d = 0; d < 2; d++)
        evbuffer_add_printf(out, "mcpgw_messages_total{direction=\"%s\"} %llu\n", dirs[d],
                            (unsigned long long)m->messages[d]);
    family(out, "mcpgw_message_bytes_total", "counter",
           "Message bytes by direction: payload (before compression) and wire (frames as sent or received).");
    for (int d = 0; d < 2; d++) {
        evbuffer_add_printf(out, "mcpgw_message_bytes_total{direction=\"%s\",stage=\"payload\"} %llu\n",
                            dirs[d], (unsigned long long)m->payload_bytes[d]);
        evbuffer_add_printf(out, "mcpgw_message_bytes_total{direction=\"%s\",stage=\"wire\"} %llu\n",
                            dirs[d], (unsigned long long)m->wire_bytes[d]);
    }
    family(out, "mcpgw_errors_total", "counter", "Errors by kind.");
    for (int k = 0; k < MCPGW_ERR_KINDS; k++)
        evbuffer_add_printf(out, "mcpgw_errors_total{kind=\"%s\"} %llu\n", kinds[k],
                            (unsigned long long)m->errors[k]);
    family(out, "mcpgw_close_codes_total", "counter", "Close codes sent and received.");
    close_codes(out, "sent", m->close_sent);
    close_codes(out, "received", m->close_received);

    family(out, "mcpgw_handler_duration_seconds", "histogram",
           "Time handlers took to produce their result, by message type.");
    for (size_t b = 0; b < srv->handlers.n_buckets; b++) {
        for (const mcpgw_handler_entry *e = srv->handlers.buckets[b]; e; e = e->next) {
            uint64_t cum = 0;
            for (int i = 0; i < MCPGW_HIST_BUCKETS; i++) {
                cum += e->hist.buckets[i];
                evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_bucket{type=\"");
                label_value(out, e->type);
                evbuffer_add_printf(out, "\",le=\"%g\"} %llu\n", mcpgw_hist_bounds[i],
                                    (unsigned long long)cum);
            }
            evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_bucket{type=\"");
            label_value(out, e->type);
            evbuffer_add_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)e->hist.count);
            evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_sum{type=\"");
            label_value(out, e->type);
            evbuffer_add_printf(out, "\"} %.9f\n", e->hist.sum);
            evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_count{type=\"");
            label_value(out, e->type);
            evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)e->hist.count);
        }
    }

    family(out, "mcpgw_broadcasts_total", "counter", "Broadcasts sent.");
    evbuffer_add_printf(out, "mcpgw_broadcasts_total %llu\n", (unsigned long long)m->broadcasts);
    family(out, "mcpgw_broadcast_recipients_total", "counter", "Messages delivered by broadcasts.");
    evbuffer_add_printf(out, "mcpgw_broadcast_recipients_total %llu\n",
                        (unsigned long long)m->broadcast_recipients);
    family(out, "mcpgw_slow_consumer_closes_total", "counter",
           "Connections closed for falling behind max_outbound_bytes.");
    evbuffer_add_printf(out, "mcpgw_slow_consumer_closes_total %llu\n",
                        (unsigned long long)m->slow_consumer_closes);
    family(out, "mcpgw_heartbeat_timeouts_total", "counter",
           "Connections terminated for not answering a heartbeat ping.");
    evbuffer_add_printf(out, "mcpgw_heartbeat_timeouts_total %llu\n",
                        (unsigned long long)m->heartbeat_timeouts);
    family(out, "mcpgw_plugin_load_failures_total", "counter", "Plugins that failed to load.");
    evbuffer_add_printf(out, "mcpgw_plugin_load_failures_total %llu\n",
                        (unsigned long long)m->plugin_load_failures);
    family(out, "mcpgw_http_requests_total", "counter", "Plain HTTP requests served.");
    evbuffer_add_printf(out, "mcpgw_http_requests_total %llu\n",
                        (unsigned long long)m->http_requests);
    family(out, "mcpgw_config_reloads_total", "counter", "Configuration reloads, by result.");
    evbuffer_add_printf(out, "mcpgw_config_reloads_total{result=\"ok\"} %llu\n"
                             "mcpgw_config_reloads_total{result=\"failed\"} %llu\n",
                        (unsigned long long)m->reloads, (unsigned long long)m->reload_failures);
    process_metrics(out);
}
