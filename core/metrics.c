/*
 * metrics.c - counter helpers and the Prometheus text exposition of a
 * server's metrics (see metrics.h). Rendering runs only when /metrics is
 * scraped; nothing here is on the message path but the increments.
 */
#include <dirent.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "bus.h"
#include "dispatch.h"
#include <event2/event.h>
#include <openssl/crypto.h>

#include "metrics.h"
#include "mcpgw/plugin.h"
#include "config.h"
#include "server.h"
#include "worker_board.h"

const double mcpgw_hist_bounds[MCPGW_HIST_BUCKETS] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0
};

mcpgw_histogram *mcpgw_stats_histogram(mcpgw_worker_stats *s, const char *type)
{
    unsigned i;

    if (!s || strlen(type) >= sizeof(s->hist[0].type))
        return NULL;
    for (i = 0; i < s->n_hist; i++)
        if (strcmp(s->hist[i].type, type) == 0)
            return &s->hist[i].h;
    if (s->n_hist >= MCPGW_HIST_TYPES)
        return NULL;
    strcpy(s->hist[i].type, type);      /* length checked above */
    __atomic_store_n(&s->n_hist, i + 1, __ATOMIC_RELEASE);
    return &s->hist[i].h;
}

const char *const mcpgw_endpoint_methods[MCPGW_EP_METHODS] = {
    "initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
    "resources/templates/list", "resources/subscribe", "resources/unsubscribe", "prompts/list",
    "prompts/get", "completion/complete", "logging/setLevel", "other"
};
const char *const mcpgw_endpoint_http_methods[MCPGW_EP_HTTP_METHODS] = {
    "POST", "GET", "DELETE", "other"
};
const int mcpgw_endpoint_http_codes[MCPGW_EP_HTTP_CODES - 1] = {
    200, 202, 204, 400, 401, 403, 404, 405, 406, 409, 411, 413, 415, 429, 500, 503
};
const char *const mcpgw_endpoint_restart_reasons[MCPGW_EP_RESTART_REASONS] = {
    "crash", "exit", "timeout", "line_too_long"
};

void mcpgw_stats_clear_gauges(mcpgw_worker_stats *s)
{
    s->tcp_open = s->ws_open = 0;
    s->cluster_up = s->cluster_queued = s->cluster_lag_ms = 0;
    for (unsigned i = 0; i < MCPGW_ENDPOINTS_MAX; i++) {
        s->endpoints[i].sessions_open = 0;
        s->endpoints[i].children = 0;
        s->endpoints[i].http_sessions_open = 0;
        s->endpoints[i].sse_streams_open = 0;
    }
}

mcpgw_endpoint_stats *mcpgw_stats_endpoint(mcpgw_worker_stats *s, const char *name)
{
    unsigned i, n = s->n_endpoints;

    if (strlen(name) >= sizeof(s->endpoints[0].name))
        return NULL;
    for (i = 0; i < n; i++)
        if (strcmp(s->endpoints[i].name, name) == 0)
            return &s->endpoints[i];
    if (n >= MCPGW_ENDPOINTS_MAX)
        return NULL;
    strcpy(s->endpoints[n].name, name);     /* length checked above */
    __atomic_store_n(&s->n_endpoints, n + 1, __ATOMIC_RELEASE);
    return &s->endpoints[n];
}

static int method_index(const char *method)
{
    for (int i = 0; method && i < MCPGW_EP_METHODS - 1; i++)
        if (strcmp(mcpgw_endpoint_methods[i], method) == 0)
            return i;
    return MCPGW_EP_METHODS - 1;
}

void mcpgw_endpoint_metric(mcpgw_server *srv, const struct mcpgw_handler_config *section,
                           int which, const char *label, double value)
{
    mcpgw_endpoint_stats *e = mcpgw_stats_endpoint(srv->stats, section->type);
    int i;

    if (!e)
        return;
    switch (which) {
    case MCPGW_METRIC_CHILDREN:
        e->children += (int64_t)value;
        break;
    case MCPGW_METRIC_CHILD_RESTART:
        for (i = 0; i < MCPGW_EP_RESTART_REASONS - 1; i++)
            if (label && strcmp(label, mcpgw_endpoint_restart_reasons[i]) == 0)
                break;
        e->restarts[i]++;
        break;
    case MCPGW_METRIC_REQUEST:
        e->requests[method_index(label)]++;
        mcpgw_histogram_observe(&e->duration, value);
        break;
    case MCPGW_METRIC_REQUEST_ERROR:
        e->errors[method_index(label)]++;
        break;
    default:
        break;
    }
}

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

