"""A large broadcast to many context-takeover connections (issue 15, item 9).

With `[compression] server_no_context_takeover = false` every connection
keeps its own deflate stream, and a broadcast used to be deflated once per
recipient on the event loop: three 1 MB agent_status messages to 200
listeners froze the loop for seconds. A broadcast is now compressed once
(from an empty window, which RFC 7692 7.2.1 allows even with context
takeover) and the connection's own stream restarts before its next message.

These tests check that the loop keeps answering pings meanwhile, that every
listener (python3-websockets, which inflates with context takeover, and a
raw client with one zlib stream per connection) decodes every message, in
order, and that a connection's own compressed replies stay decodable around
shared broadcast frames."""
import asyncio
import json
import os
import random
import select
import subprocess
import sys
import time
import zlib

import websockets

from harness import (OP_PONG, OP_TEXT, Gateway, assert_healthy, make_token, unique_user,
                     ws_handshake)

LISTENERS = 200
UPDATES = 3
STATUS_BYTES = 900_000          # the update must stay under max_payload (1 MiB)
MAX_RTT_S = 1.0

TAKEOVER = {'compression': {'server_no_context_takeover': 'false'}}


def _status(seed, n=STATUS_BYTES):
    """A ~n-byte status, compressible like a log (deflate takes ~30 ms for
    it, so deflating it once per recipient is seconds for 200)."""
    rnd = random.Random(seed)
    names = ('agent', 'status', 'running', 'idle')
    out, size, i = [], 0, 0
    while size < n:
        w = 'step %06d tool=%s state=ok; ' % (i, rnd.choice(names))
        out.append(w)
        size += len(w)
        i += 1
    return ('%d:' % seed + ''.join(out))[:n]


