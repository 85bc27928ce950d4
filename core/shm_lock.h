/*
 * shm_lock.h - a mutex that lives in memory shared by the worker processes:
 * process-shared and robust, so that a worker that dies holding it does not
 * wedge the others (the next taker gets it and marks it consistent; what
 * each user of such a lock does about a half-done change is said where it
 * is used: conn_limits.c, bus.c).
 */
#ifndef MCPGW_SHM_LOCK_H
#define MCPGW_SHM_LOCK_H

#include <errno.h>
#include <pthread.h>

/* 0, or -1. */
static inline int mcpgw_shm_lock_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int rc;

    if (pthread_mutexattr_init(&attr) != 0)
        return -1;
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

static inline void mcpgw_shm_lock(pthread_mutex_t *m)
{
    if (pthread_mutex_lock(m) == EOWNERDEAD)
        pthread_mutex_consistent(m);
}

static inline void mcpgw_shm_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

#endif