/* Resident bytes, open descriptors and CPU seconds of one process. */
static void process_sample(pid_t pid, long *rss, long *fds, double *cpu)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    long pages = 0, res = 0;
    size_t n;
    FILE *f;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    if ((f = fopen(path, "r"))) {
        if (fscanf(f, "%ld %ld", &pages, &res) == 2)
            *rss += res * sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if ((d = opendir(path))) {
        long k = 0;
        while (readdir(d))
            k++;
        closedir(d);
        *fds += k - 2 - (pid == getpid());  /* ".", "..", and our own handle */
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r"))) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                        &st) == 2)
            *cpu += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    }
}

/* The whole gateway: the supervisor and every worker, or this process. */
static void process_metrics(const mcpgw_server *srv, struct evbuffer *out)
{
    const mcpgw_worker_board *b = srv->gw->board;
    long rss = 0, fds = 0;
    double cpu = 0;

    if (b) {
        process_sample(getppid(), &rss, &fds, &cpu);
        for (int i = 0; i < b->n_workers; i++)
            if (b->slot[i].pid)
                process_sample(b->slot[i].pid, &rss, &fds, &cpu);
    } else {
        process_sample(getpid(), &rss, &fds, &cpu);
    }
    /* Prometheus's standard process_* names, for the gateway as a whole
     * (supervisor and workers; the workers that ended count in the CPU) */
    family(out, "process_resident_memory_bytes", "gauge",
           "Resident memory size in bytes (all the gateway's processes).");
    evbuffer_add_printf(out, "process_resident_memory_bytes %ld\n", rss);
    family(out, "process_open_fds", "gauge", "Open file descriptors (all processes).");
    evbuffer_add_printf(out, "process_open_fds %ld\n", fds);
    family(out, "process_cpu_seconds_total", "counter",
           "User and system CPU time spent in seconds (every process, ended workers included).");
    evbuffer_add_printf(out, "process_cpu_seconds_total %.3f\n", cpu + (b ? b->ended_cpu_s : 0));
    family(out, "process_start_time_seconds", "gauge",
           "Start time of the gateway since the Unix epoch in seconds.");
    evbuffer_add_printf(out, "process_start_time_seconds %lld\n",
                        (long long)(b && b->started ? b->started : (int64_t)srv->gw->started));
    family(out, "mcpgw_build_info", "gauge", "The gateway's version and what it was built with.");
    evbuffer_add_printf(out,
                        "mcpgw_build_info{version=\"%s\",plugin_abi=\"%d.%d\",openssl=\"%s\","
                        "libevent=\"%s\",jansson=\"%s\"} 1\n",
                        PACKAGE_VERSION, MCPGW_PLUGIN_ABI_MAJOR, MCPGW_PLUGIN_ABI_MINOR,
                        OpenSSL_version(OPENSSL_VERSION_STRING), event_get_version(),
                        JANSSON_VERSION);
}

/* Adds one worker's counters to sum (reject reasons merged by name; reloads
 * are per worker, so the sum keeps the largest). */
