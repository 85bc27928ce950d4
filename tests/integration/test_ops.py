"""Operating the gateway: /healthz, /readyz, /metrics (scraped before and
after known traffic, deltas checked), the admin API (/api/broadcast,
/api/connections) with its 401/403/400/413 answers, and the token passed as
a WebSocket subprotocol (what the status page does)."""
import asyncio
import json
import re
import socket
import time

import websockets

from harness import (Gateway, assert_healthy, client, http_request, make_token, metrics,
                     unique_user, wait_until, ws_handshake)


def _get(port, path, headers=None, method='GET', body=b''):
    hdrs = ''.join('%s: %s\r\n' % kv for kv in (headers or {}).items())
    if body or method == 'POST':
        hdrs += 'Content-Length: %d\r\n' % len(body)
    raw = ('%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n' % (method, path, hdrs)).encode() + body
    return http_request(port, raw)


def _admin():
    return {'Authorization': 'Bearer ' + make_token(unique_user('admin'), extra={'role': 'admin'})}


def _metrics(port):
    return metrics(port)


def test_healthz_and_readyz():
    with Gateway() as g:
        status, headers, body = _get(g.port, '/healthz')
        assert status == 200 and json.loads(body) == {'status': 'ok'}, (status, body)
        assert headers['content-type'] == 'application/json'
        status, _, body = _get(g.port, '/readyz')
        ready = json.loads(body)
        assert status == 200 and ready['status'] == 'ready' and ready['handlers'] == 3, ready
        status, headers, _ = _get(g.port, '/healthz', method='POST')
        assert status == 405 and 'allow' in headers, status
        status, _, _ = _get(g.port, '/nothing-here')
        assert status == 404


def test_readyz_is_503_while_shutting_down():
    with Gateway({'server': {'shutdown_timeout_ms': 3000}}) as g:
        ws = client(g)                  # keeps the shutdown waiting
        ws.send_json({'type': 'ping'})
        ws.recv_json()
        # Once draining, the listener is gone: readiness can only be seen on a
        # connection accepted before. Open one, then signal, then ask.
        s = socket.create_connection(('127.0.0.1', g.port))
        time.sleep(0.1)
        g.signal()
        g.wait_every_worker('shutdown_started')     # the one that accepted s too
        s.sendall(b'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n')
        s.settimeout(5)
        data = b''
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        # The connection was still reading its request head: it is dropped
        # (no answer) or answered 503; never 200.
        assert not data.startswith(b'HTTP/1.1 200'), data
        ws.close()