def _cpu_seconds(pids):
    tck = os.sysconf('SC_CLK_TCK')
    total = 0
    for pid in pids:
        try:
            with open('/proc/%d/stat' % pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            total += int(fields[11]) + int(fields[12])      # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / tck


# ------------------------------------------------------------------ pinger

def _pinger_main(port):
    """Runs in its own process (so the listeners' Python work cannot delay
    it): pings the gateway every 20 ms on a plain connection, and when a
    line arrives on stdin prints {"n", "max", "p50"} of the round trips."""
    ws = ws_handshake(port, make_token(unique_user('pinger')))
    rtts, seq, lost = [], 0, None
    print('ready', flush=True)
    while not select.select([sys.stdin], [], [], 0.02)[0]:
        if lost:
            continue
        seq += 1
        want = b'%d' % seq
        t0 = time.monotonic()
        try:
            ws.send_ping(want)
            while True:         # broadcasts arrive here too: skip them
                f = ws.recv_frame(timeout=60)
                if f.opcode == OP_PONG and f.payload == want:
                    break
        except Exception as e:  # the gateway went away: say so at the end
            lost = '%s: %s' % (type(e).__name__, e)
            rtts.append(time.monotonic() - t0)
            continue
        rtts.append(time.monotonic() - t0)
    rtts.sort()
    print(json.dumps({'n': len(rtts), 'max': rtts[-1] if rtts else None,
                      'p50': rtts[len(rtts) // 2] if rtts else None, 'lost': lost}),
          flush=True)
    ws.close()


def _start_pinger(port):
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), 'pinger', str(port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    assert line == 'ready', 'pinger did not start: %r' % line
    return p


def _stop_pinger(p):
    out, _ = p.communicate('stop\n', timeout=30)
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------ tests

def burst(g, listeners=LISTENERS, updates=UPDATES, status_bytes=STATUS_BYTES):
    """Connects `listeners` python3-websockets clients offering
    permessage-deflate (context takeover unless the gateway refuses it) and a
    pinger; one sender sends `updates` agent_status messages of
    `status_bytes`; every listener must receive them intact and in order.
    Returns {"cpu": the gateway's CPU seconds from the first send to the
    last delivery, "wall": seconds for the same, "rtt": the pinger's
    {"n", "max", "p50"}}."""
    statuses = [_status(k, status_bytes) for k in range(updates)]
    pinger = _start_pinger(g.port)
    try:
        async def listener(i, started, results):
            ws = await websockets.connect(g.url(make_token(unique_user('l%d' % i))),
                                          max_size=2 ** 21, compression='deflate')
            try:
                ext = ws.response_headers.get('sec-websocket-extensions') or ''
                assert ext.startswith('permessage-deflate'), ext
                await ws.recv()                         # welcome
                started()
                for k in range(updates):
                    m = json.loads(await ws.recv())
                    assert m['type'] == 'agent_status_update', m['type']
                    assert m['agentId'] == 'bulk-%d' % k, (i, k, m['agentId'])
                    assert m['status'] == statuses[k], (i, k, len(m['status']))
                results[i] = ext
            finally:
                await ws.close()

        async def run():
            results = {}
            ready = asyncio.Event()
            n_started = 0

            def started():
                nonlocal n_started
                n_started += 1
                if n_started == listeners:
                    ready.set()

            tasks = []
            for i in range(listeners):
                tasks.append(asyncio.create_task(listener(i, started, results)))
                if i % 25 == 24:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(ready.wait(), 30)
            sender = await websockets.connect(g.url(make_token(unique_user('sender'))),
                                              max_size=2 ** 21, compression=None)
            await sender.recv()                         # welcome
            cpu0, t0 = _cpu_seconds(g.pids()), time.monotonic()
            for k in range(updates):
                await sender.send(json.dumps({'type': 'agent_status', 'id': k,
                                              'agentId': 'bulk-%d' % k,
                                              'status': statuses[k]}))
            await asyncio.wait_for(asyncio.gather(*tasks), 45)
            cpu1, t1 = _cpu_seconds(g.pids()), time.monotonic()
            acks = 0
            while acks < updates:                       # the sender's own copies too
                m = json.loads(await sender.recv())
                acks += m['type'] == 'agent_status_ack'
            await sender.close()
            return results, cpu1 - cpu0, t1 - t0

        results, cpu, wall = asyncio.run(asyncio.wait_for(run(), 55))
    finally:
        rtt = _stop_pinger(pinger)
    assert len(results) == listeners, len(results)
    return {'cpu': cpu, 'wall': wall, 'rtt': rtt, 'extensions': set(results.values())}


def test_large_broadcast_to_200_takeover_listeners_keeps_the_loop_responsive():
    with Gateway(dict(TAKEOVER, server={'workers': '1'}, log={'level': 'info'})) as g:
        r = burst(g)
        print('    %d listeners x %d updates of %d bytes: server CPU %.2fs, wall %.2fs, '
              'ping RTT max %.3fs p50 %.3fs (%d pings)'
              % (LISTENERS, UPDATES, STATUS_BYTES, r['cpu'], r['wall'], r['rtt']['max'],
                 r['rtt']['p50'], r['rtt']['n']))
        for ext in r['extensions']:                     # context takeover, every one
            assert 'server_no_context_takeover' not in ext, ext
        assert r['rtt']['max'] < MAX_RTT_S, 'the loop stalled: ping RTT %.2fs' % r['rtt']['max']
        assert_healthy(g)


def _batch(tag, n=20):
    """A batch whose response (the pongs echo the ids) is compressed with
    the connection's own context and back-references its previous one."""
    return json.dumps({'type': 'batch', 'id': tag, 'messages': [
        {'type': 'ping', 'id': 'ping-%02d-%s' % (i, 'x' * 80)} for i in range(n)]})


def test_own_context_stays_consistent_around_shared_broadcast_frames():
    """Direct replies (the connection's own deflate stream, context taken
    over), broadcasts (one shared frame from an empty window) and direct
    replies again, interleaved: python3-websockets and a raw client with one
    long-lived zlib inflater must decode all of them, in order."""
    for bits in ('10', '15'):
        conf = {'compression': {'server_no_context_takeover': 'false',
                                'server_max_window_bits': bits}}
        with Gateway(conf) as g:
            raw = ws_handshake(g.port, make_token(unique_user('raw')),
                               headers={'Sec-WebSocket-Extensions': 'permessage-deflate'})
            ext = raw.headers['sec-websocket-extensions']
            assert 'server_no_context_takeover' not in ext, ext
            inflater = zlib.decompressobj(-int(bits))
            compressed = []

            def raw_message():
                f = raw.recv_frame(10)
                assert f.opcode == OP_TEXT and f.fin, f[:3]
                payload = f.payload
                if f.rsv & 4:
                    compressed.append(len(payload))
                    payload = inflater.decompress(payload + b'\x00\x00\xff\xff')
                return json.loads(payload)

            async def run():
                async with websockets.connect(g.url(make_token(unique_user('wsl'))),
                                              max_size=2 ** 21) as ws:
                    ext = ws.response_headers['sec-websocket-extensions']
                    assert 'server_no_context_takeover' not in ext, ext
                    await ws.recv()
                    for round_ in range(3):
                        # two direct replies: the second back-references the first
                        for rep in range(2):
                            tag = 'b%d-%d' % (round_, rep)
                            await ws.send(_batch(tag))
                            raw.send_text(_batch(tag))
                            m = json.loads(await ws.recv())
                            assert m['type'] == 'batch_response' and m['id'] == tag, m
                            assert len(m['responses']) == 20
                            m = raw_message()
                            assert m['type'] == 'batch_response' and m['id'] == tag, m
                        # a broadcast (one shared frame), from each side in turn
                        status = _status(100 + round_, 3000 + 5000 * round_)
                        msg = json.dumps({'type': 'agent_status', 'id': round_,
                                          'agentId': 'mix', 'status': status})
                        if round_ % 2:
                            raw.send_text(msg)
                        else:
                            await ws.send(msg)
                        for recv in (ws.recv, None):
                            sender = (recv is None) == bool(round_ % 2)
                            m = json.loads(await recv()) if recv else raw_message()
                            assert m['type'] == 'agent_status_update', m['type']
                            assert m['status'] == status
                            if sender:
                                m = json.loads(await recv()) if recv else raw_message()
                                assert m['type'] == 'agent_status_ack', m['type']
            asyncio.run(asyncio.wait_for(run(), 30))
            # replies and broadcasts both came compressed
            assert len(compressed) >= 9, compressed
            raw.close_cleanly()
            assert_healthy(g)


if __name__ == '__main__' and len(sys.argv) == 3 and sys.argv[1] == 'pinger':
    _pinger_main(int(sys.argv[2]))
