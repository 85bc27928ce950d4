"""test_tls_data.py - the TLS transport's data path (issue 11, item 10):
input decrypted straight into the loop's read block, queued frames gathered
into records without the output buffer, and the retry through the output
buffer when the socket (or OpenSSL) cannot take a record. Each case checks
every byte and the order, over the echo endpoint, with python3-websockets
(an independent implementation) and with a hand-made client on an ssl
socket whose receive window is small, so that the server's writes stop
half-way and must resume with the same bytes."""
import asyncio
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

import websockets

from harness import (OP_BINARY, OP_TEXT, Gateway, RawWS, accept_for, make_key, make_token,
                     parse_http_response, unique_user, upgrade_request)

ECHO = {'endpoint.echo': {'path': '/echo', 'protocol': 'echo'}}


def _cert():
    d = tempfile.mkdtemp(prefix='mcpgw-tlsdata-')
    cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
                    '-days', '1', '-subj', '/CN=localhost',
                    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
                   check=True, capture_output=True)
    return cert, key


def _gateway(cert, key, **server):
    sections = dict(ECHO, tls={'cert': cert, 'key': key})
    if server:
        sections['server'] = server
    return Gateway(sections)


def _tls_raw(port, cert, path='/echo', rcvbuf=None, timeout=10):
    """A RawWS over an ssl socket, upgraded on path (no welcome on /echo)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(('127.0.0.1', port))
    ctx = ssl.create_default_context(cafile=cert)
    ss = ctx.wrap_socket(s, server_hostname='localhost')
    key = make_key()
    ss.sendall(upgrade_request(path, make_token(unique_user()), key))
    data = b''
    while b'\r\n\r\n' not in data:
        b = ss.recv(65536)
        assert b, 'closed during the upgrade: %r' % data
        data += b
    sep = data.index(b'\r\n\r\n')
    status, hdrs, _ = parse_http_response(data[:sep + 4])
    assert status == 101, data[:300]
    assert hdrs.get('sec-websocket-accept') == accept_for(key)
    return RawWS(ss, data[sep + 4:], hdrs)


def _payload(i, size):
    """Message i: its number, then bytes that depend on it (a wrong or
    shifted byte anywhere shows)."""
    head = b'%08d:' % i
    seed = hashlib.sha256(head).digest()
    body = (seed * (size // len(seed) + 1))[:max(0, size - len(head))]
    return (head + body)[:size] if size >= len(head) else head[:size]


def test_tls_echo_every_size_both_ways_with_python_websockets():
    """Sizes around the 16 KiB record and the frame-length encodings, text
    and binary, one at a time and then 64 in flight, with permessage-deflate
    (websockets offers it) and without: each echo is the same bytes, in
    order."""
    cert, key = _cert()
    sizes = [0, 1, 125, 126, 127, 1000, 16377, 16378, 16384, 16385, 65535, 65536, 65537,
             200003, 1000000]
    with _gateway(cert, key) as g:
        async def run(compression):
            url = 'wss://localhost:%d/echo?token=%s' % (g.port, make_token(unique_user()))
            ctx = ssl.create_default_context(cafile=cert)
            async with websockets.connect(url, ssl=ctx, max_size=2 ** 21,
                                          compression=compression) as ws:
                ext = ws.response_headers.get('Sec-WebSocket-Extensions') or ''
                assert ('permessage-deflate' in ext) == (compression is not None), ext
                for n in sizes:
                    data = _payload(n, n)
                    await ws.send(data)
                    got = await ws.recv()
                    assert got == data, (n, len(got))
                    text = data.hex()[:n]
                    await ws.send(text)
                    got = await ws.recv()
                    assert got == text, (n, len(got))
                msgs = [_payload(i, 700 + 97 * i) for i in range(64)]
                for m in msgs:
                    await ws.send(m)
                for i, m in enumerate(msgs):
                    got = await ws.recv()
                    assert got == m, (i, got[:12], len(got))
        asyncio.run(asyncio.wait_for(run('deflate'), 60))
        asyncio.run(asyncio.wait_for(run(None), 60))


def test_tls_fragmented_messages_are_reassembled():
    """A message sent in many small frames (each its own TLS record) comes
    back whole."""
    cert, key = _cert()
    with _gateway(cert, key) as g:
        ws = _tls_raw(g.port, cert)
        try:
            data = _payload(7, 50000)
            parts = [data[i:i + 333] for i in range(0, len(data), 333)]
            for k, p in enumerate(parts):
                ws.send_frame(OP_BINARY if k == 0 else 0, p, fin=k == len(parts) - 1)
            op, got = ws.recv_message(timeout=10)
            assert op == OP_BINARY and got == data, (op, len(got))
        finally:
            ws.sock.close()


def test_tls_slow_reader_gets_every_byte_in_order():
    """The client's receive window is 4 KiB and it reads nothing until it has
    sent 1,000 messages of 6 KB (6 MB of echoes: more than the kernel takes,
    less than max_outbound_bytes beyond it):
    the server's SSL_write meets a full socket many times and resumes from
    its output buffer. Then every echo arrives, whole and in order, and a
    second connection was served meanwhile."""
    cert, key = _cert()
    with _gateway(cert, key) as g:
        slow = _tls_raw(g.port, cert, rcvbuf=4096)
        try:
            msgs = [_payload(i, 6000 + (i % 7) * 11) for i in range(1000)]
            errors = []

            def send_all():
                try:
                    for i, m in enumerate(msgs):
                        slow.send_frame(OP_BINARY if i % 2 else OP_TEXT,
                                        m if i % 2 else m.hex()[:len(m)].encode())
                except Exception as e:      # reported below
                    errors.append(e)
            t = threading.Thread(target=send_all, daemon=True)
            t.start()
            # meanwhile another client is served
            other = _tls_raw(g.port, cert)
            other.send_text(b'still here')
            assert other.recv_message(timeout=10) == (OP_TEXT, b'still here')
            other.sock.close()
            time.sleep(1.0)
            for i, m in enumerate(msgs):
                op, got = slow.recv_message(timeout=20)
                want = m if i % 2 else m.hex()[:len(m)].encode()
                assert op == (OP_BINARY if i % 2 else OP_TEXT) and got == want, \
                    (i, op, got[:12], len(got), len(want))
            t.join(20)
            assert not t.is_alive() and not errors, errors
        finally:
            slow.sock.close()


def test_tls_broadcast_reaches_tls_listeners_whole():
    """agent_status broadcasts (shared frames queued as segments) reach
    several TLS clients whole and in order, among other replies."""
    cert, key = _cert()
    with _gateway(cert, key) as g:
        ctx = ssl.create_default_context(cafile=cert)

        async def run():
            async def conn():
                url = 'wss://localhost:%d/ws?token=%s' % (g.port, make_token(unique_user()))
                ws = await websockets.connect(url, ssl=ctx, max_size=2 ** 21)
                assert json.loads(await ws.recv())['type'] == 'connection_established'
                return ws
            listeners = [await conn() for _ in range(4)]
            sender = await conn()
            for i in range(40):
                await sender.send(json.dumps({'type': 'agent_status', 'agentId': 'a%d' % i,
                                              'status': 's' * (1 + i * 500)}))
            for ws in listeners:
                seen = []
                while len(seen) < 40:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    if m.get('type') == 'agent_status_update':
                        seen.append(m)
                assert [m['agentId'] for m in seen] == ['a%d' % i for i in range(40)], \
                    [m['agentId'] for m in seen][:5]
                assert [m.get('status') for m in seen] == ['s' * (1 + i * 500) for i in range(40)]
            # the sender gets its 40 acks and, as a listener too, the updates
            kinds = [json.loads(await asyncio.wait_for(sender.recv(), 15))['type']
                     for _ in range(80)]
            assert kinds.count('agent_status_ack') == 40, kinds
            assert kinds.count('agent_status_update') == 40, kinds
            for ws in listeners + [sender]:
                await ws.close()
                assert ws.close_code == 1000, ws.close_code
        asyncio.run(asyncio.wait_for(run(), 60))