static void add_metrics(mcpgw_metrics *sum, const mcpgw_metrics *m)
{
    sum->upgrades_accepted += m->upgrades_accepted;
    for (int i = 0; i < MCPGW_REJECT_REASONS && m->reject_reason[i]; i++) {
        int k = 0;
        while (k < MCPGW_REJECT_REASONS && sum->reject_reason[k] &&
               strcmp(sum->reject_reason[k], m->reject_reason[i]) != 0)
            k++;
        if (k == MCPGW_REJECT_REASONS)
            continue;
        sum->reject_reason[k] = m->reject_reason[i];
        sum->reject_count[k] += m->reject_count[i];
    }
    for (int d = 0; d < 2; d++) {
        sum->messages[d] += m->messages[d];
        sum->payload_bytes[d] += m->payload_bytes[d];
        sum->wire_bytes[d] += m->wire_bytes[d];
    }
    for (int k = 0; k < MCPGW_ERR_KINDS; k++)
        sum->errors[k] += m->errors[k];
    for (int c = 0; c <= MCPGW_CLOSE_CODES; c++) {
        sum->close_sent[c] += m->close_sent[c];
        sum->close_received[c] += m->close_received[c];
    }
    sum->broadcasts += m->broadcasts;
    sum->broadcast_recipients += m->broadcast_recipients;
    sum->slow_consumer_closes += m->slow_consumer_closes;
    sum->heartbeat_timeouts += m->heartbeat_timeouts;
    sum->plugin_load_failures += m->plugin_load_failures;
    sum->http_requests += m->http_requests;
    sum->handovers_in += m->handovers_in;
    sum->handovers_failed += m->handovers_failed;
    sum->cluster_published += m->cluster_published;
    sum->cluster_publish_errors += m->cluster_publish_errors;
    sum->cluster_publish_dropped += m->cluster_publish_dropped;
    sum->cluster_received += m->cluster_received;
    sum->cluster_duplicates += m->cluster_duplicates;
    sum->cluster_batches += m->cluster_batches;
    sum->cluster_disconnects += m->cluster_disconnects;
    sum->cluster_lease_refresh_failures += m->cluster_lease_refresh_failures;
    sum->cluster_upgrades_redis_down += m->cluster_upgrades_redis_down;
    if (m->reloads > sum->reloads)
        sum->reloads = m->reloads;
    if (m->reload_failures > sum->reload_failures)
        sum->reload_failures = m->reload_failures;
}

/* Adds one worker's handler histograms to the merged list (by type). */
static unsigned add_histograms(mcpgw_type_histogram *all, unsigned n, const mcpgw_worker_stats *s)
{
    unsigned count = __atomic_load_n(&s->n_hist, __ATOMIC_ACQUIRE);

    for (unsigned i = 0; i < count; i++) {
        unsigned k = 0;
        while (k < n && strcmp(all[k].type, s->hist[i].type) != 0)
            k++;
        if (k == n) {
            if (n == MCPGW_HIST_TYPES)
                continue;
            memset(&all[n], 0, sizeof(all[n]));
            memcpy(all[n].type, s->hist[i].type, sizeof(all[n].type));
            n++;
        }
        for (int b = 0; b < MCPGW_HIST_BUCKETS; b++)
            all[k].h.buckets[b] += s->hist[i].h.buckets[b];
        all[k].h.count += s->hist[i].h.count;
        all[k].h.sum += s->hist[i].h.sum;
    }
    return n;
}

/* What every worker counted (one worker: its own). */
void mcpgw_metrics_gather(const mcpgw_server *srv, mcpgw_metrics *sum, uint64_t *tcp_open,
                          uint64_t *ws_open, mcpgw_type_histogram *hist, unsigned *n_hist)
{
    const mcpgw_worker_board *b = srv->gw->board;
    unsigned n = 0;

    memset(sum, 0, sizeof(*sum));
    *tcp_open = *ws_open = 0;
    for (int i = 0; i < (b ? b->n_workers : 1); i++) {
        const mcpgw_worker_stats *s = b ? &b->slot[i].stats : srv->stats;
        add_metrics(sum, &s->m);
        *tcp_open += s->tcp_open;
        *ws_open += s->ws_open;
        if (hist)
            n = add_histograms(hist, n, s);
    }
    if (n_hist)
        *n_hist = n;
}

/* [cluster]: the gauges per worker (Redis up counts the workers whose two
 * connections answer), the counters summed. */
