"""
test_echo.py - [endpoint.NAME] protocol = echo (issue 18, item 4): every
message goes back with its opcode, no welcome, no JSON; off unless
configured; auth and the gateway's limits as on every path. Driven by the
independent python3-websockets client (with and without permessage-deflate)
and by hand-made frames.
"""
import asyncio
import os
import random
import socket
import threading
import time

import websockets

from harness import (Gateway, HandshakeError, build_frame, check_config, make_token,
                     sanitized_build, unique_user, upgrade_request, ws_handshake)

ECHO = {'endpoint.echo': {'path': '/echo', 'protocol': 'echo'}}


def test_text_and_binary_come_back_as_they_went():
    with Gateway(dict(ECHO, server={'max_payload': '65536'})) as g:
        url = 'ws://127.0.0.1:%d/echo?token=%s' % (g.port, make_token(unique_user()))

        async def run(compression):
            async with websockets.connect(url, compression=compression,
                                          max_size=1 << 20) as ws:
                got = []
                for m in ['hello', '', 'ünïcødé ✓', 'x' * 5000, b'\x00\x01\xff', b'y' * 40000]:
                    await ws.send(m)
                    got.append(await asyncio.wait_for(ws.recv(), 5))
                return got, ws.response_headers.get('sec-websocket-extensions')
        for comp in (None, 'deflate'):
            got, ext = asyncio.run(run(comp))
            assert got == ['hello', '', 'ünïcødé ✓', 'x' * 5000, b'\x00\x01\xff', b'y' * 40000], \
                [type(x) for x in got]
            assert (ext is not None) == (comp == 'deflate'), ext


def test_no_welcome_auth_and_limits_still_apply():
    with Gateway(dict(ECHO, server={'max_payload': '1024'})) as g:
        ws = ws_handshake(g.port, make_token(unique_user()), path='/echo', read_welcome=False)
        ws.send_text('first')           # the first thing that comes back is its echo
        assert ws.recv_message(5) == (1, b'first')
        ws.send_binary(b'z' * 2000)     # over max_payload: 1009, as on every path
        code, _ = ws.expect_close(5)
        assert code == 1009, code
        try:
            ws_handshake(g.port, None, path='/echo', read_welcome=False)
            raise AssertionError('an echo path without a token was upgraded')
        except HandshakeError as e:
            assert e.status == 401, e.status


def test_echo_takes_no_plugin():
    rc, out, err = check_config(dict(ECHO, **{'endpoint.echo': {
        'path': '/echo', 'protocol': 'echo', 'plugin': 'mcp_stdio'}}))
    assert rc != 0 and 'speaks protocol echo' in err, (rc, out, err)


def _messages(rng):
    """Text (with multi-byte characters, so that a cut may fall inside one)
    and binary messages of sizes around the 16 KiB read and the 64 KiB
    block, each as one frame or as 2-3 fragments."""
    out = []
    for size in [0, 1, 2, 125, 126, 127, 1000, 1024, 4095, 4096, 16370, 16384, 16400,
                 40000, 65536, 70000, 5, 64, 64, 64, 1024, 1024]:
        binary = rng.random() < 0.4
        if binary:
            data = os.urandom(size)
        else:
            text = ''.join(rng.choice('abcé✓x') for _ in range(size // 2))
            data = text.encode('utf-8')[:size]
            while True:                 # whole characters only
                try:
                    data.decode('utf-8')
                    break
                except UnicodeDecodeError:
                    data = data[:-1]
        cuts = sorted(rng.sample(range(1, len(data)), min(2, len(data) - 1))) \
            if len(data) > 2 and rng.random() < 0.3 else []
        pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        frames = b''
        for i, piece in enumerate(pieces):
            op = (2 if binary else 1) if i == 0 else 0
            frames += build_frame(op, piece, fin=i == len(pieces) - 1)
        out.append((2 if binary else 1, data, frames))
    return out


def test_pipelined_frames_cut_anywhere_come_back_whole():
    """Issue 18, item 1: a complete frame is unmasked and echoed where it
    was read, a cut one is assembled. Whatever the cuts (the whole stream in
    one write, or in pieces of 1 byte to 20 KB), every message comes back
    whole, in order, with its opcode."""
    rng = random.Random(18)
    msgs = _messages(rng) * 2
    stream = b''.join(f for _, _, f in msgs)
    with Gateway(dict(ECHO, server={'max_payload': '1048576'})) as g:
        for chunking in ('whole', 'pieces', 'bytes'):
            ws = ws_handshake(g.port, make_token(unique_user()), path='/echo', read_welcome=False)
            ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def send(sock=ws.sock, chunking=chunking):
                if chunking == 'whole':
                    sock.sendall(stream)
                    return
                i = 0
                while i < len(stream):
                    n = 1 if chunking == 'bytes' and i < 300 else rng.randint(1, 20000)
                    sock.sendall(stream[i:i + n])
                    i += n
                    if chunking == 'bytes' or rng.random() < 0.2:
                        time.sleep(0.001)
            t = threading.Thread(target=send)
            t.start()
            for n, (op, data, _) in enumerate(msgs):
                got = ws.recv_message(10)
                assert got == (op, data), (chunking, n, op, len(data), got[0], len(got[1]))
            t.join(10)
            ws.sock.close()


def test_idle_plain_connection_memory():
    """Issue 18, item 2: an idle plain connection holds no read or write
    buffer, no write event, no claims object: at most ~1.3 KiB of the
    worker's RSS each here (2.5 KiB before; the heap part is ~1 KiB, the
    rest the per-user table and libevent's per-descriptor arrays). Not
    under AddressSanitizer, whose redzones and quarantine are the memory."""
    if sanitized_build():
        return
    n = 1000
    with Gateway(dict(ECHO, server={'max_connections': n + 100, 'workers': 1})) as g:
        def rss_kib():
            total = 0
            for pid in g.pids():
                with open('/proc/%d/status' % pid) as f:
                    for line in f:
                        if line.startswith('VmRSS:'):
                            total += int(line.split()[1])
            return total

        def open_idle(count, prefix):
            socks = []
            for i in range(count):
                s = socket.create_connection(('127.0.0.1', g.port))
                s.sendall(upgrade_request('/echo', make_token('%s-%d' % (prefix, i))))
                socks.append(s)
            for s in socks:             # every one really upgraded
                s.settimeout(10)
                data = b''
                while b'\r\n\r\n' not in data:
                    chunk = s.recv(4096)
                    assert chunk, data
                    data += chunk
                assert data.startswith(b'HTTP/1.1 101'), data[:100]
            return socks

        warm = open_idle(50, 'warm')    # code pages and first allocations
        # one echo on each warm connection: the message path's pools exist
        for s in warm:
            s.sendall(build_frame(1, b'warm'))
        for s in warm:
            assert s.recv(64).endswith(b'warm')
        time.sleep(0.3)
        before = rss_kib()
        socks = open_idle(n, 'idle')
        time.sleep(0.5)
        per_conn = (rss_kib() - before) * 1024 / n
        for s in socks + warm:
            s.close()
    assert per_conn < 1.6 * 1024, 'RSS per idle connection %.0f B' % per_conn
