#!/bin/bash
# Validates driver.mjs and raw_client.py without mcpgw:
#   1. against supergateway (stdio -> WebSocket bridge, path /mcp/everything)
#      running @modelcontextprotocol/server-everything;
#   2. against server-everything spawned directly (driver.mjs --stdio).
# Loopback only; every wait is bounded. Usage: tests/mcp/validate.sh [PORT]
set -u
cd "$(dirname "$0")"
PORT=${1:-8999}
URL="ws://127.0.0.1:$PORT/mcp/everything"
SE=node_modules/@modelcontextprotocol/server-everything/dist/index.js

if [ ! -d node_modules ]; then
    timeout 300 npm ci --no-audit --no-fund || { echo "npm ci failed"; exit 1; }
fi

passed=0 failed=0
check() { # check NAME EXPECTED_RC CMD...
    local name=$1 want=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ]; then passed=$((passed+1)); echo "PASS $name (rc=$rc)"
    else failed=$((failed+1)); echo "FAIL $name (rc=$rc, want $want)"; echo "$out" | cut -c1-400 | sed 's/^/    /'; fi
}

tmp=$(mktemp -d)
sg_pid=
cleanup() {
    if [ -n "$sg_pid" ] && kill -0 "$sg_pid" 2>/dev/null; then
        kill -TERM "$sg_pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$sg_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$sg_pid" 2>/dev/null
    fi
    exec 3>&- 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# supergateway exits when its own stdin closes: give it a FIFO held open
# read-write by this shell (never EOF, no extra process).
mkfifo "$tmp/stdin"
exec 3<>"$tmp/stdin"
node node_modules/supergateway/dist/index.js \
    --stdio "node $SE stdio" --outputTransport ws --port "$PORT" \
    --messagePath /mcp/everything --healthEndpoint /healthz --logLevel none \
    <&3 >"$tmp/sg.log" 2>&1 &
sg_pid=$!
up=
for _ in $(seq 1 100); do
    if curl -fs -m 1 "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$sg_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$up" ]; then echo "supergateway did not come up"; cat "$tmp/sg.log"; exit 1; fi
echo "supergateway pid $sg_pid on $URL"

T="--token dummy.jwt.token"
check "sg: scenarios (all but cancel)" 0 timeout 200 node driver.mjs "$URL" $T \
    --scenario initialize,tools-list,echo,sum,progress,structured,resources,prompts,logging,env,concurrent:100
check "sg: token in Authorization header" 0 timeout 60 node driver.mjs "$URL" $T --token-in header --scenario initialize,echo
# supergateway rewrites request ids to "<uuid>:<id>" but forwards
# notifications/cancelled unchanged, so the server never cancels: the driver
# must see the late response and fail.
check "sg: cancel (known supergateway bug => driver must see a late response)" 0 timeout 60 \
    bash -c 'node driver.mjs "$1" --scenario cancel | grep -q "\"lateResponse\":true"' _ "$URL"
check "sg: cycles 10" 0 timeout 120 node driver.mjs "$URL" $T --cycles 10
check "sg: bench 2s c=4" 0 timeout 60 node driver.mjs "$URL" $T --bench 2 --concurrency 4
check "sg: raw_client (batch silently dropped)" 0 timeout 60 /usr/bin/python3 raw_client.py "$URL" $T --batch expect-none --timeout 3
check "sg: raw_client --batch expect fails" 1 timeout 60 /usr/bin/python3 raw_client.py "$URL" $T --batch expect --timeout 3
check "sg: wrong path refused (HTTP 400)" 0 timeout 30 \
    bash -c 'node driver.mjs "$1" --scenario initialize --timeout 5 | grep -q "Unexpected server response: 400"' _ "ws://127.0.0.1:$PORT/nope"

check "stdio: all scenarios + env allow-list" 0 timeout 200 node driver.mjs --stdio \
    --expect-env-keys HOME,LOGNAME,PATH,SHELL,TERM,USER --forbid-env MCPGW_SECRET
check "stdio: --forbid-env detects a key" 0 timeout 60 \
    bash -c 'node driver.mjs --stdio --scenario env --stdio-env MCPGW_SECRET=x --forbid-env MCPGW_SECRET | grep -q "\"forbiddenPresent\":\[\"MCPGW_SECRET\"\]"'
check "stdio: cycles 3" 0 timeout 120 node driver.mjs --stdio --cycles 3
check "stdio: bench 2s c=4" 0 timeout 60 node driver.mjs --stdio --bench 2 --concurrency 4

echo "validate: $passed passed, $failed failed"
[ "$failed" = 0 ]
