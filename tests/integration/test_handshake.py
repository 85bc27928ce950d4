"""The opening handshake: a good upgrade, and every way a request is refused."""
import base64
import json
import time

import websockets

from harness import (ISO_MS_RE, OP_TEXT, Gateway, accept_for, assert_healthy, build_frame,
                     connect, http_request, make_token, parse_http_response, run_async,
                     shared_gateway, unique_user, upgrade_request, ws_handshake)


def gw():
    return shared_gateway('default')


def tok():
    return make_token(unique_user('hs'))


def refused(raw, timeout=5):
    """Sends raw; the server must answer and close. Returns (status, headers, body)."""
    status, headers, body = http_request(gw().port, raw, timeout)
    assert headers.get('connection', '').lower() == 'close', headers
    return status, headers, body


def test_welcome_with_websockets_library():
    async def go():
        async with websockets.connect(gw().url(tok()), ping_interval=None) as ws:
            return json.loads(await ws.recv())
    m = run_async(go())
    assert m['type'] == 'connection_established', m
    assert m['message'] == 'Connected to MCP Server', m
    assert ISO_MS_RE.match(m['timestamp']), m
    assert set(m) == {'type', 'message', 'timestamp'}, m


def test_token_in_authorization_header():
    async def go():
        async with websockets.connect(gw().url(), ping_interval=None,
                                      extra_headers={'Authorization': 'Bearer ' + tok()}) as ws:
            welcome = json.loads(await ws.recv())
            await ws.send(json.dumps({'type': 'ping', 'id': 'hdr'}))
            return welcome, json.loads(await ws.recv())
    welcome, pong = run_async(go())
    assert welcome['type'] == 'connection_established', welcome
    assert pong['type'] == 'pong' and pong['id'] == 'hdr', pong


def test_accept_key_for_rfc_sample_key():
    key = 'dGhlIHNhbXBsZSBub25jZQ=='
    assert accept_for(key) == 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    s = connect(gw().port)
    try:
        s.sendall(upgrade_request('/ws', tok(), key=key))
        data = b''
        while b'\r\n\r\n' not in data:
            b = s.recv(4096)
            assert b, 'closed during handshake: %r' % data
            data += b
        status, headers, _ = parse_http_response(data[:data.index(b'\r\n\r\n') + 4])
    finally:
        s.close()
    assert status == 101, (status, headers)
    assert headers['sec-websocket-accept'] == 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', headers
    assert headers['upgrade'].lower() == 'websocket', headers
    assert 'upgrade' in headers['connection'].lower(), headers
    # No extension was offered, so none may be accepted.
    assert 'sec-websocket-extensions' not in headers, headers


def test_unknown_path_is_404():
    status, _, _ = refused(upgrade_request('/nope', tok()))
    assert status == 404, status


def test_path_prefix_is_not_the_path():
    status, _, _ = refused(upgrade_request('/wsx', tok()))
    assert status == 404, status


def test_malformed_request_line_is_400():
    status, _, _ = refused(b'GARBAGE\r\n\r\n')
    assert status == 400, status


def test_header_without_colon_is_400():
    raw = upgrade_request('/ws', tok()).replace(b'\r\n\r\n', b'\r\nNoColonHere\r\n\r\n')
    status, _, _ = refused(raw)
    assert status == 400, status


def test_headers_over_8k_are_431():
    base = upgrade_request('/ws', tok(), headers={'X-Pad': ''})
    pad = 8192 + 100 - len(base)
    raw = upgrade_request('/ws', tok(), headers={'X-Pad': 'a' * pad})
    assert len(raw) > 8192
    status, _, _ = refused(raw)
    assert status == 431, status


def test_headers_just_under_limit_accepted():
    token = tok()
    base = upgrade_request('/ws', token, headers={'X-Pad': ''})
    pad = 8000 - len(base)
    ws = ws_handshake(gw().port, token, headers={'X-Pad': 'b' * pad})
    try:
        ws.ping_roundtrip('big-head')
    finally:
        ws.close_cleanly()


def test_max_header_bytes_configurable():
    with Gateway({'server': {'max_header_bytes': 1024}}) as g:
        raw = upgrade_request('/ws', tok(), headers={'X-Pad': 'c' * 1200})
        status, _, _ = http_request(g.port, raw)
        assert status == 431, status
        ws = ws_handshake(g.port, tok())
        ws.close_cleanly()


def test_post_is_405_with_allow():
    status, headers, _ = refused(upgrade_request('/ws', tok(), method='POST'))
    assert status == 405, status
    assert 'GET' in headers.get('allow', ''), headers


def test_no_upgrade_header_is_426():
    status, headers, _ = refused(upgrade_request('/ws', tok(), headers={'Upgrade': None}))
    assert status == 426, status
    assert headers.get('sec-websocket-version') == '13', headers


