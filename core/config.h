/*
 * config.h - the gateway's configuration: read from DIR/NAME.ini (inih), validated.
 *
 * mcpgw_config_load() reads every *.ini file of a directory in lexical order
 * (non-recursive); a key set in a later file overrides the same key of an
 * earlier one. Unknown sections, unknown keys and bad values are errors,
 * reported as "file:line: message" lines. [handler.TYPE] sections are kept as
 * ordered key/value lists and handed to the plugin that serves TYPE.
 *
 * Ownership: a configuration is a reference-counted snapshot, never
 * changed once loaded. mcpgw_config_load() returns one with one reference;
 * mcpgw_config_ref() takes another, mcpgw_config_free() drops one and frees
 * the snapshot with the last. Every string inside is owned by the snapshot.
 * Whatever keeps a pointer into a snapshot past the moment it read it holds
 * a reference: the gateway (the one in force), a connection or MCP session
 * on an [endpoint.NAME] (that section's snapshot), a plugin context (its
 * section's snapshot, and every earlier one whose strings it read, see
 * mcpgw/plugin.h). A reload therefore frees the previous snapshot as soon
 * as the last of them lets it go.
 */
#ifndef MCPGW_CONFIG_H
#define MCPGW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pmd.h"

#define MCPGW_MAX_ALGORITHMS 16
/* [endpoint.NAME] sections: how many, and the longest NAME (metrics keep a
 * fixed table of them in shared memory, metrics.h). */
#define MCPGW_CONFIG_MAX_ENDPOINTS 16
#define MCPGW_CONFIG_MAX_ENDPOINT_NAME 63

typedef struct mcpgw_kv {
    char *key;
    char *value;
    char *file;         /* where it was set, for messages */
    int line;
    struct mcpgw_kv *next;
} mcpgw_kv;

/* What an endpoint speaks ([endpoint.NAME] protocol). */
typedef enum {
    MCPGW_ENDPOINT_MCPGW = 0,       /* the gateway protocol: {"type"} messages, handler table */
    MCPGW_ENDPOINT_JSONRPC,         /* JSON-RPC 2.0 objects and batches, handed to the plugin */
    MCPGW_ENDPOINT_ECHO             /* every message back with its opcode (benchmarks) */
} mcpgw_endpoint_protocol;

/* How a POST with requests is answered on a Streamable HTTP endpoint. */
enum {
    MCPGW_HTTP_RESPONSE_AUTO = 0,   /* SSE when a request asks for progress, else JSON */
    MCPGW_HTTP_RESPONSE_JSON,       /* application/json whenever the client accepts it */
    MCPGW_HTTP_RESPONSE_SSE         /* text/event-stream whenever the client accepts it */
};

/* A plugin section: [handler.TYPE], or [endpoint.NAME] (is_endpoint). */
typedef struct mcpgw_handler_config {
    char *type;         /* message type, or the endpoint's NAME: the part after the dot */
    char *plugin;       /* plugin name (file NAME.so in the plugins dir) */
    char *file;         /* file:line of the section's plugin key */
    int line;
    mcpgw_kv *options;  /* every key of the section except "plugin" (and, for an
                           endpoint, except the endpoint's own keys below), in order */
    /* the gateway's own keys: require_claim (both kinds of section; below),
     * and for [handler.TYPE] (policy.h): */
    size_t max_message_bytes;       /* 0: max_payload */
    double rate_per_user;           /* broadcast_per_s; 0: no limit */
    /* [endpoint.NAME] only */
    int is_endpoint;
    char *path;         /* "/mcp/everything": exact match, no query */
    mcpgw_endpoint_protocol protocol;   /* default jsonrpc */
    char *subprotocol;  /* answered when offered; NULL: the protocol's ("mcp", "mcpgw") */
    char *claim_name;   /* require_claim = CLAIM:VALUE (NULL: none) */
    char *claim_value;
    /* jsonrpc endpoints: MCP Streamable HTTP on the same path (mcp_http.h) */
    int http;                       /* 1 (default): POST/GET/DELETE are served */
    int http_response;              /* MCPGW_HTTP_RESPONSE_*: how a POST is answered */
    int session_idle_ms;            /* 600000: an HTTP session unused this long ends */
    size_t replay_bytes;            /* 262144: events kept per SSE stream for Last-Event-ID */
    struct mcpgw_config *owner;     /* the snapshot holding this section (not a reference) */
    struct mcpgw_handler_config *next;
} mcpgw_handler_config;

/* Where a key got its value (mcpgw -T): newest first. */
typedef struct mcpgw_config_src {
    const struct mcpgw_config_key *key;
    char *section;      /* the section's full name: "server", "handler.ping" */
    char *file;
    int line;
    char *raw;          /* the value as written; NULL for a secret */
    struct mcpgw_config_src *next;
} mcpgw_config_src;

