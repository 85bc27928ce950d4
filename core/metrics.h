/*
 * metrics.h - the gateway's counters and their Prometheus text exposition
 * (format 0.0.4).
 *
 * Counters are plain integers owned by one loop's server and touched only
 * on its thread: an increment is a few instructions, with no lock and no
 * allocation. Labelled families use fixed arrays indexed by small enums.
 */
#ifndef MCPGW_METRICS_H
#define MCPGW_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
typedef struct mcpgw_server mcpgw_server;

enum { MCPGW_DIR_IN = 0, MCPGW_DIR_OUT = 1 };

enum {
    MCPGW_ERR_SERVER = 0,
    MCPGW_ERR_NETWORK,
    MCPGW_ERR_PROTOCOL,
    MCPGW_ERR_AUTH,
    MCPGW_ERR_KINDS
};

#define MCPGW_REJECT_REASONS 64     /* distinct upgrade-rejection reasons kept: room for
                                       every reason the gateway gives (about 40) */
#define MCPGW_CLOSE_CODES 16        /* 1000..1015; others count as "other" */
#define MCPGW_HIST_BUCKETS 12

/* Handler durations, per message type (kept in the handler table entry). */
typedef struct mcpgw_histogram {
    uint64_t buckets[MCPGW_HIST_BUCKETS];   /* cumulative at exposition time only */
    uint64_t count;
    double sum;                             /* seconds */
} mcpgw_histogram;

/* The upper bounds of the buckets, in seconds. */
extern const double mcpgw_hist_bounds[MCPGW_HIST_BUCKETS];

typedef struct mcpgw_metrics {
    uint64_t upgrades_accepted;
    const char *reject_reason[MCPGW_REJECT_REASONS];    /* static strings */
    uint64_t reject_count[MCPGW_REJECT_REASONS];
    uint64_t messages[2];                   /* by direction */
    uint64_t payload_bytes[2];              /* message bytes before compression */
    uint64_t wire_bytes[2];                 /* bytes of frames as sent/received */
    uint64_t errors[MCPGW_ERR_KINDS];
    uint64_t close_sent[MCPGW_CLOSE_CODES + 1];
    uint64_t close_received[MCPGW_CLOSE_CODES + 1];
    uint64_t broadcasts;
    uint64_t broadcast_recipients;
    uint64_t slow_consumer_closes;
    uint64_t heartbeat_timeouts;
    uint64_t plugin_load_failures;
    uint64_t http_requests;
    uint64_t reloads, reload_failures;
    uint64_t handovers_in;                  /* connections another worker handed us */
    uint64_t handovers_failed;              /* ... that we could not hand over */
    /* [cluster] (cluster.c) */
    uint64_t cluster_published;             /* broadcasts Redis took */
    uint64_t cluster_publish_errors;        /* ... it refused */
    uint64_t cluster_publish_dropped;       /* ... that the bounded queue dropped */
    uint64_t cluster_received;              /* other nodes' broadcasts delivered here */
    uint64_t cluster_duplicates;            /* ... dropped as already delivered */
    uint64_t cluster_batches;               /* stream answers that delivered any of them */
    uint64_t cluster_disconnects;           /* Redis connections lost */
    uint64_t cluster_lease_refresh_failures;
    uint64_t cluster_upgrades_redis_down;   /* upgrades decided without Redis */
} mcpgw_metrics;

/* One worker's counters, gauges and handler histograms. A worker's lives in
 * the supervisor's shared board (worker_board.h), so that whichever worker
 * answers /metrics can add up every worker's: the counters are written by
 * their worker only (plain stores, no lock) and read, possibly a moment
 * stale, by the others. A replacement worker carries on with its slot's
 * counters, so that a counter never goes back. */
#define MCPGW_HIST_TYPES 64
typedef struct mcpgw_type_histogram {
    char type[64];
    mcpgw_histogram h;
} mcpgw_type_histogram;

/* Per [endpoint.NAME] (jsonrpc): sessions counted by the core, the rest
 * reported by its plugin (host->metric). Methods are MCP's, by index in
 * mcpgw_endpoint_methods; any other method counts as "other". */
#define MCPGW_ENDPOINTS_MAX 16     /* = MCPGW_CONFIG_MAX_ENDPOINTS */
#define MCPGW_EP_METHODS 14
#define MCPGW_EP_RESTART_REASONS 4
extern const char *const mcpgw_endpoint_methods[MCPGW_EP_METHODS];
/* Streamable HTTP requests by method (POST GET DELETE other) and answers
 * by status (mcpgw_endpoint_http_codes; the last slot: any other). */
