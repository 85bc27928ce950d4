"""
test_echo.py - [endpoint.NAME] protocol = echo (issue 18, item 4): every
message goes back with its opcode, no welcome, no JSON; off unless
configured; auth and the gateway's limits as on every path. Driven by the
independent python3-websockets client (with and without permessage-deflate)
and by hand-made frames.
"""
import asyncio

import websockets

from harness import Gateway, HandshakeError, check_config, make_token, unique_user, ws_handshake

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