typedef struct mcpgw_config {
    int refs;                       /* references (config.h, Ownership); loop thread only */
    /* [server] */
    char *listen_host;              /* "127.0.0.1" */
    int listen_port;                /* 8080 */
    char *path;                     /* "/ws" */
    size_t max_payload;             /* 1048576 */
    int shutdown_timeout_ms;        /* 10000 */
    size_t max_header_bytes;        /* 8192: larger requests get 431 */
    size_t max_outbound_bytes;      /* 4194304: a reader queued past this is closed 1008 */
    int handshake_timeout_ms;       /* 10000: a TCP connection not upgraded by then is closed */
    int max_connections;            /* 10000: open WebSockets; the next upgrade gets 503 */
    char **allowed_origins;         /* NULL-terminated list; NULL: any Origin */
    int require_origin;             /* 0: requests without Origin are allowed */
    char *plain_listen_host;        /* optional second, plain listener (NULL: none) */
    int plain_listen_port;
    double rate_limit_per_s;        /* 0: off. Inbound messages per second per connection */
    int rate_limit_burst;           /* bucket size; 0 means max(1, rate) */
    int rate_limit_max_violations;  /* 20: refused messages within 10 s before closing 1008 */
    int workers;                    /* worker processes; 0 = auto (online CPUs, the default) */
    int handler_watchdog_ms;        /* 5000: a handler running longer aborts its worker; 0 off */
    int drain_timeout_ms;           /* 30000: after a binary upgrade, how long old workers
                                       keep their clients before closing them 1001 */
    /* [cluster] (cluster.h): absent, cluster_redis is NULL and nothing changes */
    char *cluster_redis;            /* "redis://HOST:PORT[/DB]" or "unix:PATH" as written */
    char *cluster_host;             /* parsed: host, or the socket path for unix: */
    int cluster_port;               /* 0 for unix: */
    int cluster_db;                 /* 0 */
    int cluster_unix;               /* 1: cluster_host is a socket path */
    char *cluster_password;         /* from password_file; never logged */
    char *cluster_node_id;          /* default "listen_host:listen_port" */
    char *cluster_key_prefix;       /* "mcpgw:" */
    int cluster_lease_ms;           /* 15000 */
    int cluster_read_linger_ms;     /* 1: while reads bring entries, one read per this at most */
    int cluster_reject_when_down;   /* on_redis_down = reject (1) | local (0, default) */
    /* [tls] */
    char *tls_cert;                 /* PEM certificate; with tls_key makes [server] listen TLS */
    char *tls_key;
    char *tls_chain;                /* optional PEM chain */
    /* [auth] */
    char *jwt_secret;               /* MCPGW_JWT_SECRET wins over the file */
    int algorithms[MCPGW_MAX_ALGORITHMS]; /* jwt_alg_t values, n_algorithms of them */
    int n_algorithms;
    int max_connections_per_user;   /* 5 */
    char *user_claim;               /* "id", falls back to "sub" */
    int leeway_s;                   /* 30: clock leeway for exp and nbf */
    int require_exp;                /* 0: tokens without exp are accepted (and never end) */
    char *public_key_pem;           /* contents of public_key_file, for RS* and ES* */
    size_t public_key_len;
    char *issuer;                   /* required "iss" when set */
    char *audience;                 /* required in "aud" when set */
    /* [admin] */
    char *admin_claim;              /* "role": the claim an admin token must carry */
    char *admin_value;              /* "admin": ... with this value (or in this list) */
    size_t admin_max_body_bytes;    /* 1048576: larger /api bodies get 413 */
    int admin_agent_silence_s;      /* 60: the status page greys an agent silent this long (0: never) */
    /* [compression] */
    mcpgw_pmd_config compression;
    /* [heartbeat] */
    int heartbeat_interval_ms;      /* 30000 */
    /* [log] */
    int log_level;                  /* MCPGW_LOG_* from log.h; default info */
    int log_access;                 /* [log] access: one line per HTTP request / upgrade */
    /* [plugins] */
    char *plugins_dir;              /* default: the install dir */
    /* [handler.*] in order of first appearance */
    mcpgw_handler_config *handlers;
    /* [endpoint.*] in order of first appearance */
    mcpgw_handler_config *endpoints;
    mcpgw_config_src *sources;      /* every key set, newest first */
    int secret_from_env;            /* jwt_secret came from MCPGW_JWT_SECRET */
} mcpgw_config;

