/*
 * test_conn_limits.c - unit tests for core/conn_limits.c: per-user and total
 * limits across workers, release, a dead worker's release, user counting and
 * foreach, bad arguments, a random run against a reference model, and
 * processes racing for one user's slots through the shared mapping.
 */
#include "unit.h"
#include "conn_limits.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(user_limit_spans_workers)
{
    mcpgw_limits *l = mcpgw_limits_new(100);
    int n = -1;

    CHECK(l != NULL);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 0, 3, 100, &n), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 1, 3, 100, &n), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 1, 3, 100, &n), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 0, 3, 100, &n), MCPGW_LIMIT_USER);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "bob", 0, 3, 100, &n), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_user_count(l, "alice"), 3);
    CHECK_EQ_INT(mcpgw_limits_users(l), 2);
    CHECK_EQ_INT(mcpgw_limits_total(l), 4);
    CHECK_EQ_INT(mcpgw_limits_worker_total(l, 0), 2);
    CHECK_EQ_INT(mcpgw_limits_worker_total(l, 1), 2);
    /* a lower limit (a reload) refuses without changing anything */
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 0, 2, 100, &n), MCPGW_LIMIT_USER);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "carol", 0, 0, 100, &n), MCPGW_LIMIT_USER);
    CHECK_EQ_INT(mcpgw_limits_user_count(l, "carol"), 0);
    CHECK_EQ_INT(mcpgw_limits_total(l), 4);
    mcpgw_limits_free(l);
}

TEST(total_limit)
{
    mcpgw_limits *l = mcpgw_limits_new(100);

    CHECK_EQ_INT(mcpgw_limits_acquire(l, "a", 0, 5, 2, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "b", 1, 5, 2, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "c", 0, 5, 2, NULL), MCPGW_LIMIT_SERVER);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "a", 0, 5, 2, NULL), MCPGW_LIMIT_SERVER);
    CHECK_EQ_INT(mcpgw_limits_release(l, "b", 1), 0);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "c", 0, 5, 2, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_users(l), 2);
    mcpgw_limits_free(l);
}

TEST(capacity_is_a_server_limit)
{
    mcpgw_limits *l = mcpgw_limits_new(16);
    char user[16];

    for (int i = 0; i < 16; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        CHECK_EQ_INT(mcpgw_limits_acquire(l, user, 0, 5, 1000, NULL), MCPGW_LIMIT_OK);
    }
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "u99", 0, 5, 1000, NULL), MCPGW_LIMIT_SERVER);
    /* an existing pair needs no new entry */
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "u3", 0, 5, 1000, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_release(l, "u7", 0), 0);       /* its entry is free again */
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "u99", 0, 5, 1000, NULL), MCPGW_LIMIT_OK);
    mcpgw_limits_free(l);
}

TEST(release)
{
    mcpgw_limits *l = mcpgw_limits_new(100);

    CHECK_EQ_INT(mcpgw_limits_release(l, "nobody", 0), -1);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 0, 5, 100, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 2, 5, 100, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_release(l, "alice", 1), -1);   /* worker 1 holds none */
    CHECK_EQ_INT(mcpgw_limits_release(l, "alice", 2), 1);
    CHECK_EQ_INT(mcpgw_limits_release(l, "alice", 2), -1);
    CHECK_EQ_INT(mcpgw_limits_users(l), 1);
    CHECK_EQ_INT(mcpgw_limits_release(l, "alice", 0), 0);
    CHECK_EQ_INT(mcpgw_limits_users(l), 0);
    CHECK_EQ_INT(mcpgw_limits_total(l), 0);
    mcpgw_limits_free(l);
}

TEST(dead_worker_released)
{
    mcpgw_limits *l = mcpgw_limits_new(100);

    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 1, 5, 100, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "alice", 0, 5, 100, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "bob", 1, 5, 100, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "carol", 0, 5, 100, NULL), MCPGW_LIMIT_OK);
    CHECK_EQ_INT(mcpgw_limits_release_worker(l, 1), 4);
    CHECK_EQ_INT(mcpgw_limits_user_count(l, "alice"), 1);
    CHECK_EQ_INT(mcpgw_limits_user_count(l, "bob"), 0);
    CHECK_EQ_INT(mcpgw_limits_users(l), 2);
    CHECK_EQ_INT(mcpgw_limits_total(l), 2);
    CHECK_EQ_INT(mcpgw_limits_worker_total(l, 1), 0);
    CHECK_EQ_INT(mcpgw_limits_release_worker(l, 1), 0);
    mcpgw_limits_free(l);
}

static void add_count(const char *user, int count, void *arg)
{
    int *sum = arg;

    sum[0] += count;
    sum[1]++;
    if (strcmp(user, "alice") == 0)
        sum[2] = count;
}

TEST(foreach_sums_workers)
{
    mcpgw_limits *l = mcpgw_limits_new(100);
    int sum[3] = { 0, 0, 0 };

    mcpgw_limits_acquire(l, "alice", 0, 5, 100, NULL);
    mcpgw_limits_acquire(l, "alice", 3, 5, 100, NULL);
    mcpgw_limits_acquire(l, "alice", 3, 5, 100, NULL);
    mcpgw_limits_acquire(l, "bob", 2, 5, 100, NULL);
    mcpgw_limits_foreach_user(l, add_count, sum);
    CHECK_EQ_INT(sum[0], 4);
    CHECK_EQ_INT(sum[1], 2);        /* once per user, not per (user, worker) */
    CHECK_EQ_INT(sum[2], 3);
    mcpgw_limits_free(l);
}

