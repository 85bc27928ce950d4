# bench/lib.sh - starting and stopping a gateway build for the bench scripts
# (bench/ab, bench/workers, bench/mcp, bench/mcp-http). Source it; set WORK
# (a scratch dir), PORT, and optionally GW_PIN (taskset CPU list for the gateway, default 0) and
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

# ------------------------------------------------------------------ MCP benches
# (bench/mcp, bench/mcp-http) Also set: D (the install-mcp-packages
# directory), NODE, SE (server-everything), SG (supergateway), DRIVER,
# SGPORT, DUR, WARM, NAME (the script's name, for messages). PID, SGPID,
# HOLDS, TOKEN: state, empty at first. Results go to $WORK/results.jsonl.

children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }
comm() { cat /proc/"$1"/comm 2>/dev/null || true; }
descendants() {   # every descendant of $1
    local c
    for c in $(children "$1"); do echo "$c"; descendants "$c"; done
}
gw_worker() {     # the gateway's worker (workers = 1)
    local c
    for c in $(children "$PID"); do [ "$(comm "$c")" = mcpgw ] && { echo "$c"; return; }; done
}
node_kids() {     # node descendants of $1
    local c
    for c in $(descendants "$1"); do [ "$(comm "$c")" = node ] && echo "$c"; done
}
port_free() {     # refuses to measure whatever else listens there
    if (exec 4<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        echo "$NAME: port $1 is in use (set MCPGW_BENCH_PORT)" >&2; exit 1
    fi
}
# mcp_gw_start SESSIONS [more endpoint lines]: the gateway on $PORT with
# [endpoint.everything] = server-everything behind mcp_stdio, pinned to CPU 0
mcp_gw_start() {
    port_free "$PORT"
    EXTRA_INI="[endpoint.everything]
path = /mcp/everything
protocol = jsonrpc
plugin = mcp_stdio
command = $NODE $SE stdio
sessions = $1
${2:-}"
    GW_PIN=0 gw_start "$BUILDDIR"
    [ -n "${TOKEN:-}" ] || TOKEN=$("$BUILDDIR/core/mcpgw" -c "$WORK/conf.d" --mint-token bench --ttl 3600)
}
# sg_start [supergateway options]: supergateway on $SGPORT in front of
# server-everything, pinned to CPU 0, up once /healthz answers
sg_start() {
    # supergateway exits when its stdin closes: a FIFO, held open
    # read-write by this shell on fd 3, never gives it EOF.
    port_free "$SGPORT"
    [ -p "$WORK/sg.stdin" ] || mkfifo "$WORK/sg.stdin"
    [ -e /proc/self/fd/3 ] || exec 3<>"$WORK/sg.stdin"
    taskset -c 0 "$NODE" "$SG" --stdio "$NODE $SE stdio" --port "$SGPORT" "$@" \
        --healthEndpoint /healthz --logLevel none <&3 >>"$WORK/sg.log" 2>&1 &
    SGPID=$!
    for _ in $(seq 1 100); do
        if curl -fs -m 1 "http://127.0.0.1:$SGPORT/healthz" >/dev/null 2>&1; then return 0; fi
        kill -0 "$SGPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$NAME: supergateway did not start" >&2; tail -5 "$WORK/sg.log" >&2; exit 1
}
sg_stop() {
    [ -n "${SGPID:-}" ] || return 0
    local kids
    kids=$(descendants "$SGPID")
    kill -TERM "$SGPID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$SGPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SGPID" $kids 2>/dev/null || true
    wait "$SGPID" 2>/dev/null || true
    SGPID=
}
holds_stop() {
    local p
    for p in ${HOLDS:-}; do kill -TERM "$p" 2>/dev/null || true; done
    for p in ${HOLDS:-}; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    HOLDS=
}
# mcp_cleanup: the EXIT trap of the MCP benches
mcp_cleanup() {
    set +e
    holds_stop
    sg_stop
    [ -n "${PID:-}" ] && kill -KILL "$PID" 2>/dev/null
    exec 3>&- 2>/dev/null
    if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp "$WORK"/results.jsonl "$WORK"/*.log "$OUT"/ 2>/dev/null; fi
    rm -rf "$WORK"
}

# driver LABEL TARGET [driver options]: the SDK driver on CPU 1 against
# TARGET (a URL, or "direct": server-everything over stdio, pinned to CPU 0);
# the JSON line of each phase to results.jsonl, labelled LABEL:PHASE
driver() {
    local t=$1 target=$2 out line
    shift 2
    if [ "$target" = direct ]; then set -- --stdio --stdio-cpu 0 "$@"
    else set -- "$target" --token "${TOKEN:-none}" "$@"; fi
    out=$(cd "$D" && timeout $((DUR * 4 + WARM + 60)) taskset -c 1 "$NODE" "$DRIVER" "$@" \
        2>>"$WORK/driver.log" | grep '"phase"') || true
    [ -n "$out" ] || echo "$NAME: $t: no result (see driver.log)" >&2
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        echo "{\"label\":\"$t:$(echo "$line" | sed 's/.*"phase":"\([^"]*\)".*/\1/')\",\"r\":$line}" \
            >> "$WORK/results.jsonl"
    done <<< "$out"
}
# hold N URL [driver options]: opens N sessions in the background; returns
# once they are up
hold() {
    local n=$1 url=$2 f=$WORK/hold.$RANDOM
    shift 2
    (cd "$D" && exec timeout 600 taskset -c 1 "$NODE" "$DRIVER" "$url" --token "${TOKEN:-none}" \
        --hold "$n" --hold-seconds 300 --timeout 60 "$@") >"$f" 2>>"$WORK/driver.log" &
    HOLDS="${HOLDS:-} $!"
    for _ in $(seq 1 $((n * 10 + 300))); do   # bounded: 1 s per session + 30 s
        grep -q '"ready":true' "$f" 2>/dev/null && break
        sleep 0.1
    done
    if ! grep -q '"ready":true,"n":'"$n"',"open":'"$n" "$f"; then
        echo "$NAME: hold $n on $url: not all sessions opened: $(head -c 300 "$f")" >&2
        return 1
    fi
}