#define MCPGW_EP_HTTP_METHODS 4
#define MCPGW_EP_HTTP_CODES 17
extern const char *const mcpgw_endpoint_http_methods[MCPGW_EP_HTTP_METHODS];
extern const int mcpgw_endpoint_http_codes[MCPGW_EP_HTTP_CODES - 1];
extern const char *const mcpgw_endpoint_restart_reasons[MCPGW_EP_RESTART_REASONS];
typedef struct mcpgw_endpoint_stats {
    char name[64];
    uint64_t sessions_open;                 /* gauge */
    uint64_t sessions;                      /* counter */
    int64_t children;                       /* gauge */
    uint64_t restarts[MCPGW_EP_RESTART_REASONS];
    uint64_t requests[MCPGW_EP_METHODS];
    uint64_t errors[MCPGW_EP_METHODS];
    mcpgw_histogram duration;               /* every request */
    /* Streamable HTTP (mcp_http.c); sessions_open above counts both */
    uint64_t http_sessions_open;            /* gauge */
    uint64_t sse_streams_open;              /* gauge: SSE answers being written */
    uint64_t http_requests[MCPGW_EP_HTTP_METHODS];
    uint64_t http_responses[MCPGW_EP_HTTP_CODES];
    uint64_t sse_resumed;                   /* GET with a Last-Event-ID that was served */
    uint64_t sse_replay_gaps;               /* ... whose events were no longer all kept */
} mcpgw_endpoint_stats;

typedef struct mcpgw_worker_stats {
    mcpgw_metrics m;
    uint64_t tcp_open;                      /* gauges: TCP connections, */
    uint64_t ws_open;                       /* upgraded ones */
    uint64_t cluster_up;                    /* gauges: both Redis connections answer, */
    uint64_t cluster_queued;                /* broadcasts waiting for Redis, */
    uint64_t cluster_lag_ms;                /* age of the last entry read from the stream */
    unsigned n_hist;
    mcpgw_type_histogram hist[MCPGW_HIST_TYPES];
    unsigned n_endpoints;
    mcpgw_endpoint_stats endpoints[MCPGW_ENDPOINTS_MAX];
} mcpgw_worker_stats;

/* A worker is gone (or starts in its slot): its gauges drop to zero; its
 * counters stay, so that they never go back. */
void mcpgw_stats_clear_gauges(mcpgw_worker_stats *s);

/* The stats of endpoint `name` in s (added on first use); NULL when full. */
mcpgw_endpoint_stats *mcpgw_stats_endpoint(mcpgw_worker_stats *s, const char *name);

/* host->metric: one MCPGW_METRIC_* report of a plugin serving `section`. */
struct mcpgw_handler_config;
void mcpgw_endpoint_metric(mcpgw_server *srv, const struct mcpgw_handler_config *section,
                           int which, const char *label, double value);

/* The histogram of handler durations for type in s (added on first use);
 * NULL when the table is full or the type is too long. */
mcpgw_histogram *mcpgw_stats_histogram(mcpgw_worker_stats *s, const char *type);

/* Counts an upgrade rejected for `reason` (a static string). */
void mcpgw_metrics_reject(mcpgw_metrics *m, const char *reason);

static inline void mcpgw_metrics_close(uint64_t *table, unsigned code)
{
    table[code >= 1000 && code < 1000 + MCPGW_CLOSE_CODES ? code - 1000 : MCPGW_CLOSE_CODES]++;
}

/* Adds one observation (seconds) to h. */
void mcpgw_histogram_observe(mcpgw_histogram *h, double seconds);

/* Adds up the counters and gauges of every worker of srv's gateway (just
 * srv's without a supervisor); with hist, also the handler histograms by
 * type (*n_hist of them, at most MCPGW_HIST_TYPES). */
void mcpgw_metrics_gather(const mcpgw_server *srv, mcpgw_metrics *sum, uint64_t *tcp_open,
                          uint64_t *ws_open, mcpgw_type_histogram *hist, unsigned *n_hist);

/* Writes the whole exposition for srv into out: every worker's. */
void mcpgw_metrics_render(mcpgw_server *srv, struct evbuffer *out);

#endif
