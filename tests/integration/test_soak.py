"""A bounded soak: for MCPGW_SOAK_SECONDS (default 8; run longer locally,
e.g. MCPGW_SOAK_SECONDS=300 tests/run soak), 24 workers open and close
connections with mixed traffic while some misbehave: garbage frames,
oversized messages, slow readers, abrupt disconnects mid-frame, bad tokens,
a user's sixth connection, half-sent handshakes. Each abuse must get its
answer. Afterwards the gateway still answers, its open file descriptors and
RSS are back near where they started, every per-user slot is free, and the
log counted each rejection. Prints the before/after figures."""
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness import (OP_TEXT, ConnectionEOF, Gateway, build_frame, connect, http_request,
                     make_token, upgrade_request, wait_until, ws_handshake)

from test_hardening import _rss_kib, _sanitized  # noqa: E402

SECONDS = float(os.environ.get('MCPGW_SOAK_SECONDS', '8'))
WORKERS = 24
USERS = ['soak-%d' % i for i in range(8)]


def _fds(g):
    """Open descriptors of the whole gateway (supervisor and workers)."""
    return sum(len(os.listdir('/proc/%d/fd' % pid)) for pid in g.pids())


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []

    def add(self, what, ok=True, detail=''):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1
            if not ok:
                self.failures.append('%s: %s' % (what, detail))


def normal(g, rng, tally):
    user = rng.choice(USERS)
    try:
        ws = ws_handshake(g.port, make_token(user))
    except AssertionError as e:
        # Another worker may hold this user's five slots right now.
        tally.add('normal_limited', '429' in str(e), str(e)[:200])
        return
    try:
        for i in range(rng.randint(1, 6)):
            kind = rng.choice(['ping', 'batch', 'agent', 'unknown'])
            if kind == 'ping':
                ws.send_json({'type': 'ping', 'id': i})
                want = 'pong'
            elif kind == 'batch':
                ws.send_json({'type': 'batch', 'id': i, 'messages': [
                    {'type': 'ping', 'id': 'a'}, {'type': 'nope', 'id': 'b'}]})
                want = 'batch_response'
            elif kind == 'agent':
                ws.send_json({'type': 'agent_status', 'id': i, 'agentId': user, 'status': 'ok'})
                want = 'agent_status_ack'
            else:
                ws.send_json({'type': 'nope', 'id': i})
                want = 'error'
            while True:     # broadcasts from other workers may come first
                m = ws.recv_json(timeout=10)
                if m['type'] == want and m.get('id') == i:
                    break
        tally.add('normal')
    finally:
        ws.close_cleanly()


def garbage(g, rng, tally):
    ws = ws_handshake(g.port, make_token('abuser-garbage'))
    ws.send_raw(build_frame(OP_TEXT, b'x' * rng.randint(1, 200), mask=False))
    try:
        code, _ = ws.expect_close(10)
        tally.add('garbage', code == 1002, code)
    except ConnectionEOF:
        tally.add('garbage', False, 'no close frame')
    ws.close()


def oversized(g, rng, tally):
    ws = ws_handshake(g.port, make_token('abuser-big'))
    ws.send_raw(build_frame(OP_TEXT, b'{' + b' ' * 70000 + b'}'))
    try:
        code, _ = ws.expect_close(10)
        tally.add('oversized', code == 1009, code)
    except (ConnectionEOF, OSError):
        tally.add('oversized', False, 'no close frame')
    ws.close()


def big_batch(g, rng, tally):
    ws = ws_handshake(g.port, make_token('abuser-batch'))
    try:
        n = rng.choice([101, 500])
        ws.send_json({'type': 'batch', 'id': 'big', 'messages': [{'type': 'ping', 'id': i}
                                                                 for i in range(n)]})
        while True:
            m = ws.recv_json(timeout=10)
            if m.get('id') == 'big' or m['type'] == 'error':
                break
        tally.add('big_batch', m['type'] == 'error' and 'limit 100' in m.get('error', ''), m)
    finally:
        ws.close_cleanly()


def slow_reader(g, rng, tally):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(('127.0.0.1', g.port))
    s.sendall(upgrade_request('/ws', make_token('abuser-slow')))
    time.sleep(rng.uniform(0.2, 1.0))     # reads nothing meanwhile
    s.close()
    tally.add('slow_reader')


def abrupt(g, rng, tally):
    ws = ws_handshake(g.port, make_token('abuser-abrupt'))
    frame = build_frame(OP_TEXT, b'{"type":"ping","id":1}' * 20)
    ws.send_raw(frame[:rng.randint(1, len(frame) - 1)])
    ws.abort()
    tally.add('abrupt')