static void cluster_metrics(const mcpgw_server *srv, const mcpgw_metrics *m, struct evbuffer *out)
{
    const mcpgw_worker_board *b = srv->gw->board;
    uint64_t up = 0, queued = 0, lag = 0;
    int n = b ? b->n_workers : 1;

    for (int i = 0; i < n; i++) {
        const mcpgw_worker_stats *s = b ? &b->slot[i].stats : srv->stats;
        if (b && !b->slot[i].pid)
            continue;
        up += s->cluster_up;
        queued += s->cluster_queued;
        if (s->cluster_lag_ms > lag)
            lag = s->cluster_lag_ms;
    }
    family(out, "mcpgw_cluster_redis_up", "gauge",
           "1 when every worker's Redis connections answer (0 while any does not).");
    evbuffer_add_printf(out, "mcpgw_cluster_redis_up %d\n", up == (uint64_t)n);
    family(out, "mcpgw_cluster_workers_connected", "gauge", "Workers whose Redis connections answer.");
    evbuffer_add_printf(out, "mcpgw_cluster_workers_connected %llu\n", (unsigned long long)up);
    family(out, "mcpgw_cluster_published_total", "counter", "Broadcasts this node handed to Redis.");
    evbuffer_add_printf(out, "mcpgw_cluster_published_total %llu\n",
                        (unsigned long long)m->cluster_published);
    family(out, "mcpgw_cluster_publish_failures_total", "counter",
           "Broadcasts other nodes will not see: refused by Redis, or dropped from the full queue.");
    evbuffer_add_printf(out, "mcpgw_cluster_publish_failures_total{reason=\"refused\"} %llu\n"
                             "mcpgw_cluster_publish_failures_total{reason=\"queue_full\"} %llu\n",
                        (unsigned long long)m->cluster_publish_errors,
                        (unsigned long long)m->cluster_publish_dropped);
    family(out, "mcpgw_cluster_publish_queued", "gauge", "Broadcasts waiting for Redis.");
    evbuffer_add_printf(out, "mcpgw_cluster_publish_queued %llu\n", (unsigned long long)queued);
    family(out, "mcpgw_cluster_delivered_total", "counter",
           "Broadcasts from other nodes delivered here (once per worker).");
    evbuffer_add_printf(out, "mcpgw_cluster_delivered_total %llu\n",
                        (unsigned long long)m->cluster_received);
    family(out, "mcpgw_cluster_delivered_batches_total", "counter",
           "Stream reads that delivered other nodes' broadcasts here (written out together).");
    evbuffer_add_printf(out, "mcpgw_cluster_delivered_batches_total %llu\n",
                        (unsigned long long)m->cluster_batches);
    family(out, "mcpgw_cluster_duplicates_total", "counter",
           "Stream entries dropped as already delivered (sent again after a reconnection).");
    evbuffer_add_printf(out, "mcpgw_cluster_duplicates_total %llu\n",
                        (unsigned long long)m->cluster_duplicates);
    family(out, "mcpgw_cluster_catchup_lag_seconds", "gauge",
           "Age of the last stream entry read, when read (largest over the workers).");
    evbuffer_add_printf(out, "mcpgw_cluster_catchup_lag_seconds %.3f\n", (double)lag / 1000.0);
    family(out, "mcpgw_cluster_redis_disconnects_total", "counter", "Redis connections lost.");
    evbuffer_add_printf(out, "mcpgw_cluster_redis_disconnects_total %llu\n",
                        (unsigned long long)m->cluster_disconnects);
    family(out, "mcpgw_cluster_lease_refresh_failures_total", "counter",
           "Lease refreshes that failed or could not be sent.");
    evbuffer_add_printf(out, "mcpgw_cluster_lease_refresh_failures_total %llu\n",
                        (unsigned long long)m->cluster_lease_refresh_failures);
    family(out, "mcpgw_cluster_upgrades_redis_down_total", "counter",
           "Upgrades decided without Redis (on_redis_down).");
    evbuffer_add_printf(out, "mcpgw_cluster_upgrades_redis_down_total %llu\n",
                        (unsigned long long)m->cluster_upgrades_redis_down);
}

/* A family with one uint64_t counter or gauge per endpoint: the field at
 * offset in mcpgw_endpoint_stats. */
static void ep_scalar(struct evbuffer *out, const mcpgw_endpoint_stats *all, unsigned n,
                      const char *name, const char *type, const char *help, size_t offset)
{
    family(out, name, type, help);
    for (unsigned k = 0; k < n; k++) {
        uint64_t v;

        memcpy(&v, (const char *)&all[k] + offset, sizeof(v));
        evbuffer_add_printf(out, "%s{endpoint=\"", name);
        label_value(out, all[k].name);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)v);
    }
}

