"""
test_http_strict.py - HTTP strictness (issue 15, items 7 and 12): the
preconditions of request smuggling behind a proxy (repeated Host, repeated
or listed Content-Length, an upgrade with a body), plain HTTP sent to the
TLS port, and a browser that passes its token as a subprotocol without
offering the one the path answers. Each refusal is checked for its status,
body, log line and mcpgw_upgrades_rejected_total; each fails without its fix.
"""
import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import websockets

from harness import (OP_TEXT, Gateway, assert_healthy, build_frame, connect, http_request,
                     make_token, metrics, parse_http_response, recv_until_close,
                     shared_gateway, unique_user, upgrade_request, wait_until, ws_handshake)

_TMP = []


def _gw():
    return shared_gateway('http_strict', sections={'log': {'level': 'info'}})


def _metrics(port):
    return metrics(port)


def _rejected(port, reason):
    return _metrics(port).get('mcpgw_upgrades_rejected_total{reason="%s"}' % reason, 0)


def _expect_refusal(g, raw, status, reason, body_part, event='http_request_rejected'):
    """Sends raw, expects status with body_part in its body, one log line
    with this reason and the reason counted once more in /metrics."""
    before = _rejected(g.port, reason)
    mark = g.mark()
    got, headers, body = http_request(g.port, raw)
    assert got == status, (got, headers, body)
    assert body_part in body, body
    assert headers.get('connection') == 'close', headers
    rec = g.wait_log(event, lambda r: r.get('reason') == reason, since=mark)
    assert rec.get('status') == status, rec
    wait_until(lambda: _rejected(g.port, reason) == before + 1,
               what='mcpgw_upgrades_rejected_total{reason="%s"} + 1' % reason)
    return body


# ------------------------------------------------ item 7a: Host, Content-Length

def test_two_host_headers_are_refused():
    g = _gw()
    # An upgrade with two Hosts: a proxy and the gateway may route it apart.
    raw = upgrade_request('/ws', make_token(unique_user()))
    raw = raw.replace(b'Host: 127.0.0.1\r\n', b'Host: 127.0.0.1\r\nHost: evil.example\r\n')
    _expect_refusal(g, raw, 400, 'duplicate_host', b'Host')
    # The same on a plain endpoint, and with identical values.
    _expect_refusal(g, b'GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n', 400,
                    'duplicate_host', b'Host')
    # One Host still works.
    status, _, _ = http_request(g.port, b'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n')
    assert status == 200


def test_conflicting_content_lengths_are_refused():
    g = _gw()
    token = make_token(unique_user('admin'), extra={'role': 'admin'})
    post = ('POST /api/broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n'
            'Content-Type: application/json\r\n' % token).encode()
    body = b'{"type":"x"}'
    # Two different values: which one frames the body is the smuggling question.
    _expect_refusal(g, post + b'Content-Length: 12\r\nContent-Length: 5\r\n\r\n' + body,
                    400, 'bad_content_length', b'Content-Length')
    # A list in one header.
    _expect_refusal(g, post + b'Content-Length: 12, 5\r\n\r\n' + body,
                    400, 'bad_content_length', b'Content-Length')
    # Identical duplicates are refused too (simpler, and safe).
    _expect_refusal(g, post + b'Content-Length: 12\r\nContent-Length: 12\r\n\r\n' + body,
                    400, 'bad_content_length', b'Content-Length')
    _expect_refusal(g, post + b'Content-Length: 12,12\r\n\r\n' + body,
                    400, 'bad_content_length', b'Content-Length')
    # Signs and blanks are not a length either.
    _expect_refusal(g, post + b'Content-Length: +12\r\n\r\n' + body,
                    400, 'bad_content_length', b'Content-Length')
    # On the WebSocket path as well.
    raw = upgrade_request('/ws', make_token(unique_user()),
                          headers={'Content-Length': '0, 0'})
    _expect_refusal(g, raw, 400, 'bad_content_length', b'Content-Length')
    assert_healthy(g)


# ------------------------------------------- item 7b: an upgrade with a body

