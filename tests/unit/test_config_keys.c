/*
 * test_config_keys.c - the table of configuration keys (config_keys.c):
 * the man page mcpgw.conf(5) documents exactly its keys, each under its
 * section; mcpgw_config_dump (mcpgw -T) shows values, sources and never a
 * secret.
 */
#define _GNU_SOURCE     /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

/* ------------------------------------------------------------ the man page */

typedef struct documented {
    char section[64];
    char key[64];
    int matched;
} documented;

static documented docs[256];
static int n_docs;

static void add_doc(const char *section, const char *key, size_t len)
{
    if (n_docs == (int)(sizeof(docs) / sizeof(docs[0])) || len == 0 || len >= sizeof(docs[0].key))
        return;
    snprintf(docs[n_docs].section, sizeof(docs[n_docs].section), "%s", section);
    memcpy(docs[n_docs].key, key, len);
    docs[n_docs].key[len] = '\0';
    n_docs++;
}

static size_t ident_len(const char *s)
{
    size_t n = 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n;
}

/* The keys a .TP entry names: the first word of its .B/.BI/.BR line, and
 * any word after \fP in it (".BI cert " path" "\fR, \fPkey " path"). */
static void parse_entry(const char *section, const char *line)
{
    const char *s;

    if (strncmp(line, ".B ", 3) == 0)
        s = line + 3;
    else if (strncmp(line, ".BI ", 4) == 0 || strncmp(line, ".BR ", 4) == 0)
        s = line + 4;
    else
        return;         /* ".I any other key": the plugin's */
    if (*s == '"')
        s++;
    add_doc(section, s, ident_len(s));
    for (s = strstr(s, "\\fP"); s; s = strstr(s + 3, "\\fP"))
        add_doc(section, s + 3, ident_len(s + 3));
}

/* Reads man/mcpgw.conf.5: the .TP entries of each "[NAME] SECTION(S)",
 * up to its first .PP (after which come the shipped plugins' keys). */
static int read_man(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024], section[64] = "";
    int after_tp = 0;

    if (!f) {
        fprintf(stderr, "  cannot open %s\n", path);
        return -1;
    }
    n_docs = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, ".SH ", 4) == 0) {
            const char *open = strstr(line, "\"["), *close = open ? strchr(open, ']') : NULL;
            section[0] = '\0';
            if (open && close) {
                size_t n = (size_t)(close - open - 2);
                if (n < sizeof(section)) {
                    memcpy(section, open + 2, n);
                    section[n] = '\0';
                }
                /* [handler.TYPE] and [endpoint.NAME] are the table's handler.* and endpoint.* */
                char *dot = strchr(section, '.');
                if (dot && dot[1] >= 'A' && dot[1] <= 'Z')
                    strcpy(dot + 1, "*");
            }
            after_tp = 0;
        } else if (strcmp(line, ".PP") == 0) {
            section[0] = '\0';
        } else if (strcmp(line, ".TP") == 0) {
            after_tp = 1;
        } else if (after_tp) {
            after_tp = 0;
            if (section[0])
                parse_entry(section, line);
        }
    }
    fclose(f);
    return 0;
}

static char man_path[4096];

TEST(test_man_page_documents_every_key)
{
    int missing = 0;

    CHECK(read_man(man_path) == 0);
    CHECK(n_docs > 40);
    for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++) {
        int found = 0;
        for (int i = 0; i < n_docs; i++)
            if (strcmp(docs[i].section, k->section) == 0 && strcmp(docs[i].key, k->name) == 0)
                found = docs[i].matched = 1;
        if (!found) {
            fprintf(stderr, "  [%s] %s is in the table but not in %s\n", k->section, k->name,
                    man_path);
            missing++;
        }
    }
    CHECK_EQ_INT(missing, 0);
}

TEST(test_man_page_documents_no_other_key)
{
    int extra = 0;

    for (int i = 0; i < n_docs; i++)
        if (!docs[i].matched) {
            fprintf(stderr, "  [%s] %s is in %s but not in the table\n", docs[i].section,
                    docs[i].key, man_path);
            extra++;
        }
    CHECK_EQ_INT(extra, 0);
}

TEST(test_table_is_well_formed)
{
    for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++) {
        CHECK(k->section && k->doc && k->doc[0] && k->expected && k->set && k->show);
        for (const mcpgw_config_key *o = mcpgw_config_keys; o != k; o++)
            if (strcmp(o->section, k->section) == 0 && strcmp(o->name, k->name) == 0) {
                fprintf(stderr, "  [%s] %s twice\n", k->section, k->name);
                CHECK(0);
            }
    }
}

/* ------------------------------------------------------------ mcpgw -T */