def bad_token(g, rng, tally):
    status, _, body = http_request(g.port, upgrade_request('/ws', make_token('x', secret='wrong')))
    tally.add('bad_token', (status, body) == (401, b'Unauthorized: Invalid token'), status)


def sixth(g, rng, tally):
    user = 'abuser-sixth-%d' % threading.get_ident()
    held = []
    try:
        for _ in range(5):
            held.append(ws_handshake(g.port, make_token(user)))
        status, _, body = http_request(g.port, upgrade_request('/ws', make_token(user)))
        tally.add('sixth', (status, body) == (429, b'Too Many Connections'), status)
    finally:
        for ws in held:
            ws.close_cleanly()


def half_handshake(g, rng, tally):
    s = connect(g.port)
    s.sendall(b'GET /ws HTTP/1.1\r\nHost: x\r\n')
    s.settimeout(5)
    try:
        tally.add('half_handshake', s.recv(10) == b'', 'not closed')
    except socket.timeout:
        tally.add('half_handshake', False, 'not closed within 5 s')
    s.close()


BEHAVIOURS = [(normal, 10), (garbage, 1), (oversized, 1), (big_batch, 1), (slow_reader, 1),
              (abrupt, 1), (bad_token, 1), (sixth, 1), (half_handshake, 1)]


def worker(g, seed, deadline, tally):
    rng = random.Random(seed)
    fns = [fn for fn, weight in BEHAVIOURS for _ in range(weight)]
    while time.monotonic() < deadline:
        fn = rng.choice(fns)
        try:
            fn(g, rng, tally)
        except Exception as e:      # noqa: BLE001 - any failure is counted
            tally.add(fn.__name__, False, repr(e)[:200])


def test_soak():
    with Gateway({'server': {'max_payload': 65536, 'max_outbound_bytes': 65536,
                             'handshake_timeout_ms': 500},
                  'heartbeat': {'interval_ms': 1000},
                  'log': {'level': 'info'}}) as g:
        warm = ws_handshake(g.port, make_token('warmup'))
        warm.ping_roundtrip('warm')
        warm.close_cleanly()
        time.sleep(0.3)
        fds0, rss0 = _fds(g), _rss_kib(g)

        tally = Tally()
        deadline = time.monotonic() + SECONDS
        with ThreadPoolExecutor(WORKERS) as pool:
            for i in range(WORKERS):
                pool.submit(worker, g, i, deadline, tally)

        # Everything the workers opened is gone again.
        wait_until(lambda: _fds(g) <= fds0 + 2, timeout=10, what='fds back to %d' % fds0)
        fds1, rss1 = _fds(g), _rss_kib(g)
        print('  soak %.0fs: %s' % (SECONDS, ', '.join('%s=%d' % kv for kv in
                                                       sorted(tally.counts.items()))))
        print('  soak figures: fds %d -> %d, RSS %d KiB -> %d KiB' % (fds0, fds1, rss0, rss1))
        assert not tally.failures, tally.failures[:10]
        assert tally.counts.get('normal', 0) > 0 and tally.counts.get('sixth', 0) > 0, tally.counts
        if not _sanitized():    # a sanitizer build keeps freed memory in quarantine
            assert rss1 - rss0 < 16 * 1024, (rss0, rss1)

        # Every slot is free: each user can open five connections again.
        for user in USERS + ['abuser-garbage', 'abuser-slow', 'abuser-batch']:
            held = [ws_handshake(g.port, make_token(user)) for _ in range(5)]
            held[0].ping_roundtrip('after-soak')
            for ws in held:
                ws.close_cleanly()

        # The log counted each rejection we caused.
        def rejections(reason):
            return [r for r in g.logs('websocket_auth_failed') if r.get('reason') == reason]
        wait_until(lambda: len(rejections('bad_signature')) >= tally.counts.get('bad_token', 0),
                   what='every bad token logged')
        failed = g.logs('websocket_auth_failed')
        bad = [r for r in failed if r.get('reason') == 'bad_signature']
        assert len(bad) == tally.counts.get('bad_token', 0), (len(bad), tally.counts)
        limited = [r for r in failed if r.get('reason') == 'connection_limit']
        assert len(limited) >= tally.counts.get('sixth', 0), (len(limited), tally.counts)
        timeouts = [r for r in g.logs('http_request_rejected')
                    if r.get('reason') == 'handshake_timeout']
        assert len(timeouts) >= tally.counts.get('half_handshake', 0), len(timeouts)
        assert g.alive()
