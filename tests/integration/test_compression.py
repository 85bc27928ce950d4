"""permessage-deflate (RFC 7692): negotiation with independent clients
(python3-websockets with its default offer and each parameter variant, a
browser-style offer, Node's ws), messages below and above the threshold in
both directions, fragmented compressed messages, a zip bomb, corrupt data,
RSV1 on control and continuation frames."""
import asyncio
import json
import os
import shutil
import subprocess
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from harness import (OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, BUILDDIR, Gateway, assert_healthy,
                     build_frame, make_token, unique_user, ws_handshake)


def _deflate(data, bits=15):
    """Raw deflate of one message, sync-flushed, tail removed (RFC 7692)."""
    z = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b'\x00\x00\xff\xff')
    return out[:-4]


def _inflate(data, bits=15):
    return zlib.decompressobj(-bits).decompress(data + b'\x00\x00\xff\xff')


def _ext(ws):
    return ws.response_headers.get('sec-websocket-extensions') if ws.response_headers else None


def _raw(g, offer, user=None):
    return ws_handshake(g.port, make_token(user or unique_user()),
                        headers={'Sec-WebSocket-Extensions': offer})


def _big_status(n=5000):
    return 'status-' + ''.join('%04d,' % i for i in range(n // 5))


def test_python_default_offer_negotiates_reference_parameters():
    with Gateway() as g:
        async def run():
            url = g.url(make_token(unique_user()))
            async with websockets.connect(url) as ws:       # default: compression offered
                ext = ws.response_headers['Sec-WebSocket-Extensions']
                assert ext.startswith('permessage-deflate'), ext
                assert 'server_no_context_takeover' in ext, ext
                assert 'client_no_context_takeover' in ext, ext
                assert 'server_max_window_bits=10' in ext, ext
                await ws.recv()
                # Large messages both ways, compressed; small ones too.
                big = _big_status()
                await ws.send(json.dumps({'type': 'agent_status', 'id': 1, 'agentId': 'a',
                                          'status': big}))
                update = json.loads(await ws.recv())
                assert update['type'] == 'agent_status_update' and update['status'] == big
                ack = json.loads(await ws.recv())
                assert ack['type'] == 'agent_status_ack'
                await ws.send(json.dumps({'type': 'ping', 'id': 'small'}))
                assert json.loads(await ws.recv())['id'] == 'small'
        asyncio.run(asyncio.wait_for(run(), 20))


def test_python_parameter_variants():
    variants = [
        dict(server_no_context_takeover=True),
        dict(client_no_context_takeover=True),
        dict(server_max_window_bits=9),
        dict(server_max_window_bits=12),
        dict(client_max_window_bits=9),
        dict(client_max_window_bits=True),
        dict(client_max_window_bits=None),
        dict(server_no_context_takeover=True, client_no_context_takeover=True,
             server_max_window_bits=10, client_max_window_bits=10),
    ]
    with Gateway() as g:
        async def one(kw):
            factory = ClientPerMessageDeflateFactory(**kw)
            url = g.url(make_token(unique_user()))
            async with websockets.connect(url, extensions=[factory], compression=None) as ws:
                ext = _ext(ws)
                assert ext and ext.startswith('permessage-deflate'), (kw, ext)
                await ws.recv()
                for i in range(3):      # several messages: contexts must line up
                    big = _big_status(3000 + i)
                    await ws.send(json.dumps({'type': 'agent_status', 'id': i, 'agentId': 'v',
                                              'status': big}))
                    upd = json.loads(await ws.recv())
                    assert upd['status'] == big, kw
                    assert json.loads(await ws.recv())['type'] == 'agent_status_ack'
        for kw in variants:
            asyncio.run(asyncio.wait_for(one(kw), 20))


def test_compression_disabled_by_config():
    with Gateway({'compression': {'enabled': 'false'}}) as g:
        async def run():
            async with websockets.connect(g.url(make_token(unique_user()))) as ws:
                assert _ext(ws) is None
                await ws.recv()
                await ws.send(json.dumps({'type': 'ping', 'id': 1}))
                assert json.loads(await ws.recv())['type'] == 'pong'
        asyncio.run(asyncio.wait_for(run(), 10))


def test_context_takeover_configured():
    with Gateway({'compression': {'server_no_context_takeover': 'false',
                                  'client_no_context_takeover': 'false'}}) as g:
        async def run():
            factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
            async with websockets.connect(g.url(make_token(unique_user())),
                                          extensions=[factory], compression=None) as ws:
                ext = _ext(ws)
                assert 'no_context_takeover' not in ext, ext
                await ws.recv()
                for i in range(5):
                    big = _big_status(4000)     # repeated: takeover makes it tiny
                    await ws.send(json.dumps({'type': 'agent_status', 'id': i, 'agentId': 't',
                                              'status': big}))
                    assert json.loads(await ws.recv())['status'] == big
                    assert json.loads(await ws.recv())['type'] == 'agent_status_ack'
        asyncio.run(asyncio.wait_for(run(), 20))


def test_browser_style_offer_and_negotiation_edge_cases():
    with Gateway() as g:
        ws = _raw(g, 'permessage-deflate; client_max_window_bits')
        ext = ws.headers['sec-websocket-extensions']
        assert ext == ('permessage-deflate; server_no_context_takeover; '
                       'client_no_context_takeover; server_max_window_bits=10'), ext
        ws.close_cleanly()
        # First acceptable offer wins; quoted values; unknown params decline an offer.
        ws = _raw(g, 'permessage-deflate; foo=1, permessage-deflate; server_max_window_bits="12"')
        assert 'server_max_window_bits=10' in ws.headers['sec-websocket-extensions']
        ws.close_cleanly()
        ws = _raw(g, 'x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=9')
        assert 'server_max_window_bits=9' in ws.headers['sec-websocket-extensions']
        ws.close_cleanly()
        # Offers we cannot honour or cannot parse: no extension, still connected.
        for offer in ('permessage-deflate; server_max_window_bits=8',
                      'permessage-deflate; server_max_window_bits=16',
                      'permessage-deflate; server_max_window_bits',
                      'permessage-deflate; client_max_window_bits=08',
                      'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
                      'permessage-deflate; server_no_context_takeover=1',
                      'permessage-deflate;; x', '"quoted"', 'permessage-deflate; a="unterminated',
                      ';;;', 'x' * 200):
            ws = _raw(g, offer)
            assert 'sec-websocket-extensions' not in ws.headers, (offer, ws.headers)
            ws.ping_roundtrip('declined')
            ws.close_cleanly()


def test_raw_compressed_messages_both_ways():
    with Gateway() as g:
        ws = _raw(g, 'permessage-deflate')
        big = _big_status()
        body = json.dumps({'type': 'agent_status', 'id': 'z', 'agentId': 'r',
                           'status': big}).encode()
        ws.send_raw(build_frame(OP_TEXT, _deflate(body), rsv=4))
        f = ws.recv_frame()
        assert f.rsv == 4, 'large reply not compressed'
        update = json.loads(_inflate(f.payload, 10))
        assert update['status'] == big
        f = ws.recv_frame()
        assert f.rsv == 0, 'small reply compressed'      # the ack is below 1 KiB
        assert json.loads(f.payload)['type'] == 'agent_status_ack'
        # Fragmented compressed message: RSV1 on the first frame only.
        z = _deflate(json.dumps({'type': 'ping', 'id': 'frag', 'pad': 'p' * 3000}).encode())
        ws.send_raw(build_frame(OP_TEXT, z[:10], fin=False, rsv=4) +
                    build_frame(OP_PING, b'mid') +
                    build_frame(OP_CONT, z[10:20], fin=False) +
                    build_frame(OP_CONT, z[20:]))
        pong = ws.recv_frame()
        assert pong.payload == b'mid'
        assert json.loads(ws.recv_frame().payload)['id'] == 'frag'
        # A small compressed message is fine too.
        ws.send_raw(build_frame(OP_TEXT, _deflate(b'{"type":"ping","id":"tiny"}'), rsv=4))
        assert json.loads(ws.recv_frame().payload)['id'] == 'tiny'
        ws.close_cleanly()


def test_zip_bomb_is_1009_before_memory_is_spent():
    with Gateway({'server': {'max_payload': 65536}}) as g:
        ws = _raw(g, 'permessage-deflate')
        bomb = _deflate(b'{"type":"ping","pad":"' + b'A' * (8 * 1024 * 1024) + b'"}')
        assert len(bomb) < 65536, len(bomb)
        ws.send_raw(build_frame(OP_TEXT, bomb, rsv=4))
        ws.expect_protocol_close(1009)
        ws.close()
        assert_healthy(g)


def test_corrupt_compressed_data_is_1007():
    with Gateway() as g:
        ws = _raw(g, 'permessage-deflate')
        ws.send_raw(build_frame(OP_TEXT, b'\xff\xff\xff\xff garbage', rsv=4))
        ws.expect_protocol_close(1007)
        ws.close()
        assert_healthy(g)


def test_rsv1_on_control_and_continuation_frames_is_1002():
    with Gateway() as g:
        ws = _raw(g, 'permessage-deflate')
        ws.send_raw(build_frame(OP_PING, b'x', rsv=4))
        ws.expect_protocol_close(1002)
        ws.close()
        ws = _raw(g, 'permessage-deflate')
        z = _deflate(b'{"type":"ping"}')
        ws.send_raw(build_frame(OP_TEXT, z[:3], fin=False, rsv=4) +
                    build_frame(OP_CONT, z[3:], rsv=4))
        ws.expect_protocol_close(1002)
        ws.close()
        # Without the extension negotiated, RSV1 on data is an error as well.
        ws = ws_handshake(g.port, make_token(unique_user()))
        ws.send_raw(build_frame(OP_TEXT, _deflate(b'{"type":"ping"}'), rsv=4))
        ws.expect_protocol_close(1002)
        ws.close()
        assert_healthy(g)


def test_broadcast_reaches_compressed_and_plain_listeners():
    with Gateway() as g:
        listeners = [(_raw(g, 'permessage-deflate'), 10),
                     (_raw(g, 'permessage-deflate; server_max_window_bits=9'), 9),
                     (ws_handshake(g.port, make_token(unique_user())), None)]
        sender = ws_handshake(g.port, make_token(unique_user()))
        big = _big_status()
        sender.send_json({'type': 'agent_status', 'id': 1, 'agentId': 'b', 'status': big})
        for ws, bits in listeners:
            f = ws.recv_frame()
            if bits is None:
                assert f.rsv == 0
                msg = json.loads(f.payload)
            else:
                assert f.rsv == 4
                msg = json.loads(_inflate(f.payload, bits))
            assert msg['type'] == 'agent_status_update' and msg['status'] == big
            ws.close_cleanly()
        sender.close_cleanly()


def _node_ws_dir():
    """Node's ws, installed from npm once into the build tree."""
    if not shutil.which('node') or not shutil.which('npm'):
        return None
    d = os.path.join(BUILDDIR, 'tests', '.node')
    if not os.path.isdir(os.path.join(d, 'node_modules', 'ws')):
        os.makedirs(d, exist_ok=True)
        p = subprocess.run(['npm', 'install', '--silent', '--no-audit', '--no-fund',
                            '--prefix', d, 'ws@8'], capture_output=True, timeout=180)
        if p.returncode != 0:
            return None
    return d


NODE_CLIENT = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2], { perMessageDeflate: { threshold: 0 } });
const big = 'n'.repeat(5000);
const seen = [];
ws.on('upgrade', (res) => seen.push(res.headers['sec-websocket-extensions'] || ''));
ws.on('message', (data) => {
  const m = JSON.parse(data.toString());
  seen.push(m.type);
  if (m.type === 'connection_established')
    ws.send(JSON.stringify({ type: 'agent_status', id: 1, agentId: 'node', status: big }));
  if (m.type === 'agent_status_update' && m.status !== big) { console.log('BAD'); process.exit(1); }
  if (m.type === 'agent_status_ack') { console.log(JSON.stringify(seen)); ws.close(1000); }
});
ws.on('close', () => process.exit(0));
ws.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(1); });
setTimeout(() => { console.log('TIMEOUT ' + JSON.stringify(seen)); process.exit(1); }, 10000);
"""


def test_node_ws_client_with_per_message_deflate():
    d = _node_ws_dir()
    if d is None:
        raise AssertionError('node and npm are needed for the Node ws interop test '
                             '(scripts/install-deps installs nodejs and npm)')
    with Gateway() as g:
        script = os.path.join(d, 'client.js')
        with open(script, 'w') as f:
            f.write(NODE_CLIENT)
        p = subprocess.run(['node', script, g.url(make_token(unique_user()))],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, NODE_PATH=os.path.join(d, 'node_modules')))
        assert p.returncode == 0, (p.stdout, p.stderr)
        seen = json.loads(p.stdout.strip().splitlines()[-1])
        assert seen[0].startswith('permessage-deflate'), seen
        assert seen[1:] == ['connection_established', 'agent_status_update',
                            'agent_status_ack'], seen