TEST(bad_arguments)
{
    mcpgw_limits *l = mcpgw_limits_new(100);
    char long_user[MCPGW_LIMITS_USER_MAX + 1];

    memset(long_user, 'x', sizeof(long_user) - 1);
    long_user[sizeof(long_user) - 1] = '\0';
    CHECK_EQ_INT(mcpgw_limits_acquire(l, long_user, 0, 5, 100, NULL), MCPGW_LIMIT_ERROR);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, NULL, 0, 5, 100, NULL), MCPGW_LIMIT_ERROR);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "a", -1, 5, 100, NULL), MCPGW_LIMIT_ERROR);
    CHECK_EQ_INT(mcpgw_limits_acquire(l, "a", MCPGW_LIMITS_MAX_WORKERS, 5, 100, NULL),
                 MCPGW_LIMIT_ERROR);
    CHECK_EQ_INT(mcpgw_limits_total(l), 0);
    mcpgw_limits_free(l);
}

TEST(random_against_model)
{
    enum { USERS = 40, WORKERS = 4, LIMIT = 3, STEPS = 20000 };
    mcpgw_limits *l = mcpgw_limits_new(64);
    int model[USERS][WORKERS];
    long total = 0;
    unsigned seed = 12345;
    char user[16];

    memset(model, 0, sizeof(model));
    for (int s = 0; s < STEPS; s++) {
        int u, w, sum = 0, got;
        seed = seed * 1103515245u + 12345u;
        u = (int)((seed >> 8) % USERS);
        w = (int)((seed >> 20) % WORKERS);
        snprintf(user, sizeof(user), "user-%d", u);
        for (int k = 0; k < WORKERS; k++)
            sum += model[u][k];
        if ((seed >> 4) & 1) {
            mcpgw_limit_result r = mcpgw_limits_acquire(l, user, w, LIMIT, 60, &got);
            mcpgw_limit_result want = sum >= LIMIT ? MCPGW_LIMIT_USER
                                      : total >= 60 ? MCPGW_LIMIT_SERVER : MCPGW_LIMIT_OK;
            CHECK_EQ_INT(r, want);
            if (r == MCPGW_LIMIT_OK) {
                model[u][w]++;
                total++;
                CHECK_EQ_INT(got, sum + 1);
            }
        } else if ((seed >> 5) & 7) {
            got = mcpgw_limits_release(l, user, w);
            CHECK_EQ_INT(got, model[u][w] ? sum - 1 : -1);
            if (model[u][w]) {
                model[u][w]--;
                total--;
            }
        } else if (s % 97 == 0) {
            size_t freed = mcpgw_limits_release_worker(l, w), want = 0;
            for (int k = 0; k < USERS; k++) {
                want += (size_t)model[k][w];
                total -= model[k][w];
                model[k][w] = 0;
            }
            CHECK_EQ_INT(freed, want);
        }
        CHECK_EQ_INT(mcpgw_limits_total(l), total);
        if (unit_current_failed)
            break;
    }
    mcpgw_limits_free(l);
}

/* Eight processes race for one user's slots (limit 5): exactly 5 win. */
TEST(processes_race_for_a_user)
{
    enum { PROCS = 8, TRIES = 50 };
    mcpgw_limits *l = mcpgw_limits_new(100);
    int wins = 0, fds[2];

    CHECK(pipe(fds) == 0);
    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            unsigned char won = 0;
            for (int t = 0; t < TRIES; t++)
                if (mcpgw_limits_acquire(l, "racer", p, 5, 1000, NULL) == MCPGW_LIMIT_OK)
                    won++;
            if (write(fds[1], &won, 1) != 1)
                _exit(1);
            _exit(0);
        }
        CHECK(pid > 0);
    }
    for (int p = 0; p < PROCS; p++) {
        unsigned char won = 0;
        int status = 0;
        CHECK(read(fds[0], &won, 1) == 1);
        wins += won;
        CHECK(wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(fds[0]);
    close(fds[1]);
    CHECK_EQ_INT(wins, 5);
    CHECK_EQ_INT(mcpgw_limits_user_count(l, "racer"), 5);
    CHECK_EQ_INT(mcpgw_limits_total(l), 5);
    mcpgw_limits_free(l);
}

TEST(conn_ids_unique_across_processes)
{
    mcpgw_limits *l = mcpgw_limits_new(16);
    uint64_t first = mcpgw_limits_next_conn_id(l), child_id = 0;
    int fds[2], status = 0;
    pid_t pid;

    CHECK(pipe(fds) == 0);
    pid = fork();
    if (pid == 0) {
        uint64_t id = mcpgw_limits_next_conn_id(l);
        _exit(write(fds[1], &id, sizeof(id)) == sizeof(id) ? 0 : 1);
    }
    CHECK(read(fds[0], &child_id, sizeof(child_id)) == sizeof(child_id));
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(child_id == first + 1);
    CHECK(mcpgw_limits_next_conn_id(l) == first + 2);
    close(fds[0]);
    close(fds[1]);
    mcpgw_limits_free(l);
}

int main(void)
{
    RUN(user_limit_spans_workers);
    RUN(total_limit);
    RUN(capacity_is_a_server_limit);
    RUN(release);
    RUN(dead_worker_released);
    RUN(foreach_sums_workers);
    RUN(bad_arguments);
    RUN(random_against_model);
    RUN(processes_race_for_a_user);
    RUN(conn_ids_unique_across_processes);
    return UNIT_SUMMARY();
}