def _frame_after_head_is_not_a_message(g, headers, reason):
    """An upgrade whose head announces a body, followed by bytes that would
    parse as a valid ping frame: refused 400, and no pong ever comes."""
    frame = build_frame(OP_TEXT, '{"type":"ping","id":"smuggled"}')
    hdrs = dict(headers)
    if 'Content-Length' in hdrs and hdrs['Content-Length'] is None:
        hdrs['Content-Length'] = str(len(frame))
    raw = upgrade_request('/ws', make_token(unique_user()), headers=hdrs) + frame
    body = _expect_refusal(g, raw, 400, reason, b'body', event='websocket_handshake_rejected')
    assert b'101' not in body and b'pong' not in body, body


def test_upgrade_with_content_length_is_refused():
    g = _gw()
    _frame_after_head_is_not_a_message(g, {'Content-Length': None}, 'upgrade_with_body')
    _frame_after_head_is_not_a_message(g, {'Content-Length': '1'}, 'upgrade_with_body')
    # Content-Length: 0 announces no body: accepted (some clients send it).
    ws = ws_handshake(g.port, make_token(unique_user()), headers={'Content-Length': '0'})
    ws.ping_roundtrip('cl0')
    ws.close_cleanly()


def test_upgrade_with_transfer_encoding_is_refused():
    g = _gw()
    _frame_after_head_is_not_a_message(g, {'Transfer-Encoding': 'chunked'}, 'upgrade_with_body')
    _frame_after_head_is_not_a_message(g, {'Transfer-Encoding': 'identity'}, 'upgrade_with_body')
    assert_healthy(g)


# --------------------------------------------- item 7d: plain HTTP on TLS

def _cert():
    d = tempfile.mkdtemp(prefix='mcpgw-strict-')
    _TMP.append(d)
    cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                    '-out', cert, '-days', '1', '-subj', '/CN=localhost',
                    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
                   check=True, capture_output=True)
    return cert, key


