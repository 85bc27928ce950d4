#!/usr/bin/python3
"""Tiny raw JSON-RPC 2.0 client for an MCP-over-WebSocket endpoint.

Uses Debian 12's python3-websockets (10.4: asyncio API only; the sync client
appeared in websockets 12). Run it with /usr/bin/python3 (a pyenv python3 on
PATH lacks the module).

  /usr/bin/python3 raw_client.py URL [--token T] [--token-in query|header]
                   [--batch expect|expect-error|expect-none|skip] [--timeout S]

Connects with subprotocol "mcp" (URL?token=T by default), then sends
  1 initialize, notifications/initialized, 2 tools/list,
  a batch array [3 ping, 4 tools/call echo]
and prints every frame received. Unsolicited notifications are printed and
skipped. --batch expect: responses for ids 3 and 4, either as one array frame
or as separate frames (the framing is reported); expect-error: a JSON-RPC
error (e.g. -32600, batches were removed from MCP in 2025-06-18);
expect-none: no answer within --timeout (what server-everything itself does:
its SDK drops a batch silently), then a plain ping (id 5) must still be
answered; skip: send no batch. Exit status: 0 ok, 1 mismatch/timeout, 2 usage or connect error.
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.parse

import websockets

PROTOCOL_VERSION = "2025-06-18"


class Mismatch(Exception):
    pass


def show(direction, obj):
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    if len(text) > 300:
        text = text[:300] + "...(%d chars)" % len(text)
    print("%s %s" % (direction, text), flush=True)


async def recv_until(ws, want_ids, deadline, partial_ok=False):
    """Read frames until responses for all want_ids are seen.

    Returns (responses by id, list of frame kinds: 'array' or 'single')."""
    got, frames = {}, []
    while not want_ids <= set(got):
        left = deadline - time.monotonic()
        if left <= 0:
            if partial_ok:
                return got, frames
            raise Mismatch("timeout waiting for ids %s (got %s)" % (sorted(want_ids - set(got)), sorted(got)))
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=left)
        except asyncio.TimeoutError:
            continue
        show("<-", raw)
        try:
            msg = json.loads(raw)
        except ValueError:
            raise Mismatch("non-JSON frame")
        items = msg if isinstance(msg, list) else [msg]
        frames.append("array" if isinstance(msg, list) else "single")
        for m in items:
            if not isinstance(m, dict) or m.get("jsonrpc") != "2.0":
                raise Mismatch("not a JSON-RPC 2.0 message: %r" % (m,))
            if "method" in m:
                continue  # notification or server->client request: skip
            if m.get("id") is None and "error" in m and not partial_ok:
                raise Mismatch("error response with id null: %r" % (m.get("error"),))
            if "id" not in m or not ("result" in m or "error" in m):
                raise Mismatch("malformed response: %r" % (m,))
            got[m["id"]] = m
    return got, frames


async def run(opts):
    url = opts.url
    headers = {}
    if opts.token:
        if opts.token_in == "query":
            parts = urllib.parse.urlsplit(url)
            q = urllib.parse.parse_qsl(parts.query) + [("token", opts.token)]
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
        else:
            headers["Authorization"] = "Bearer " + opts.token
    t = opts.timeout
    try:
        ws = await asyncio.wait_for(
            websockets.connect(url, subprotocols=["mcp"], extra_headers=headers,
                               open_timeout=t, close_timeout=2, max_size=16 * 1024 * 1024),
            timeout=t + 1)
    except Exception as e:  # InvalidStatusCode, OSError, timeout...
        print("connect failed: %s: %s" % (type(e).__name__, e), flush=True)
        return 2
    try:
        print("connected, subprotocol=%r" % (ws.subprotocol,), flush=True)
        if ws.subprotocol != "mcp":
            raise Mismatch("subprotocol %r, want 'mcp'" % (ws.subprotocol,))

        async def send(obj):
            show("->", obj)
            await ws.send(json.dumps(obj))

        deadline = lambda: time.monotonic() + t  # noqa: E731

        await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "mcpgw-raw-client", "version": "1.0.0"}}})
        got, _ = await recv_until(ws, {1}, deadline())
        res = got[1].get("result") or {}
        if "error" in got[1] or "serverInfo" not in res or "protocolVersion" not in res:
            raise Mismatch("bad initialize response")

        await send({"jsonrpc": "2.0", "method": "notifications/initialized"})

        await send({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        got, _ = await recv_until(ws, {2}, deadline())
        names = [x.get("name") for x in (got[2].get("result") or {}).get("tools", [])]
        print("tools: %s" % " ".join(names), flush=True)
        if "echo" not in names:
            raise Mismatch("tools/list lacks echo")

        if opts.batch != "skip":
            text = "batch-echo \u00e9\u2713"
            await send([{"jsonrpc": "2.0", "id": 3, "method": "ping"},
                        {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                         "params": {"name": "echo", "arguments": {"message": text}}}])
            if opts.batch == "expect":
                got, frames = await recv_until(ws, {3, 4}, deadline())
                print("batch answered, frames: %s" % ",".join(frames), flush=True)
                if got[3].get("result") != {}:
                    raise Mismatch("ping result %r" % (got[3],))
                content = (got[4].get("result") or {}).get("content") or [{}]
                if content[0].get("text") != "Echo: " + text:
                    raise Mismatch("echo result %r" % (got[4],))
            elif opts.batch == "expect-none":
                got, frames = await recv_until(ws, {3, 4}, deadline(), partial_ok=True)
                if got:
                    raise Mismatch("batch was answered (ids %s, frames %s), expected no answer"
                                   % (sorted(got), ",".join(frames)))
                print("batch not answered within %gs (as expected)" % t, flush=True)
                await send({"jsonrpc": "2.0", "id": 5, "method": "ping"})
                got, _ = await recv_until(ws, {5}, deadline())
                if got[5].get("result") != {}:
                    raise Mismatch("ping after batch: %r" % (got[5],))
            else:  # expect-error: any error response (id may be null)
                end = deadline()
                while True:
                    if time.monotonic() >= end:
                        raise Mismatch("no error response to the batch")
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=end - time.monotonic())
                    except asyncio.TimeoutError:
                        continue
                    show("<-", raw)
                    msg = json.loads(raw)
                    items = msg if isinstance(msg, list) else [msg]
                    if any(isinstance(m, dict) and "error" in m for m in items):
                        print("batch rejected with an error response", flush=True)
                        break
                    if any(isinstance(m, dict) and "result" in m for m in items):
                        raise Mismatch("batch was answered, expected an error")
        print("OK", flush=True)
        return 0
    except Mismatch as e:
        print("MISMATCH: %s" % e, flush=True)
        return 1
    except websockets.exceptions.ConnectionClosed as e:
        print("MISMATCH: connection closed: %s" % e, flush=True)
        return 1
    finally:
        try:
            await asyncio.wait_for(ws.close(), timeout=3)
        except Exception:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--token")
    ap.add_argument("--token-in", choices=["query", "header"], default="query")
    ap.add_argument("--batch", choices=["expect", "expect-error", "expect-none", "skip"], default="expect")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (default 10)")
    opts = ap.parse_args()
    try:
        rc = asyncio.run(asyncio.wait_for(run(opts), timeout=opts.timeout * 5 + 10))
    except asyncio.TimeoutError:
        print("MISMATCH: global timeout", flush=True)
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