/* Every worker's endpoint stats, merged by endpoint name. */
static void endpoint_metrics(const mcpgw_server *srv, struct evbuffer *out)
{
    static mcpgw_endpoint_stats all[MCPGW_ENDPOINTS_MAX];   /* a loop thread's scratch */
    const mcpgw_worker_board *b = srv->gw->board;
    unsigned n = 0;

    for (int w = 0; w < (b ? b->n_workers : 1); w++) {
        const mcpgw_worker_stats *s = b ? &b->slot[w].stats : srv->stats;
        unsigned count = __atomic_load_n(&s->n_endpoints, __ATOMIC_ACQUIRE);
        for (unsigned i = 0; i < count; i++) {
            const mcpgw_endpoint_stats *e = &s->endpoints[i];
            unsigned k = 0;
            while (k < n && strcmp(all[k].name, e->name) != 0)
                k++;
            if (k == n) {
                /* config allows MCPGW_ENDPOINTS_MAX endpoints, but workers
                 * that lived through reloads may know other names */
                if (n == MCPGW_ENDPOINTS_MAX)
                    continue;
                memset(&all[n], 0, sizeof(all[n]));
                memcpy(all[n].name, e->name, sizeof(all[n].name));
                n++;
            }
            all[k].sessions_open += e->sessions_open;
            all[k].sessions += e->sessions;
            all[k].children += e->children;
            for (int r = 0; r < MCPGW_EP_RESTART_REASONS; r++)
                all[k].restarts[r] += e->restarts[r];
            for (int m = 0; m < MCPGW_EP_METHODS; m++) {
                all[k].requests[m] += e->requests[m];
                all[k].errors[m] += e->errors[m];
            }
            for (int h = 0; h < MCPGW_HIST_BUCKETS; h++)
                all[k].duration.buckets[h] += e->duration.buckets[h];
            all[k].duration.count += e->duration.count;
            all[k].http_sessions_open += e->http_sessions_open;
            all[k].sse_streams_open += e->sse_streams_open;
            all[k].sse_resumed += e->sse_resumed;
            all[k].sse_replay_gaps += e->sse_replay_gaps;
            for (int m = 0; m < MCPGW_EP_HTTP_METHODS; m++)
                all[k].http_requests[m] += e->http_requests[m];
            for (int m = 0; m < MCPGW_EP_HTTP_CODES; m++)
                all[k].http_responses[m] += e->http_responses[m];
            all[k].duration.sum += e->duration.sum;
        }
    }
    if (!n)
        return;
#define EP_LABEL(k) do { evbuffer_add_printf(out, "{endpoint=\""); label_value(out, all[k].name); \
                         evbuffer_add_printf(out, "\""); } while (0)
    ep_scalar(out, all, n, "mcpgw_endpoint_sessions_open", "gauge", "Open sessions per endpoint.",
              offsetof(mcpgw_endpoint_stats, sessions_open));
    ep_scalar(out, all, n, "mcpgw_endpoint_sessions_total", "counter",
              "Sessions opened per endpoint.", offsetof(mcpgw_endpoint_stats, sessions));
    family(out, "mcpgw_endpoint_children", "gauge", "Child processes running per endpoint.");
    for (unsigned k = 0; k < n; k++) {
        evbuffer_add_printf(out, "mcpgw_endpoint_children");
        EP_LABEL(k);
        evbuffer_add_printf(out, "} %lld\n", (long long)all[k].children);
    }
    family(out, "mcpgw_endpoint_child_restarts_total", "counter",
           "Child processes that ended unasked, by reason.");
    for (unsigned k = 0; k < n; k++)
        for (int r = 0; r < MCPGW_EP_RESTART_REASONS; r++) {
            evbuffer_add_printf(out, "mcpgw_endpoint_child_restarts_total");
            EP_LABEL(k);
            evbuffer_add_printf(out, ",reason=\"%s\"} %llu\n", mcpgw_endpoint_restart_reasons[r],
                                (unsigned long long)all[k].restarts[r]);
        }
    family(out, "mcpgw_endpoint_requests_total", "counter", "JSON-RPC requests answered, by method.");
    for (unsigned k = 0; k < n; k++)
        for (int m = 0; m < MCPGW_EP_METHODS; m++) {
            if (!all[k].requests[m])
                continue;
            evbuffer_add_printf(out, "mcpgw_endpoint_requests_total");
            EP_LABEL(k);
            evbuffer_add_printf(out, ",method=\"%s\"} %llu\n", mcpgw_endpoint_methods[m],
                                (unsigned long long)all[k].requests[m]);
        }
    family(out, "mcpgw_endpoint_errors_total", "counter",
           "JSON-RPC requests answered with an error, by method.");
    for (unsigned k = 0; k < n; k++)
        for (int m = 0; m < MCPGW_EP_METHODS; m++) {
            if (!all[k].errors[m])
                continue;
            evbuffer_add_printf(out, "mcpgw_endpoint_errors_total");
            EP_LABEL(k);
            evbuffer_add_printf(out, ",method=\"%s\"} %llu\n", mcpgw_endpoint_methods[m],
                                (unsigned long long)all[k].errors[m]);
        }
    family(out, "mcpgw_endpoint_request_duration_seconds", "histogram",
           "Time from a JSON-RPC request to its answer.");
    for (unsigned k = 0; k < n; k++) {
        uint64_t cum = 0;
        for (int i = 0; i < MCPGW_HIST_BUCKETS; i++) {
            cum += all[k].duration.buckets[i];
            evbuffer_add_printf(out, "mcpgw_endpoint_request_duration_seconds_bucket");
            EP_LABEL(k);
            evbuffer_add_printf(out, ",le=\"%g\"} %llu\n", mcpgw_hist_bounds[i],
                                (unsigned long long)cum);
        }
        evbuffer_add_printf(out, "mcpgw_endpoint_request_duration_seconds_bucket");
        EP_LABEL(k);
        evbuffer_add_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)all[k].duration.count);
        evbuffer_add_printf(out, "mcpgw_endpoint_request_duration_seconds_sum");
        EP_LABEL(k);
        evbuffer_add_printf(out, "} %.9f\n", all[k].duration.sum);
        evbuffer_add_printf(out, "mcpgw_endpoint_request_duration_seconds_count");
        EP_LABEL(k);
        evbuffer_add_printf(out, "} %llu\n", (unsigned long long)all[k].duration.count);
    }
    ep_scalar(out, all, n, "mcpgw_endpoint_http_sessions_open", "gauge",
              "Open Streamable HTTP sessions per endpoint (also in sessions_open).",
              offsetof(mcpgw_endpoint_stats, http_sessions_open));
    ep_scalar(out, all, n, "mcpgw_endpoint_sse_streams_open", "gauge",
              "Streamable HTTP SSE answers being written per endpoint.",
              offsetof(mcpgw_endpoint_stats, sse_streams_open));
    family(out, "mcpgw_endpoint_http_requests_total", "counter",
           "Streamable HTTP requests, by method.");
    for (unsigned k = 0; k < n; k++)
        for (int m = 0; m < MCPGW_EP_HTTP_METHODS; m++) {
            evbuffer_add_printf(out, "mcpgw_endpoint_http_requests_total");
            EP_LABEL(k);
            evbuffer_add_printf(out, ",method=\"%s\"} %llu\n", mcpgw_endpoint_http_methods[m],
                                (unsigned long long)all[k].http_requests[m]);
        }
    family(out, "mcpgw_endpoint_http_responses_total", "counter",
           "Streamable HTTP answers, by status code.");
    for (unsigned k = 0; k < n; k++)
        for (int m = 0; m < MCPGW_EP_HTTP_CODES; m++) {
            if (!all[k].http_responses[m])
                continue;
            evbuffer_add_printf(out, "mcpgw_endpoint_http_responses_total");
            EP_LABEL(k);
            if (m < MCPGW_EP_HTTP_CODES - 1)
                evbuffer_add_printf(out, ",code=\"%d\"} %llu\n", mcpgw_endpoint_http_codes[m],
                                    (unsigned long long)all[k].http_responses[m]);
            else
                evbuffer_add_printf(out, ",code=\"other\"} %llu\n",
                                    (unsigned long long)all[k].http_responses[m]);
        }
    ep_scalar(out, all, n, "mcpgw_endpoint_sse_resumed_total", "counter",
              "SSE streams resumed with Last-Event-ID.",
              offsetof(mcpgw_endpoint_stats, sse_resumed));
    ep_scalar(out, all, n, "mcpgw_endpoint_sse_replay_gaps_total", "counter",
              "Resumptions that found some of the missed events no longer kept (replay_bytes).",
              offsetof(mcpgw_endpoint_stats, sse_replay_gaps));
