#!/bin/sh
# fuzz/run.sh - runs libFuzzer targets for a bounded time (what `make fuzz`
# and scripts/fuzz call). One summary line per target; exits 1 if any target
# crashed, leaked, timed out or broke an invariant (libFuzzer exits non-zero).
#
# Usage: fuzz/run.sh BUILDDIR SRCDIR TARGET...   (TARGET: ws_frame, http, ...)
# Environment: FUZZ_SECONDS (default 60) per target; FUZZ_ARGS extra
# libFuzzer flags. Seeds are read from SRCDIR/fuzz/corpus/TARGET (never
# written); new inputs go to BUILDDIR/fuzz/work/TARGET, crash inputs to
# BUILDDIR/fuzz/artifacts/TARGET/, the full log to BUILDDIR/fuzz/TARGET.log.
set -u
builddir=$1
srcdir=$2
shift 2
seconds=${FUZZ_SECONDS:-60}
status=0
# Stacks for UBSan reports too (the build makes UB fatal).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

for t in "$@"; do
    prog=$builddir/fuzz/fuzz_$t
    work=$builddir/fuzz/work/$t
    art=$builddir/fuzz/artifacts/$t
    log=$builddir/fuzz/$t.log
    mkdir -p "$work" "$art"
    set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/"
    [ -f "$srcdir/fuzz/$t.dict" ] && set -- "$@" -dict="$srcdir/fuzz/$t.dict"
    if [ "$t" = dispatch ]; then
        # Run the gateway's logging too, with its lines sent to /dev/null
        # (libFuzzer keeps its own output and the sanitizer reports).
        set -- "$@" -close_fd_mask=2
        export MCPGW_FUZZ_LOG_LEVEL=debug
    fi
    # shellcheck disable=SC2086
    "$prog" "$@" ${FUZZ_ARGS:-} "$work" "$srcdir/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    unset MCPGW_FUZZ_LOG_LEVEL
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    if [ $rc -eq 0 ]; then
        printf 'fuzz_%-9s ok     %8s execs  %6s/s  cov %-5s corpus %-5s (+%s new)  %ss\n' \
            "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${corp:-?}" "${new:-0}" "$seconds"
    else
        status=1
        # shellcheck disable=SC2012
        crash=$(ls -t "$art" 2>/dev/null | head -1)
        what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)[^(]*|runtime error: .*|fuzz invariant failed: .*' "$log" | head -1)
        printf 'fuzz_%-9s FAILED rc=%s %s  input: %s\n' "$t" "$rc" "${what:-see log}" \
            "${crash:+$art/$crash}"
        echo "---- last lines of $log:"
        grep -vE '^(#[0-9]+|INFO:|MS:|stat::|Done [0-9]+ runs|\{"level")' "$log" | tail -40 | sed 's/^/    /'
        echo "---- reproduce: $prog $art/$crash"
    fi
done
exit $status
