# bench/lib.sh - starting and stopping a gateway build for the bench scripts
# (bench/ab, bench/workers). Source it; set WORK (a scratch dir), PORT, and
# optionally GW_PIN (taskset CPU list for the gateway, default 0) and
# EXTRA_INI (more configuration lines). Loopback only; waits are bounded.

gw_start() {   # builddir
    rm -rf "$WORK/conf.d"; mkdir -p "$WORK/conf.d"
    # the build's own bench configuration (an older build may not know
    # every key of this tree's)
    if [ -d "$1/bench/conf.d" ]; then cp "$1"/bench/conf.d/*.ini "$WORK/conf.d/"
    else cp "$SRCDIR"/bench/conf.d/*.ini "$WORK/conf.d/"; fi
    printf '[server]\nlisten = 127.0.0.1:%s\n[plugins]\ndir = %s\n%s\n' "$PORT" \
        "$1/plugins/.libs" "${EXTRA_INI:-}" > "$WORK/conf.d/90-run.ini"
    taskset -c "${GW_PIN:-0}" "$1/core/mcpgw" -c "$WORK/conf.d" 2>>"$WORK/gw.log" &
    PID=$!
    for _ in $(seq 1 100); do
        # (the supervisor's sockets queue connections until the workers serve)
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            sleep 0.2
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: $1/core/mcpgw did not start:" >&2
    tail -5 "$WORK/gw.log" >&2
    exit 1
}

gw_stop() {
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=; sleep 0.3
}
