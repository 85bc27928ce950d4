/*
 * unit.h - the tiny unit-test harness shared by tests/unit/test_*.c.
 *
 * TEST(name) defines a test function; RUN(name) runs it; a test fails when
 * any CHECK in it fails. main() ends with UNIT_SUMMARY(), which prints
 * "N passed, M failed" (counting tests, not checks) and returns non-zero if
 * any failed. Each failed CHECK prints file:line and the expression.
 */
#ifndef MCPGW_UNIT_H
#define MCPGW_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_current_failed;

#define TEST(name) static void name(void)

#define CHECK(expr) do { \
    if (!(expr)) { \
        fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
        unit_current_failed = 1; \
    } } while (0)

/* CHECK, and the test ends here if it failed (what follows needs it). */
#define REQUIRE(expr) do { \
    if (!(expr)) { \
        fprintf(stderr, "  %s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #expr); \
        unit_current_failed = 1; \
        return; \
    } } while (0)

#define CHECK_EQ_INT(a, b) do { \
    long long unit_a_ = (long long)(a), unit_b_ = (long long)(b); \
    if (unit_a_ != unit_b_) { \
        fprintf(stderr, "  %s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
                __FILE__, __LINE__, #a, #b, unit_a_, unit_b_); \
        unit_current_failed = 1; \
    } } while (0)

#define CHECK_EQ_STR(a, b) do { \
    const char *unit_a_ = (a), *unit_b_ = (b); \
    if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) { \
        fprintf(stderr, "  %s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", \
                __FILE__, __LINE__, #a, #b, unit_a_ ? unit_a_ : "(null)", \
                unit_b_ ? unit_b_ : "(null)"); \
        unit_current_failed = 1; \
    } } while (0)

#define RUN(name) do { \
    unit_current_failed = 0; \
    name(); \
    if (unit_current_failed) { unit_failed++; printf("FAIL %s\n", #name); } \
    else { unit_passed++; printf("ok   %s\n", #name); } \
    } while (0)

#define UNIT_SUMMARY() \
    (printf("%d passed, %d failed\n", unit_passed, unit_failed), unit_failed ? 1 : 0)

#endif