#undef EP_LABEL
}

void mcpgw_metrics_render(mcpgw_server *srv, struct evbuffer *out)
{
    static const char *const dirs[2] = { "in", "out" };
    static const char *const kinds[MCPGW_ERR_KINDS] = { "server", "network", "protocol", "auth" };
    static mcpgw_type_histogram hist[MCPGW_HIST_TYPES];     /* a loop thread's scratch */
    mcpgw_metrics sum;
    const mcpgw_metrics *m = &sum;
    uint64_t tcp_open, ws_open;
    unsigned n_hist;

    mcpgw_metrics_gather(srv, &sum, &tcp_open, &ws_open, hist, &n_hist);
    family(out, "mcpgw_connections_open", "gauge", "Open WebSocket connections.");
    evbuffer_add_printf(out, "mcpgw_connections_open %llu\n", (unsigned long long)ws_open);
    family(out, "mcpgw_tcp_connections_open", "gauge", "Open TCP connections, upgraded or not.");
    evbuffer_add_printf(out, "mcpgw_tcp_connections_open %llu\n", (unsigned long long)tcp_open);
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
    for (unsigned k = 0; k < n_hist; k++) {
        const mcpgw_type_histogram *e = &hist[k];
        uint64_t cum = 0;
        for (int i = 0; i < MCPGW_HIST_BUCKETS; i++) {
            cum += e->h.buckets[i];
            evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_bucket{type=\"");
            label_value(out, e->type);
            evbuffer_add_printf(out, "\",le=\"%g\"} %llu\n", mcpgw_hist_bounds[i],
                                (unsigned long long)cum);
        }
        evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_bucket{type=\"");
        label_value(out, e->type);
        evbuffer_add_printf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)e->h.count);
        evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_sum{type=\"");
        label_value(out, e->type);
        evbuffer_add_printf(out, "\"} %.9f\n", e->h.sum);
        evbuffer_add_printf(out, "mcpgw_handler_duration_seconds_count{type=\"");
        label_value(out, e->type);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)e->h.count);
    }

    endpoint_metrics(srv, out);

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
    family(out, "mcpgw_connection_handovers_total", "counter",
           "TCP connections handed to the worker that holds their Streamable HTTP session.");
    evbuffer_add_printf(out, "mcpgw_connection_handovers_total %llu\n",
                        (unsigned long long)m->handovers_in);
    family(out, "mcpgw_connection_handover_failures_total", "counter",
           "Connections that could not be handed over (answered 503 or 421).");
    evbuffer_add_printf(out, "mcpgw_connection_handover_failures_total %llu\n",
                        (unsigned long long)m->handovers_failed);
    family(out, "mcpgw_http_requests_total", "counter", "Plain HTTP requests served.");
    evbuffer_add_printf(out, "mcpgw_http_requests_total %llu\n",
                        (unsigned long long)m->http_requests);
    family(out, "mcpgw_config_reloads_total", "counter", "Configuration reloads, by result.");
    evbuffer_add_printf(out, "mcpgw_config_reloads_total{result=\"ok\"} %llu\n"
                             "mcpgw_config_reloads_total{result=\"failed\"} %llu\n",
                        (unsigned long long)m->reloads, (unsigned long long)m->reload_failures);
    if (srv->gw->cfg->cluster_redis)
        cluster_metrics(srv, m, out);
    process_metrics(srv, out);
}
