/*
 * replay.c - runs fuzz inputs through a fuzz target without libFuzzer.
 *
 * Linked with one fuzz_*.c into fuzz/replay_* in every build (not only
 * with --enable-fuzzing), so the checked-in corpus, the regress-* inputs of
 * fixed bugs included, is a regression test under gcc, the sanitizer build
 * and valgrind alike. A crash or a broken invariant aborts (the test then
 * fails); otherwise the output ends with "N passed, 0 failed" (tests/run
 * counts it).
 *
 * Usage: fuzz/replay_TARGET [FILE|DIR]...   (default: the target's corpus
 * directory in the source tree, MCPGW_FUZZ_CORPUS).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

#ifndef MCPGW_FUZZ_CORPUS
#define MCPGW_FUZZ_CORPUS "."
#endif

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL, *copy;
    size_t len = 0, cap = 0, n;

    if (!f) {
        perror(path);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    /* An exact-size copy, as libFuzzer gives, so over-reads are caught. */
    copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path, int *passed, int *failed)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;

    if (stat(path, &st) != 0) {
        perror(path);
        (*failed)++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (run_file(path) == 0) {
            printf("ok   %s\n", path);
            (*passed)++;
        } else {
            (*failed)++;
        }
        return;
    }
    d = opendir(path);
    if (!d) {
        perror(path);
        (*failed)++;
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        if (!names)
            abort();
        names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
        if (!names[n])
            abort();
        sprintf(names[n], "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp);
    for (size_t i = 0; i < n; i++) {
        fflush(stdout);
        run_path(names[i], passed, failed);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;

    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    if (argc < 2)
        run_path(MCPGW_FUZZ_CORPUS, &passed, &failed);
    for (int i = 1; i < argc; i++)
        run_path(argv[i], &passed, &failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
