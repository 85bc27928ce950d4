"""Heartbeat: the server pings every interval and drops clients that do not pong."""
import asyncio
import json
import socket
import time

import websockets
from websockets.legacy.client import WebSocketClientProtocol

from harness import (OP_CLOSE, OP_PING, ConnectionEOF, HandshakeError, make_token, run_async,
                     shared_gateway, unique_user, ws_handshake)

INTERVAL_MS = 300


def gw():
    return shared_gateway('hb', sections={'heartbeat': {'interval_ms': INTERVAL_MS},
                                          'auth': {'max_connections_per_user': 1}})


class CountingProtocol(WebSocketClientProtocol):
    """Counts the server's pings (the library answers each with a pong)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.pings_answered = 0

    async def pong(self, data=b''):
        self.pings_answered += 1
        return await super().pong(data)


def test_library_client_stays_connected():
    user = unique_user('hbok')
    mark = gw().mark()

    async def go():
        async with websockets.connect(gw().url(make_token(user)), ping_interval=None,
                                      create_protocol=CountingProtocol) as ws:
            json.loads(await ws.recv())
            await asyncio.sleep(1.8)
            await ws.send(json.dumps({'type': 'ping', 'id': 'alive'}))
            reply = json.loads(await ws.recv())
            return ws.pings_answered, reply
    pings, reply = run_async(go())
    assert reply['type'] == 'pong' and reply['id'] == 'alive', reply
    assert pings >= 3, 'only %d server pings in 1.8 s at %d ms' % (pings, INTERVAL_MS)
    assert all(r.get('user') != user
               for r in gw().logs('websocket_heartbeat_timeout', since=mark))


def test_raw_client_answering_pings_stays():
    ws = ws_handshake(gw().port, make_token(unique_user('hbraw')))
    try:
        times = []
        end = time.monotonic() + 1.6
        while time.monotonic() < end:
            try:
                f = ws.recv_frame(max(0.01, end - time.monotonic()))
            except socket.timeout:
                break
            if f.opcode == OP_PING:
                times.append(time.monotonic())
                ws.send_pong(f.payload)
        assert len(times) >= 3, times
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        median = gaps[len(gaps) // 2]
        assert 0.15 <= median <= 0.6, 'ping spacing %r for a %d ms interval' % (gaps, INTERVAL_MS)
        ws.ping_roundtrip('still-here')
    finally:
        ws.close_cleanly()


def test_silent_client_terminated():
    user = unique_user('hbsilent')
    mark = gw().mark()
    ws = ws_handshake(gw().port, make_token(user))
    t0 = time.monotonic()
    try:
        frames = ws.wait_eof(3 * INTERVAL_MS / 1000 + 2)
    finally:
        ws.close()
    elapsed = time.monotonic() - t0
    ops = [f.opcode for f in frames]
    assert OP_PING in ops, ops
    assert OP_CLOSE not in ops, 'heartbeat timeout should terminate without a close frame'
    assert elapsed <= 3 * INTERVAL_MS / 1000 + 0.5, 'terminated after %.2fs' % elapsed
    gw().wait_log('websocket_heartbeat_timeout', lambda r: r.get('user') == user, since=mark)


def test_data_messages_are_not_pongs():
    user = unique_user('hbdata')
    ws = ws_handshake(gw().port, make_token(user))
    t0 = time.monotonic()
    closed = False
    try:
        while time.monotonic() - t0 < 3:
            try:
                ws.send_json({'type': 'ping', 'id': 'busy'})
                ws.recv_frame(0.1)      # read, never answer control pings
                while True:
                    ws.recv_frame(0.01)
            except socket.timeout:
                continue
            except (ConnectionEOF, OSError):
                closed = True
                break
    finally:
        ws.close()
    assert closed, 'a client that never pongs must be dropped even if it sends messages'
    assert time.monotonic() - t0 <= 3 * INTERVAL_MS / 1000 + 0.5


def test_slot_released_after_heartbeat_timeout():
    user = unique_user('hbslot')
    mark = gw().mark()
    silent = ws_handshake(gw().port, make_token(user))
    try:
        try:
            ws_handshake(gw().port, make_token(user)).close()
            raise AssertionError('second connection of a limit-1 user was accepted')
        except HandshakeError as e:
            assert e.status == 429, e.status
        silent.wait_eof(3)
    finally:
        silent.close()
    gw().wait_log('websocket_heartbeat_timeout', lambda r: r.get('user') == user, since=mark)
    ws = ws_handshake(gw().port, make_token(user))
    try:
        ws.ping_roundtrip('reconnected')
    finally:
        ws.close_cleanly()


def test_slow_pong_within_interval_is_fine():
    # Answering each ping only just before the next one is still alive.
    ws = ws_handshake(gw().port, make_token(unique_user('hbslow')))
    try:
        end = time.monotonic() + 1.5
        pending = None
        while time.monotonic() < end:
            try:
                f = ws.recv_frame(0.05)
                if f.opcode == OP_PING:
                    pending = (time.monotonic(), f.payload)
            except socket.timeout:
                pass
            if pending and time.monotonic() - pending[0] > INTERVAL_MS / 1000 * 0.5:
                ws.send_pong(pending[1])
                pending = None
        if pending:
            ws.send_pong(pending[1])
        ws.ping_roundtrip('slow-ok')
    finally:
        ws.close_cleanly()