def test_plain_get_is_426():
    raw = ('GET /ws?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' % tok()).encode()
    status, headers, _ = refused(raw)
    assert status == 426, status
    assert headers.get('sec-websocket-version') == '13', headers


def test_version_8_is_426():
    status, headers, _ = refused(upgrade_request('/ws', tok(),
                                                 headers={'Sec-WebSocket-Version': '8'}))
    assert status == 426, status
    assert headers.get('sec-websocket-version') == '13', headers


def test_key_of_10_bytes_is_400():
    key = base64.b64encode(b'0123456789').decode()
    status, _, _ = refused(upgrade_request('/ws', tok(), key=key))
    assert status == 400, status


def test_key_not_base64_is_400():
    status, _, _ = refused(upgrade_request('/ws', tok(), key='!!!!not-base64-at-all!!'))
    assert status == 400, status


def test_missing_key_is_400():
    status, _, _ = refused(upgrade_request('/ws', tok(),
                                           headers={'Sec-WebSocket-Key': None}))
    assert status == 400, status


def test_missing_connection_upgrade_is_400():
    status, _, _ = refused(upgrade_request('/ws', tok(), headers={'Connection': 'keep-alive'}))
    assert status == 400, status


def test_connection_token_list_accepted():
    ws = ws_handshake(gw().port, tok(), headers={'Connection': 'keep-alive, Upgrade',
                                                 'Upgrade': 'WebSocket'})
    ws.close_cleanly()


def test_missing_host_is_400():
    status, _, _ = refused(upgrade_request('/ws', tok(), headers={'Host': None}))
    assert status == 400, status


def test_http_1_0_is_refused():
    status, _, _ = refused(upgrade_request('/ws', tok(), version='HTTP/1.0'))
    assert status == 400, status


def test_refusal_closes_connection_and_server_survives():
    for raw in (b'GARBAGE\r\n\r\n', upgrade_request('/nope', tok()),
                upgrade_request('/ws', tok(), method='PUT')):
        status, headers, _ = refused(raw)
        assert 400 <= status < 500, status
    assert_healthy(gw())


def test_request_and_first_frame_in_one_write():
    frame = build_frame(OP_TEXT, json.dumps({'type': 'ping', 'id': 'early'}))
    ws = ws_handshake(gw().port, tok(), first_frames=frame)
    try:
        m = ws.recv_type('pong')
        assert m['id'] == 'early', m
    finally:
        ws.close_cleanly()


def test_request_sent_byte_by_byte():
    token = tok()
    key = base64.b64encode(b'k' * 16).decode()
    raw = upgrade_request('/ws', token, key=key)
    s = connect(gw().port)
    try:
        for i in range(0, len(raw), 7):
            s.sendall(raw[i:i + 7])
            time.sleep(0.001)
        data = b''
        while b'\r\n\r\n' not in data:
            b = s.recv(4096)
            assert b, data
            data += b
        status, headers, _ = parse_http_response(data[:data.index(b'\r\n\r\n') + 4])
        assert status == 101, status
        assert headers['sec-websocket-accept'] == accept_for(key)
    finally:
        s.close()


def test_silent_client_does_not_block_others():
    # A connection that never sends its request must not stall the server.
    s = connect(gw().port)
    try:
        s.sendall(b'GET /ws HTTP/1.1\r\nHost: x\r\n')
        assert_healthy(gw())
    finally:
        s.close()


def test_rejected_status_codes_via_websockets_library():
    async def go():
        try:
            async with websockets.connect(gw().url(path='/nope', token=tok()),
                                          ping_interval=None):
                return None
        except websockets.exceptions.InvalidStatusCode as e:
            return e.status_code
    assert run_async(go()) == 404


def test_bare_lf_line_endings_accepted():
    token = tok()
    key = base64.b64encode(b'L' * 16).decode()
    raw = upgrade_request('/ws', token, key=key).replace(b'\r\n', b'\n')
    s = connect(gw().port)
    try:
        s.sendall(raw)
        data = b''
        while b'\r\n\r\n' not in data:
            b = s.recv(4096)
            assert b, 'closed: %r' % data
            data += b
        status, headers, _ = parse_http_response(data[:data.index(b'\r\n\r\n') + 4])
    finally:
        s.close()
    assert status == 101, status
    assert headers['sec-websocket-accept'] == accept_for(key)


def test_obsolete_line_folding_is_400():
    raw = upgrade_request('/ws', tok()).replace(b'\r\n\r\n', b'\r\nX-A: one\r\n two\r\n\r\n')
    status, _, _ = refused(raw)
    assert status == 400, status


def test_too_many_headers_is_431():
    hdrs = {'X-H%d' % i: 'v' for i in range(70)}
    status, _, _ = refused(upgrade_request('/ws', tok(), headers=hdrs))
    assert status == 431, status


def test_http_2_is_505():
    status, _, _ = refused(upgrade_request('/ws', tok(), version='HTTP/2.0'))
    assert status == 505, status