def test_metrics_deltas_after_known_traffic():
    with Gateway({'log': {'level': 'info'}}) as g:
        before = _metrics(g.port)
        ws = client(g)
        for i in range(5):
            ws.send_json({'type': 'ping', 'id': i})
            ws.recv_json()
        ws.send_json({'type': 'nope'})
        ws.recv_json()
        ws.send_json({'type': 'agent_status', 'id': 1, 'agentId': 'm', 'status': 'x'})
        ws.recv_json()
        ws.recv_json()
        ws.close_cleanly()
        _get(g.port, '/ws')     # no upgrade headers: rejected
        http_request(g.port, b'GET /ws?token=bad HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
                             b'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                             b'Sec-WebSocket-Version: 13\r\n\r\n')
        time.sleep(0.2)
        after = _metrics(g.port)

        def delta(name):
            return after.get(name, 0) - before.get(name, 0)
        assert delta('mcpgw_upgrades_accepted_total') == 1
        assert delta('mcpgw_messages_total{direction="in"}') == 7
        # welcome + 5 pongs + error + update + ack
        assert delta('mcpgw_messages_total{direction="out"}') == 9
        assert delta('mcpgw_message_bytes_total{direction="in",stage="payload"}') > 100
        assert delta('mcpgw_close_codes_total{direction="received",code="1000"}') == 1
        assert delta('mcpgw_close_codes_total{direction="sent",code="1000"}') == 1
        assert delta('mcpgw_upgrades_rejected_total{reason="not_upgrade"}') == 1
        assert delta('mcpgw_upgrades_rejected_total{reason="malformed"}') == 1
        assert delta('mcpgw_errors_total{kind="auth"}') == 1
        assert delta('mcpgw_broadcast_recipients_total') == 1
        assert delta('mcpgw_handler_duration_seconds_count{type="ping"}') == 5
        assert after['mcpgw_handler_duration_seconds_bucket{type="ping",le="+Inf"}'] >= 5
        # Prometheus's standard names (issue 17)
        assert after['process_resident_memory_bytes'] > 1e6
        assert after['process_open_fds'] >= 3
        assert 'process_cpu_seconds_total' in after
        assert abs(after['process_start_time_seconds'] - time.time()) < 600
        info = [k for k in after if k.startswith('mcpgw_build_info{')]
        assert info and 'version="' in info[0] and 'plugin_abi="1.4"' in info[0], info
        assert after['mcpgw_connections_open'] == 0


def test_metrics_exposition_is_well_formed():
    with Gateway() as g:
        client(g).close_cleanly()
        status, _, body = _get(g.port, '/metrics')
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                            r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? [-+0-9.eE]+$')
        typed = set()
        for line in body.decode().splitlines():
            if line.startswith('# TYPE '):
                name = line.split()[2]
                assert name.startswith(('mcpgw_', 'process_')), line
                assert name not in typed, 'duplicate family ' + name
                typed.add(name)
            elif not line.startswith('# HELP '):
                assert sample.match(line), line
        assert len(typed) >= 15, typed


def test_admin_api_auth():
    with Gateway() as g:
        status, _, body = _get(g.port, '/api/connections')
        assert status == 401 and json.loads(body)['error'], (status, body)
        status, _, _ = _get(g.port, '/api/connections', {'Authorization': 'Bearer nope'})
        assert status == 401
        user_token = make_token(unique_user())
        status, _, body = _get(g.port, '/api/connections',
                               {'Authorization': 'Bearer ' + user_token})
        assert status == 403, (status, body)
        status, _, _ = _get(g.port, '/api/broadcast', {'Authorization': 'Bearer ' + user_token},
                            method='POST', body=b'{"type":"x"}')
        assert status == 403
        assert user_token not in g.stderr_text()


def test_admin_broadcast_and_connections():
    with Gateway() as g:
        alice = unique_user('alice')
        a1, a2 = client(g, alice), client(g, alice)
        b = client(g)
        status, _, body = _get(g.port, '/api/connections', _admin())
        info = json.loads(body)
        assert status == 200 and info['connections'] == 3 and info['users'] == 2, info
        assert info['per_user'][alice] == 2, info
        assert info['messages_out'] >= 3 and 'uptime_s' in info, info

        status, _, body = _get(g.port, '/api/broadcast', _admin(), method='POST',
                               body=b'{"type":"announcement","text":"hello"}')
        assert status == 200 and json.loads(body) == {'recipients': 3}, body
        for ws in (a1, a2, b):
            assert ws.recv_json() == {'type': 'announcement', 'text': 'hello'}

        status, _, body = _get(g.port, '/api/broadcast?user=' + alice, _admin(), method='POST',
                               body=b'{"type":"direct"}')
        assert status == 200 and json.loads(body) == {'recipients': 2}, body
        assert a1.recv_json()['type'] == 'direct' and a2.recv_json()['type'] == 'direct'
        b.ping_roundtrip('nothing-for-b')       # b got nothing before its pong
        for bad in ('%zz', ''):
            status, _, body = _get(g.port, '/api/broadcast?user=' + bad, _admin(),
                                   method='POST', body=b'{"type":"x"}')
            assert status == 400 and json.loads(body)['error'] == 'Bad user parameter', \
                (bad, status, body)
        for ws in (a1, a2, b):
            ws.close_cleanly()


def test_admin_bad_bodies():
    with Gateway({'admin': {'max_body_bytes': 1024}}) as g:
        status, _, body = _get(g.port, '/api/broadcast', _admin(), method='POST', body=b'{nope')
        assert status == 400 and json.loads(body)['error'] == 'Invalid JSON', body
        status, _, body = _get(g.port, '/api/broadcast', _admin(), method='POST', body=b'[1]')
        assert status == 400, body
        status, _, body = _get(g.port, '/api/broadcast', _admin(), method='POST',
                               body=b'{"x":"' + b'a' * 2000 + b'"}')
        assert status == 413 and json.loads(body)['error'] == 'Payload Too Large', (status, body)
        assert_healthy(g)


def test_admin_claim_is_configurable():
    with Gateway({'admin': {'claim': 'scope', 'value': 'gateway:admin'}}) as g:
        tok = make_token(unique_user(), extra={'scope': ['read', 'gateway:admin']})
        status, _, _ = _get(g.port, '/api/connections', {'Authorization': 'Bearer ' + tok})
        assert status == 200
        status, _, _ = _get(g.port, '/api/connections', _admin())   # role=admin: wrong claim
        assert status == 403


def test_token_as_subprotocol_for_browsers():
    with Gateway() as g:
        token = make_token(unique_user('page'))

        async def run():
            async with websockets.connect('ws://127.0.0.1:%d/ws' % g.port,
                                          subprotocols=['mcpgw', 'mcpgw.bearer.' + token]) as ws:
                assert ws.subprotocol == 'mcpgw'
                assert json.loads(await ws.recv())['type'] == 'connection_established'
        asyncio.run(asyncio.wait_for(run(), 10))
        assert token not in g.stderr_text()
        # Without a token anywhere: 401.
        status, _, body = http_request(g.port, b'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
                                       b'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                                       b'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcpgw\r\n\r\n')
        assert (status, body) == (401, b'Unauthorized: Missing token')


def test_mint_token_with_claim():
    import subprocess
    import harness
    with Gateway() as g:
        out = subprocess.run([harness.MCPGW, '-c', g.conf.path, '--mint-token', 'ops',
                              '--claim', 'role=admin'], capture_output=True, text=True, check=True)
        tok = out.stdout.strip()
        status, _, _ = _get(g.port, '/api/connections', {'Authorization': 'Bearer ' + tok})
        assert status == 200


def test_systemd_readiness_notification():
    import os
    import tempfile
    d = tempfile.mkdtemp()
    path = os.path.join(d, 'notify')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    try:
        with Gateway(env={'NOTIFY_SOCKET': path}) as g:
            assert s.recv(100) == b'READY=1'
            g.signal()
            assert s.recv(100) == b'STOPPING=1'
            assert g.wait_exit(10) == 0
    finally:
        s.close()
        os.unlink(path)
        os.rmdir(d)


def test_process_cpu_never_goes_back_when_a_worker_is_replaced():
    import os
    import signal as signal_mod
    with Gateway({'server': {'workers': '2'}}) as g:
        ws = client(g)
        for i in range(3000):               # some CPU in the workers
            ws.send_json({'type': 'ping', 'id': i})
        for _ in range(3000):
            ws.recv_type('pong', 10)
        ws.close_cleanly()
        before = _metrics(g.port)['process_cpu_seconds_total']
        mark = g.mark()
        for pid in g.worker_pids():
            os.kill(pid, signal_mod.SIGKILL)
        g.wait_log('worker_restarted', since=mark, timeout=10)
        wait_until(lambda: len(g.logs('worker_restarted', since=mark)) >= 2, timeout=10,
                   what='both workers replaced')
        after = _metrics(g.port)['process_cpu_seconds_total']
        assert after >= before, (before, after)


def test_access_log_rejection_fields_and_a_quiet_favicon():
    """[log] access = true: one "access" line per HTTP request and upgrade
    (status, method, path without the query, duration, bytes, user or
    reason). Rejection lines name the method and path; a favicon.ico 404 is
    not logged at info; auth lines say "user" like every other event."""
    with Gateway({'log': {'level': 'info', 'access': 'true'}}) as g:
        user = unique_user()
        token = make_token(user)
        ws = ws_handshake(g.port, token)
        ws.close_cleanly()
        http_request(g.port, b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        http_request(g.port, b'GET /nowhere?token=secret-in-query HTTP/1.1\r\nHost: x\r\n\r\n')
        http_request(g.port, b'GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n')
        wait_until(lambda: len(g.logs('access')) >= 4, timeout=5, what='4 access lines')
        acc = g.logs('access')
        up = [r for r in acc if r['status'] == 101]
        assert up and up[0]['user'] == user and up[0]['path'] == '/ws' and \
            up[0]['method'] == 'GET' and up[0]['duration_ms'] >= 0, acc
        assert any(r['status'] == 200 and r['path'] == '/healthz' and r['bytes'] > 0 for r in acc)
        nf = [r for r in acc if r.get('path') == '/nowhere']
        assert nf and nf[0]['status'] == 404 and nf[0]['reason'] == 'not_found', acc
        assert 'secret-in-query' not in g.stderr_text(), 'a query reached the log'
        assert token not in g.stderr_text()
        rej = [r for r in g.logs('http_request_rejected') if r.get('path') == '/nowhere']
        assert rej and rej[0]['method'] == 'GET', g.logs('http_request_rejected')
        assert not [r for r in g.logs('http_request_rejected') if r.get('path') == '/favicon.ico']
        ok = g.logs('websocket_auth_success')
        assert ok and ok[0].get('user') == user and 'userId' not in ok[0], ok
    with Gateway({'log': {'level': 'info'}}) as g:      # off by default
        http_request(g.port, b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        time.sleep(0.2)
        assert not g.logs('access')
