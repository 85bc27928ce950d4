/*
 * fuzz_common.h - small helpers shared by the libFuzzer targets in fuzz/.
 *
 * Every target defines LLVMFuzzerTestOneInput() (and optionally
 * LLVMFuzzerInitialize()); with --enable-fuzzing they link against libFuzzer,
 * otherwise fuzz/replay.c supplies a main() that runs the checked-in corpus
 * through the same function (a regression test in the ordinary build).
 *
 * FUZZ_ASSERT() traps (a crash libFuzzer reports, with the input saved) when
 * an invariant the target checks does not hold.
 */
#ifndef MCPGW_FUZZ_COMMON_H
#define MCPGW_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                            \
            __builtin_trap();                                                    \
        }                                                                        \
    } while (0)

/* A deterministic pseudo-random stream derived from the input (splitmix64),
 * so that a saved crash input replays exactly. */
typedef struct fuzz_rng {
    uint64_t s;
} fuzz_rng;

static inline void fuzz_rng_seed(fuzz_rng *r, const uint8_t *data, size_t size)
{
    uint64_t h = 1469598103934665603ULL ^ size;

    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    r->s = h;
}

static inline uint64_t fuzz_rng_next(fuzz_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A value in [0, n) (n > 0). */
static inline size_t fuzz_rng_below(fuzz_rng *r, size_t n)
{
    return (size_t)(fuzz_rng_next(r) % n);
}

#endif
