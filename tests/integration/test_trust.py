"""
test_trust.py - trust boundaries (issue 15): what an attack run found, each
with a test that fails without its fix.
"""
import os
import signal
import time

from harness import (Gateway, HandshakeError, http_request, make_token, process_gone,
                     sanitized_build, unique_user, wait_until, ws_handshake)


def _rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def _total_rss_kb(g):
    return sum(_rss_kb(p) for p in g.worker_pids())


def test_head_and_other_methods_on_metrics_leak_nothing():
    """Every non-GET /metrics leaked its answer buffer (~136 bytes): 10,000
    HEAD requests grow the workers by less than a leak's 1.3 MB."""
    with Gateway({'server': {'workers': '1'}}) as g:
        for _ in range(300):            # warm up allocator arenas
            http_request(g.port, b'HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
        before = _total_rss_kb(g)
        for i in range(10000):
            method = (b'HEAD', b'POST', b'DELETE')[i % 3]
            http_request(g.port, method + b' /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
        grown = _total_rss_kb(g) - before
        if not sanitized_build():   # ASan's quarantine holds freed memory; LSan checks at exit
            assert grown < 600, 'RSS grew by %d KiB over 10,000 requests' % grown


def test_head_answers_carry_no_body():
    with Gateway() as g:
        for path in (b'/healthz', b'/readyz', b'/metrics'):
            st, hdrs, body = http_request(g.port, b'HEAD ' + path + b' HTTP/1.1\r\nHost: x\r\n\r\n')
            assert st == 200 and body == b'', (path, st, body[:80])
            assert int(hdrs['content-length']) > 0, hdrs      # what GET would send
            gst, _, gbody = http_request(g.port, b'GET ' + path + b' HTTP/1.1\r\nHost: x\r\n\r\n')
            assert gst == 200 and gbody, path


def test_405_allow_lists_the_resources_methods():
    with Gateway() as g:
        cases = [(b'POST /healthz', 'GET, HEAD'), (b'PUT /metrics', 'GET, HEAD'),
                 (b'GET /api/broadcast', 'POST'), (b'DELETE /api/connections', 'GET, HEAD')]
        for req, allow in cases:
            st, hdrs, _ = http_request(g.port, req + b' HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
            assert st == 405 and hdrs.get('allow') == allow, (req, st, hdrs)


def _environ(pid):
    with open('/proc/%d/environ' % pid, 'rb') as f:
        return f.read()


def test_the_jwt_secret_leaves_the_environment():
    """MCPGW_JWT_SECRET is read, then removed: no worker (nor anything a
    plugin starts) inherits it, and /proc/PID/environ does not show it; a
    reload and a binary upgrade still know it."""
    secret = 'env-only-secret-%d' % os.getpid()
    with Gateway({'auth': {'jwt_secret': None},
                  'server': {'workers': '2', 'drain_timeout_ms': '200'}},
                 env={'MCPGW_JWT_SECRET': secret}) as g:
        for pid in [g.pid()] + g.worker_pids():
            env = _environ(pid)
            assert secret.encode() not in env, 'secret visible in /proc/%d/environ' % pid
        tok = make_token(unique_user(), secret=secret)
        ws_handshake(g.port, tok).ping_roundtrip('a')
        mark = g.mark()
        g.signal(signal.SIGHUP)
        g.wait_log('config_reloaded', since=mark, timeout=10)
        ws_handshake(g.port, tok).ping_roundtrip('b')
        mark = g.mark()
        g.signal(signal.SIGUSR2)
        complete = g.wait_log('upgrade_complete', since=mark, timeout=15)
        new_pid = complete['pid']
        try:
            assert g.wait_exit(15) == 0         # the old generation handed over
            assert secret.encode() not in _environ(new_pid)
            ws_handshake(g.port, tok).ping_roundtrip('c')   # the new one knows the secret
        finally:
            os.kill(new_pid, signal.SIGTERM)
            wait_until(lambda: process_gone(new_pid), timeout=10,
                       what='the new supervisor to stop')


# ------------------------------------------------------------ tokens that end

def test_a_connection_ends_with_its_token_4001():
    with Gateway({'auth': {'leeway_s': '0'}}) as g:
        ws = ws_handshake(g.port, make_token(unique_user(), exp_in=2))
        ws.ping_roundtrip('alive')
        t0 = time.monotonic()
        code, reason = ws.expect_protocol_close(4001, timeout=6)
        assert reason == b'Token expired' and time.monotonic() - t0 < 4.5, (code, reason)
        ws.close()
        assert g.wait_log('websocket_token_expired')


def test_in_band_refresh_extends_the_connection():
    user = unique_user()
    with Gateway({'auth': {'leeway_s': '0'}}) as g:
        ws = ws_handshake(g.port, make_token(user, exp_in=2))
        fresh = make_token(user, exp_in=3600)
        ws.send_json({'type': 'auth', 'id': 'r1', 'token': fresh})
        ok = ws.recv_type('auth_ok')
        assert ok['id'] == 'r1' and ok['exp'] > time.time() + 3000, ok
        time.sleep(3.2)                                 # past the first token's end
        ws.ping_roundtrip('still here')
        ws.close_cleanly()
        assert fresh.encode() not in g.stderr_text().encode()   # no token in a log line


def test_refresh_with_another_users_or_a_bad_token_changes_nothing():
    user = unique_user()
    with Gateway({'auth': {'leeway_s': '0'}}) as g:
        ws = ws_handshake(g.port, make_token(user, exp_in=2))
        ws.send_json({'type': 'auth', 'id': 'x', 'token': make_token(unique_user())})
        m = ws.recv_json(5)
        while m.get('id') != 'x':
            m = ws.recv_json(5)
        assert m['type'] == 'error', 'another user\'s token was taken: %r' % m
        assert m['message'] == 'Authentication failed' and 'another user' in m['error'], m
        ws.send_json({'type': 'auth', 'id': 'y', 'token': make_token(user, secret='wrong')})
        m = ws.recv_type('error')
        assert m['error'] == 'Invalid token' and m['id'] == 'y', m
        ws.send_json({'type': 'auth', 'id': 'z'})
        assert ws.recv_type('error')['error'] == 'auth requires a token'
        code, _ = ws.expect_protocol_close(4001, timeout=6)   # the first token still ends it
        ws.close()


def test_require_exp_refuses_a_token_without_one():
    with Gateway({'auth': {'require_exp': 'true'}}) as g:
        try:
            ws_handshake(g.port, make_token(unique_user(), exp_in=None))
            raise AssertionError('a token without exp was accepted')
        except HandshakeError as e:
            assert e.status == 401, e.status
        assert g.wait_log('websocket_auth_failed',
                          pred=lambda r: r.get('reason') == 'missing_exp')
        ws_handshake(g.port, make_token(unique_user())).ping_roundtrip('with exp')
    with Gateway() as g:                            # the default accepts it (no end)
        ws_handshake(g.port, make_token(unique_user(), exp_in=None)).ping_roundtrip('ok')


def test_an_mcp_session_also_ends_with_its_token():
    from mcp_support import endpoint
    with Gateway({'auth': {'leeway_s': '0'}, 'endpoint.everything': endpoint()}) as g:
        ws = ws_handshake(g.port, make_token(unique_user(), exp_in=2), path='/mcp/everything',
                          headers={'Sec-WebSocket-Protocol': 'mcp'}, read_welcome=False)
        code, reason = ws.expect_protocol_close(4001, timeout=6)
        assert reason == b'Token expired'
        ws.close()


# ------------------------------------------------------------ who may send what

def _status(ws, id_, agent='a1', status='up'):
    ws.send_json({'type': 'agent_status', 'id': id_, 'agentId': agent, 'status': status})


def _reply(ws, id_, timeout=5):
    """The ack or error answering id_ (updates are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv_json(max(0.01, deadline - time.monotonic()))
        if m.get('id') == id_ and m.get('type') in ('agent_status_ack', 'error', 'batch_response'):
            return m


def test_handler_require_claim():
    with Gateway({'handler.agent_status': {'plugin': 'agent_status',
                                           'require_claim': 'role:agent'}}) as g:
        plain = ws_handshake(g.port, make_token(unique_user()))
        _status(plain, 's1')
        m = _reply(plain, 's1')
        assert m['type'] == 'error' and m['message'] == 'Forbidden' and 'role=agent' in m['error'], m
        agent = ws_handshake(g.port, make_token(unique_user(), extra={'role': ['x', 'agent']}))
        _status(agent, 's2')
        assert _reply(agent, 's2')['type'] == 'agent_status_ack'
        plain.ping_roundtrip('other handlers are open to all')
        plain.close_cleanly()
        agent.close_cleanly()


def test_handler_max_message_bytes_also_inside_a_batch():
    with Gateway({'handler.agent_status': {'plugin': 'agent_status',
                                           'max_message_bytes': '1k'}}) as g:
        ws = ws_handshake(g.port, make_token(unique_user()))
        _status(ws, 'big', status='x' * 2000)
        m = _reply(ws, 'big')
        assert m['type'] == 'error' and m['message'] == 'Message too large', m
        ws.send_json({'type': 'batch', 'id': 'b', 'messages': [
            {'type': 'agent_status', 'id': 'in', 'agentId': 'a', 'status': 'y' * 2000},
            {'type': 'ping', 'id': 'p'}]})
        m = _reply(ws, 'b')
        assert m['responses'][0]['status'] == 'error' and '1024 bytes' in m['responses'][0]['error'], m
        assert m['responses'][1]['status'] == 'success', m
        _status(ws, 'small')
        assert _reply(ws, 'small')['type'] == 'agent_status_ack'
        ws.close_cleanly()


def test_broadcast_per_s_is_per_user():
    user = unique_user()
    with Gateway({'server': {'workers': '1'},
                  'handler.agent_status': {'plugin': 'agent_status', 'broadcast_per_s': '2'}}) as g:
        a = ws_handshake(g.port, make_token(user))
        b = ws_handshake(g.port, make_token(user))
        kinds = []
        for i in range(6):
            ws = (a, b)[i % 2]
            _status(ws, 'r%d' % i)
            m = _reply(ws, 'r%d' % i)
            kinds.append(m['type'] if m['type'] != 'error' else m['message'])
        assert kinds.count('agent_status_ack') == 2 and \
            kinds.count('Rate limit exceeded') == 4, kinds
        other = ws_handshake(g.port, make_token(unique_user()))
        _status(other, 'o')
        assert _reply(other, 'o')['type'] == 'agent_status_ack'      # its own bucket
        for ws in (a, b, other):
            ws.close_cleanly()


def test_updates_name_their_sender_and_agent_id_can_be_bound_to_a_claim():
    with Gateway({'handler.agent_status': {'plugin': 'agent_status',
                                           'agent_id_claim': 'agents'}}) as g:
        user = unique_user()
        ws = ws_handshake(g.port, make_token(user, extra={'agents': ['a1', 'a7']}))
        listener = ws_handshake(g.port, make_token(unique_user()))
        _status(ws, 'ok', agent='a7')
        assert _reply(ws, 'ok')['type'] == 'agent_status_ack'
        upd = listener.recv_type('agent_status_update')
        assert upd['from'] == user and upd['agentId'] == 'a7', upd
        _status(ws, 'no', agent='a2')
        m = _reply(ws, 'no')
        assert m['type'] == 'error' and 'not yours' in m['error'], m
        ws.close_cleanly()
        listener.close_cleanly()


def test_admin_api_through_require_claim():
    with Gateway({'admin': {'require_claim': 'team:ops'}}) as g:
        req = b'GET /api/connections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n'
        st, _, _ = http_request(g.port, req % make_token('x', extra={'role': 'admin'}).encode())
        assert st == 403, st
        st, _, body = http_request(g.port, req % make_token('y', extra={'team': 'ops'}).encode())
        assert st == 200, (st, body)


def test_check_mode_refuses_unknown_keys_of_the_shipped_plugins():
    from harness import check_config
    for sec, key in (('handler.ping', 'reply_typo'), ('handler.batch', 'max_message'),
                     ('handler.agent_status', 'include_senders')):
        plugin = sec.split('.')[1]
        rc, out, err = check_config({sec: {'plugin': plugin, key: '1'}})
        assert rc != 0 and "unknown key '%s'" % key in err, (sec, rc, out, err)
    rc, out, err = check_config({'handler.ping': {'plugin': 'ping', 'reply_type': 'pong',
                                                  'require_claim': 'a:b', 'broadcast_per_s': '5',
                                                  'max_message_bytes': '4k'}})
    assert rc == 0, err


# ------------------------------------------------------------ descriptors run out

def test_fd_exhaustion_pauses_accepting_and_logs_once():
    """At the descriptor limit accept() fails; the gateway used to retry at
    once and log every failure (hundreds of thousands of lines). Now the
    listener pauses and backs off, one accept_failed line per 10 s counts
    the failures, the clients already connected are served, and accepting
    resumes once descriptors are free."""
    import socket
    import stat
    import tempfile
    import harness
    wrapper = tempfile.NamedTemporaryFile('w', suffix='-mcpgw', delete=False)
    wrapper.write('#!/bin/sh\nulimit -n 64\nexec %s "$@"\n' % harness.MCPGW)
    wrapper.close()
    os.chmod(wrapper.name, stat.S_IRWXU)
    saved = harness.MCPGW
    harness.MCPGW = wrapper.name
    try:
        g = Gateway({'server': {'workers': '1'}, 'log': {'level': 'info'}})
    finally:
        harness.MCPGW = saved
        os.unlink(wrapper.name)
    with g:
        served = ws_handshake(g.port, make_token(unique_user()))
        hogs = []
        try:
            for _ in range(120):        # more than the gateway has descriptors for
                s = socket.create_connection(('127.0.0.1', g.port), timeout=5)
                hogs.append(s)
            g.wait_log('accept_failed', timeout=5)
            cpu0 = sum(_cpu_ticks(p) for p in g.worker_pids())
            time.sleep(2)
            cpu = sum(_cpu_ticks(p) for p in g.worker_pids()) - cpu0
            lines = g.logs('accept_failed')
            assert len(lines) == 1, len(lines)
            assert cpu < 50, 'the worker spun: %d ticks in 2 s' % cpu       # 100 ticks = 1 s
            served.ping_roundtrip('still served')
        finally:
            for s in hogs:
                s.close()
        # descriptors free again: new clients get in (the handshake timeout
        # reaps the hogs' accepted connections; the rest were never accepted)
        wait_until(lambda: _handshake_ok(g), timeout=15, what='accepting again')
        served.close_cleanly()


def _cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _handshake_ok(g):
    try:
        ws = ws_handshake(g.port, make_token(unique_user()), timeout=1)
    except Exception:
        return False
    ws.close_cleanly()
    return True


def test_check_mode_runs_each_plugins_init():
    """mcpgw -t used to call a configuration valid that made a plugin refuse
    to start; it now runs every section's init (no sockets) and says why."""
    from harness import check_config
    rc, out, err = check_config({'handler.agent_status': {'plugin': 'agent_status',
                                                          'include_sender': 'perhaps'}})
    assert rc != 0 and 'include_sender must be true or false' in err, (rc, out, err)
    rc, out, err = check_config({'handler.batch': {'plugin': 'batch', 'max_messages': '-3'}})
    assert rc != 0 and 'max_messages' in err, (rc, out, err)
    rc, out, err = check_config({})
    assert rc == 0 and 'is valid' in out, (rc, out, err)