static char *dump(const mcpgw_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    CHECK_EQ_INT(mcpgw_config_dump(cfg, f), 0);
    fclose(f);
    return buf;
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

TEST(test_dump_values_and_sources)
{
    char *errors = NULL, *out;
    mcpgw_config *cfg = mcpgw_config_load_string(
        "t.ini",
        "[server]\n"
        "listen = [::1]:9000\n"
        "max_payload = 64k\n"
        "; a comment\n"
        "allowed_origins = https://a.example https://b.example\n"
        "[log]\n"
        "level = warn\n"
        "[handler.ping]\n"
        "plugin = ping\n"
        "reply_type = pong2\n"
        "broadcast_per_s = 2.5\n"
        "[endpoint.e]\n"
        "path = /echo\n"
        "protocol = echo\n"
        "[server]\n"
        "workers = 3\n",
        &errors);

    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", errors);
        free(errors);
        return;
    }
    out = dump(cfg);
    CHECK(out != NULL);
    CHECK(has_line(out, "[server]"));
    CHECK(has_line(out, "listen = [::1]:9000  ; t.ini:2"));
    CHECK(has_line(out, "max_payload = 65536  ; t.ini:3"));
    CHECK(has_line(out, "allowed_origins = https://a.example, https://b.example  ; t.ini:5"));
    CHECK(has_line(out, "workers = 3  ; t.ini:16"));
    CHECK(has_line(out, "path = /ws  ; default"));
    CHECK(has_line(out, "max_connections = 10000  ; default"));
    CHECK(has_line(out, ";plain_listen =  ; default (not set)"));
    CHECK(has_line(out, "level = warn  ; t.ini:7"));
    CHECK(has_line(out, "[handler.ping]"));
    CHECK(has_line(out, "plugin = ping  ; t.ini:9"));
    CHECK(has_line(out, "reply_type = pong2  ; t.ini:10"));
    CHECK(has_line(out, "broadcast_per_s = 2.5  ; t.ini:11"));
    CHECK(has_line(out, "max_message_bytes = 65536  ; default"));
    CHECK(has_line(out, "[endpoint.e]"));
    CHECK(has_line(out, "protocol = echo  ; t.ini:14"));
    CHECK(has_line(out, "session_idle_ms = 600000  ; default"));
    /* every key of the table's fixed sections is there */
    for (const mcpgw_config_key *k = mcpgw_config_keys; k->name; k++) {
        char head[128];
        snprintf(head, sizeof(head), "\n%s = ", k->name);
        if (!strstr(out, head)) {
            snprintf(head, sizeof(head), "\n;%s = ", k->name);
            if (!strstr(out, head)) {
                fprintf(stderr, "  [%s] %s not in the dump\n", k->section, k->name);
                CHECK(0);
            }
        }
    }
    free(out);
    mcpgw_config_free(cfg);
}

TEST(test_dump_redacts_secrets)
{
    char *errors = NULL, *out;
    char dir[] = "/tmp/mcpgw-keys-XXXXXX", path[256], ini[256];
    FILE *f;
    mcpgw_config *cfg;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/redis.pw", dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("redis-pass-XYZ\n", f);
    fclose(f);
    snprintf(ini, sizeof(ini), "%s/10.ini", dir);
    cfg = mcpgw_config_load_string(
        ini,
        "[auth]\n"
        "jwt_secret = top-secret-ABC\n"
        "[cluster]\n"
        "redis = redis://127.0.0.1:6379\n"
        "password_file = redis.pw\n"
        "[handler.x]\n"
        "plugin = ping\n"
        "api_token = tok-DEF\n"
        "db_password = pw-GHI\n"
        "env = KEY=val-JKL\n"
        "key_file = /etc/x.pem\n"
        "greeting = hello\n",
        &errors);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", errors);
        free(errors);
        return;
    }
    out = dump(cfg);
    REQUIRE(out != NULL);
    CHECK(!strstr(out, "top-secret-ABC"));
    CHECK(!strstr(out, "redis-pass-XYZ"));
    CHECK(!strstr(out, "tok-DEF"));
    CHECK(!strstr(out, "pw-GHI"));
    CHECK(!strstr(out, "val-JKL"));
    CHECK(strstr(out, "\njwt_secret = (redacted)  ; /tmp/mcpgw-keys-") != NULL);
    CHECK(strstr(out, "\npassword_file = redis.pw  ; /tmp/mcpgw-keys-") != NULL);  /* a path is fine */
    CHECK(strstr(out, "\napi_token = (redacted)  ; ") != NULL);
    CHECK(strstr(out, "\ndb_password = (redacted)  ; ") != NULL);
    CHECK(strstr(out, "\nkey_file = /etc/x.pem  ; ") != NULL);
    CHECK(strstr(out, "\ngreeting = hello  ; ") != NULL);
    CHECK(strstr(out, "\nkey_prefix = mcpgw:  ; default") != NULL);
    free(out);
    mcpgw_config_free(cfg);
    unlink(path);
    rmdir(dir);

    /* MCPGW_JWT_SECRET wins, and says so */
    setenv("MCPGW_JWT_SECRET", "env-secret-MNO", 1);
    cfg = mcpgw_config_load_string("t.ini", "[auth]\njwt_secret = file-secret\n", &errors);
    unsetenv("MCPGW_JWT_SECRET");
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    out = dump(cfg);
    CHECK(out && !strstr(out, "env-secret-MNO") && !strstr(out, "file-secret"));
    CHECK(has_line(out, "jwt_secret = (redacted)  ; environment MCPGW_JWT_SECRET"));
    free(out);
    mcpgw_config_free(cfg);
}

int main(void)
{
    const char *srcdir = getenv("MCPGW_SRCDIR");

    snprintf(man_path, sizeof(man_path), "%s/man/mcpgw.conf.5", srcdir ? srcdir : ".");
    RUN(test_man_page_documents_every_key);
    RUN(test_man_page_documents_no_other_key);
    RUN(test_table_is_well_formed);
    RUN(test_dump_values_and_sources);
    RUN(test_dump_redacts_secrets);
    return UNIT_SUMMARY();
}