/* ---------------------------------------------------------------- the keys
 *
 * One table (config_keys.c) describes every key the gateway itself reads:
 * it drives parsing, the defaults, mcpgw -T and the man page's test.
 * Plugin keys are not in it: each plugin declares its own
 * (MCPGW_PLUGIN_DEFINE_KEYS), checked when the plugin is opened. */
typedef enum {
    MCPGW_CONFIG_INT,       /* a decimal integer in min..max */
    MCPGW_CONFIG_SIZE,      /* bytes in min..max, optional k/m suffix */
    MCPGW_CONFIG_BOOL,      /* true/yes/on/1, false/no/off/0 */
    MCPGW_CONFIG_RATE,      /* a decimal number in min..max */
    MCPGW_CONFIG_STRING,
    MCPGW_CONFIG_ENUM,      /* one of a few words */
    MCPGW_CONFIG_LIST,      /* words separated by commas or spaces */
    MCPGW_CONFIG_ADDRESS,   /* HOST:PORT or [IPV6]:PORT */
    MCPGW_CONFIG_PATH,      /* a file or directory, relative to the .ini file */
    MCPGW_CONFIG_SECRET,    /* a secret, or a file holding one */
    MCPGW_CONFIG_CLAIM      /* CLAIM:VALUE */
} mcpgw_config_type;

#define MCPGW_CONFIG_RESTART    1u  /* a change takes effect after a restart */
#define MCPGW_CONFIG_HIDDEN     2u  /* mcpgw -T never prints the value */
#define MCPGW_CONFIG_IN_SECTION 4u  /* a field of mcpgw_handler_config */
#define MCPGW_CONFIG_DEF_TEXT   8u  /* the default is described, not set by the table */

struct mcpgw_config_parse;

typedef struct mcpgw_config_key {
    const char *section;    /* "server", "auth", ..., "handler.*", "endpoint.*" */
    const char *name;
    mcpgw_config_type type;
    long long min, max;     /* INT, SIZE, RATE */
    const char *def;        /* the default as written in a file; NULL: none */
    unsigned flags;         /* MCPGW_CONFIG_* above */
    const char *doc;        /* one line */
    /* how it is parsed and shown (config_keys.c) */
    const char *expected;   /* the "(expected ...)" of a bad value */
    size_t offset, offset2; /* into mcpgw_config, or mcpgw_handler_config */
    const void *extra;      /* ENUM: its words; STRING: a check */
    int (*set)(struct mcpgw_config_parse *p, const struct mcpgw_config_key *k, const char *value);
    /* The effective value as text (malloc'd), or NULL when not set. */
    char *(*show)(const struct mcpgw_config *cfg, const struct mcpgw_handler_config *h,
                  const struct mcpgw_config_key *k);
} mcpgw_config_key;

/* The table, ended by an entry whose name is NULL. */
extern const mcpgw_config_key mcpgw_config_keys[];

/* mcpgw -T: writes the effective configuration to out, every key of the
 * table (and every plugin key of each section) with its value and where it
 * came from ("file:line", "default" or "environment"); secrets are written
 * as (redacted). 0, or -1 on a write error. */
int mcpgw_config_dump(const mcpgw_config *cfg, FILE *out);

/* Loads DIR/NAME.ini. On success returns a config and leaves *errors NULL.
 * On failure returns NULL and sets *errors to a malloc'd, newline-separated
 * list of "file:line: message" lines (the caller frees it). */
mcpgw_config *mcpgw_config_load(const char *dir, char **errors);
/* Same, from one INI text (name is used in messages); used by tests/fuzzers. */
mcpgw_config *mcpgw_config_load_string(const char *name, const char *text, char **errors);
/* Takes one more reference on cfg (NULL: nothing); returns cfg. */
mcpgw_config *mcpgw_config_ref(mcpgw_config *cfg);
/* Drops one reference; the last frees the snapshot. NULL: nothing. */
void mcpgw_config_free(mcpgw_config *cfg);

/* Takes MCPGW_JWT_SECRET out of the process environment (and its bytes
 * out of the original environment block), keeping it for later loads: no
 * worker, plugin or child process inherits it. */
void mcpgw_config_scrub_env(void);
/* The secret taken by mcpgw_config_scrub_env(), or NULL. */
const char *mcpgw_config_env_secret(void);

/* Does any configured algorithm need the HMAC secret (HS*)? */
int mcpgw_config_needs_secret(const mcpgw_config *cfg);

/* Finds an endpoint by its request path, or NULL. */
const mcpgw_handler_config *mcpgw_config_endpoint(const mcpgw_config *cfg, const char *path,
                                                  size_t path_len);

/* Finds a handler section by message type, or NULL. */
const mcpgw_handler_config *mcpgw_config_handler(const mcpgw_config *cfg, const char *type);

#endif