def test_plain_http_on_the_tls_port_gets_400():
    cert, key = _cert()
    try:
        with Gateway({'tls': {'cert': cert, 'key': key}, 'log': {'level': 'info'}}) as g:
            before = _tls_rejected(g, cert, 'plain_http_on_tls')
            # A plain upgrade, a plain GET and a request sent one byte at a
            # time: each gets a plain 400 (not a reset) and the connection
            # is closed.
            for raw in (upgrade_request('/ws', make_token(unique_user())),
                        b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'):
                mark = g.mark()
                status, headers, body = http_request(g.port, raw)
                assert status == 400, (status, body)
                assert body == b'This port speaks TLS (https/wss)', body
                assert headers.get('connection') == 'close', headers
                rec = g.wait_log('http_request_rejected',
                                 lambda r: r.get('reason') == 'plain_http_on_tls', since=mark)
                assert rec.get('status') == 400, rec
            s = connect(g.port)
            s.sendall(b'G')
            data = recv_until_close(s)
            s.close()
            status, _, body = parse_http_response(data)
            assert status == 400 and b'TLS' in body, data
            wait_until(lambda: _tls_rejected(g, cert, 'plain_http_on_tls') == before + 3,
                       what='three plain_http_on_tls rejections counted')
            # A client that is neither TLS nor HTTP still just gets closed.
            s = connect(g.port)
            s.sendall(b'\x00\x01\x02\x03' * 4)
            data = recv_until_close(s)
            s.close()
            assert data == b'', data
            # TLS clients are unaffected.
            _tls_ping(g, cert)
    finally:
        for d in _TMP:
            shutil.rmtree(d, ignore_errors=True)
        del _TMP[:]


def _tls_get(g, cert, path):
    ctx = ssl.create_default_context(cafile=cert)
    with socket.create_connection(('127.0.0.1', g.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname='localhost') as s:
            s.sendall(('GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n' % path).encode())
            data = b''
            while True:
                try:
                    b = s.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not b:
                    break
                data += b
    return parse_http_response(data)


def _tls_rejected(g, cert, reason):
    status, _, body = _tls_get(g, cert, '/metrics')
    assert status == 200, status
    for line in body.decode().splitlines():
        if line.startswith('mcpgw_upgrades_rejected_total{reason="%s"} ' % reason):
            return float(line.rsplit(' ', 1)[1])
    return 0


def _tls_ping(g, cert):
    async def run():
        url = 'wss://localhost:%d/ws?token=%s' % (g.port, make_token(unique_user()))
        async with websockets.connect(url, ssl=ssl.create_default_context(cafile=cert)) as ws:
            await ws.recv()
            await ws.send('{"type":"ping","id":"tls"}')
            assert '"pong"' in await ws.recv()
    asyncio.run(asyncio.wait_for(run(), 15))


# ------------------------------------ item 12: the token as a subprotocol

def test_bearer_subprotocol_without_mcpgw_is_refused():
    g = _gw()
    token = make_token(unique_user())
    raw = upgrade_request('/ws', headers={'Sec-WebSocket-Protocol': 'mcpgw.bearer.' + token})
    body = _expect_refusal(g, raw, 400, 'subprotocol_missing', b'mcpgw',
                           event='websocket_handshake_rejected')
    assert b'alongside' in body, body
    assert token.encode() not in body
    assert token not in g.stderr_text()
    # With mcpgw offered too, the browser's way, it is answered mcpgw.
    ws = ws_handshake(g.port, headers={
        'Sec-WebSocket-Protocol': 'mcpgw.bearer.%s, mcpgw' % make_token(unique_user())})
    assert ws.headers.get('sec-websocket-protocol') == 'mcpgw', ws.headers
    ws.ping_roundtrip('sub')
    ws.close_cleanly()

    # What a browser sees: websockets fails the handshake either way; with
    # the fix it is a 400, not an upgrade without the subprotocol.
    async def run():
        try:
            async with websockets.connect(g.url(), subprotocols=['mcpgw.bearer.' + token]):
                pass
        except websockets.exceptions.InvalidHandshake as e:
            # InvalidStatusCode (websockets 10) or InvalidStatus (14+)
            code = getattr(e, 'status_code', None)
            if code is None and getattr(e, 'response', None) is not None:
                code = e.response.status_code
            return code if code is not None else str(e)
        return 'connected'
    assert asyncio.run(asyncio.wait_for(run(), 10)) == 400


def test_bearer_subprotocol_rule_only_for_subprotocol_tokens():
    g = _gw()
    # A token from the query (or the Authorization header) with other
    # subprotocols offered: no rule, no answer, as before.
    ws = ws_handshake(g.port, make_token(unique_user()),
                      headers={'Sec-WebSocket-Protocol': 'chat'})
    assert 'sec-websocket-protocol' not in ws.headers, ws.headers
    ws.close_cleanly()
    ws = ws_handshake(g.port, headers={
        'Authorization': 'Bearer ' + make_token(unique_user()),
        'Sec-WebSocket-Protocol': 'chat'})
    assert 'sec-websocket-protocol' not in ws.headers, ws.headers
    ws.close_cleanly()


def test_bearer_subprotocol_on_an_endpoint_needs_its_subprotocol():
    """On an [endpoint.NAME] path the answered subprotocol is the
    endpoint's (its own, or "mcp" for protocol jsonrpc): a bearer-subprotocol
    client must offer that one, and offering mcpgw there does not help."""
    with Gateway({'endpoint.v1': {'path': '/v1', 'protocol': 'mcpgw',
                                  'subprotocol': 'v1.example'},
                  'endpoint.tools': {'path': '/mcp/tools', 'protocol': 'jsonrpc',
                                     'plugin': 'mcp_stdio', 'command': '/bin/cat'},
                  'log': {'level': 'info'}}) as g:
        for path, answered, welcome in (('/v1', 'v1.example', True), ('/mcp/tools', 'mcp', False)):
            token = make_token(unique_user())
            for offer in ('mcpgw.bearer.' + token, 'mcpgw.bearer.%s, mcpgw' % token):
                raw = upgrade_request(path, headers={'Sec-WebSocket-Protocol': offer})
                body = _expect_refusal(g, raw, 400, 'subprotocol_missing', answered.encode(),
                                       event='websocket_handshake_rejected')
                assert b'alongside' in body, body
            ws = ws_handshake(g.port, path=path, read_welcome=welcome, headers={
                'Sec-WebSocket-Protocol': '%s, mcpgw.bearer.%s' % (answered,
                                                                   make_token(unique_user()))})
            assert ws.headers.get('sec-websocket-protocol') == answered, ws.headers
            ws.close_cleanly()
