"""
test_mcp.py - MCP through the gateway: [endpoint.NAME] sections speaking
JSON-RPC (subprotocol mcp) and the shipped mcp_stdio plugin in front of the
real @modelcontextprotocol/server-everything over stdio, driven by the
official @modelcontextprotocol/sdk client (tests/mcp/driver.mjs), by a raw
python3-websockets client (tests/mcp/raw_client.py) and by hand-made frames.
"""
import json
import os
import signal
import time

from harness import (Gateway, HandshakeError, SECRET, check_config, client, http_request,
                     make_token, process_gone, start_expect_exit, unique_user, wait_until,
                     ws_handshake)
from mcp_support import descendants, driver, endpoint, raw_client

MCP_PATH = '/mcp/everything'
ALL = ['initialize', 'tools-list', 'echo', 'sum', 'progress', 'structured', 'resources',
       'prompts', 'logging', 'cancel', 'concurrent']


def _gw(sessions='per-connection', workers=None, server=None, **extra):
    sections = {'endpoint.everything': endpoint(sessions, **extra)}
    if workers or server:
        sections['server'] = dict(server or {})
        if workers:
            sections['server']['workers'] = str(workers)
    return Gateway(sections)


def _url(g, path=MCP_PATH):
    return 'ws://127.0.0.1:%d%s' % (g.port, path)


def _assert_all_ok(rc, results, err, wanted):
    seen = {r['scenario'].split(':')[0]: r for r in results}
    bad = [r for r in results if not r.get('ok')]
    assert rc == 0 and not bad, 'driver exit %d, failed: %s\n%s' % (rc, json.dumps(bad)[:2000],
                                                                      err[-2000:])
    missing = [s for s in wanted if s not in seen]
    assert not missing, 'scenarios not run: %r (%s)' % (missing, err[-500:])


def _mcp(g, user=None, claims=None, **kw):
    """A raw JSON-RPC WebSocket on the MCP endpoint (subprotocol mcp)."""
    tok = make_token(user or unique_user(), extra=claims) if claims else \
        make_token(user or unique_user())
    return ws_handshake(g.port, tok, path=kw.pop('path', MCP_PATH),
                        headers={'Sec-WebSocket-Protocol': 'mcp'}, read_welcome=False, **kw)


def _initialize(ws, id_=1):
    ws.send_json({'jsonrpc': '2.0', 'id': id_, 'method': 'initialize',
                  'params': {'protocolVersion': '2025-06-18', 'capabilities': {},
                             'clientInfo': {'name': 'raw', 'version': '1'}}})
    r = _answer(ws, id_, timeout=20)
    assert 'result' in r and r['result'].get('serverInfo'), r
    ws.send_json({'jsonrpc': '2.0', 'method': 'notifications/initialized'})
    return r


def _answer(ws, id_, timeout=10):
    """The next message that answers id_ (notifications are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        m = ws.recv_json(max(0.01, deadline - time.monotonic()))
        if isinstance(m, list) or m.get('id') == id_ and 'method' not in m:
            return m


def _echo(ws, id_, text='hi'):
    ws.send_json({'jsonrpc': '2.0', 'id': id_, 'method': 'tools/call',
                  'params': {'name': 'echo', 'arguments': {'message': text}}})
    return _answer(ws, id_)


# ------------------------------------------------------------ the official SDK

def test_official_sdk_client_per_connection_sessions():
    """Every scenario of the official client through mcpgw to
    server-everything, a child per session."""
    with _gw('per-connection') as g:
        rc, results, err = driver(_url(g), make_token(unique_user()), '--scenario', ','.join(ALL))
        _assert_all_ok(rc, results, err, ALL)


def test_official_sdk_client_shared_children():
    """The same with shared:2 children, two workers, and the SDK's
    connection twice in a row (the second is answered from the cached
    initialize)."""
    with _gw('shared:2', workers=2) as g:
        for _ in range(2):
            rc, results, err = driver(_url(g), make_token(unique_user()), '--scenario',
                                      ','.join(ALL))
            _assert_all_ok(rc, results, err, ALL)


def test_sdk_token_in_authorization_header():
    with _gw() as g:
        rc, results, err = driver(_url(g), make_token(unique_user()), '--token-in', 'header',
                                  '--scenario', 'initialize,echo')
        _assert_all_ok(rc, results, err, ['initialize', 'echo'])


def test_child_sees_only_the_allow_listed_environment():
    """The gateway's secret is in its environment; the child sees FOO and
    nothing else (env = FOO=bar)."""
    sections = {'endpoint.everything': endpoint('per-connection', env='FOO=bar')}
    with Gateway(sections, env={'MCPGW_JWT_SECRET': SECRET, 'GATEWAY_ONLY': 'x'}) as g:
        rc, results, err = driver(_url(g), make_token(unique_user()), '--scenario', 'env',
                                  '--expect-env-keys', 'FOO', '--forbid-env', 'MCPGW_JWT_SECRET',
                                  '--forbid-env', 'GATEWAY_ONLY')
        _assert_all_ok(rc, results, err, ['env'])


def test_env_can_pass_a_named_gateway_variable():
    sections = {'endpoint.everything': endpoint('per-connection', env='PASSME FOO=1')}
    with Gateway(sections, env={'PASSME': 'yes', 'NOTME': 'no'}) as g:
        rc, results, err = driver(_url(g), make_token(unique_user()), '--scenario', 'env',
                                  '--expect-env-keys', 'PASSME,FOO', '--forbid-env', 'NOTME')
        _assert_all_ok(rc, results, err, ['env'])


# ------------------------------------------------------------ raw JSON-RPC

def test_raw_python_websockets_client_with_a_batch():
    """python3-websockets: initialize, tools/list and a batch [ping, echo]
    answered as one array."""
    with _gw() as g:
        rc, out = raw_client(_url(g), make_token(unique_user()), '--batch', 'expect')
        assert rc == 0, out[-3000:]


def test_subprotocol_mcp_is_answered_and_no_welcome_is_sent():
    with _gw() as g:
        ws = _mcp(g)
        assert ws.headers.get('sec-websocket-protocol') == 'mcp', ws.headers
        ws.send_json({'jsonrpc': '2.0', 'id': 7, 'method': 'ping'})
        first = ws.recv_json(20)
        assert first.get('id') == 7 and first.get('result') == {}, first
        ws.close_cleanly()


def test_malformed_messages_get_jsonrpc_errors_and_the_session_goes_on():
    with _gw() as g:
        ws = _mcp(g)
        ws.send_text('not json')
        m = ws.recv_json()
        assert m['error']['code'] == -32700 and m['id'] is None, m
        ws.send_text('42')
        m = ws.recv_json()
        assert m['error']['code'] == -32600, m
        ws.send_text('[]')
        m = ws.recv_json()
        assert m['error']['code'] == -32600, m
        ws.send_json({'id': 3, 'method': 'ping'})                  # no "jsonrpc"
        m = ws.recv_json()
        assert m['error']['code'] == -32600 and m['id'] == 3, m
        ws.send_json([{'jsonrpc': '2.0', 'id': 4, 'method': 'ping'}, 5])
        m = _answer(ws, None, timeout=20)
        assert isinstance(m, list) and len(m) == 2, m
        by_id = {json.dumps(x.get('id')): x for x in m}
        assert by_id['4'].get('result') == {}, m
        assert by_id['null']['error']['code'] == -32600, m
        _initialize(ws, 8)
        assert _echo(ws, 9)['result']['content'][0]['text'] == 'Echo: hi'
        ws.close_cleanly()


def test_binary_message_is_closed_1003():
    with _gw() as g:
        ws = _mcp(g)
        ws.send_binary(b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
        code, _ = ws.expect_protocol_close(1003)
        assert code == 1003
        ws.close()


def test_string_ids_and_colliding_ids_across_sessions_are_mapped_back():
    """Two sessions on one shared child use the same ids; each gets its own
    answers."""
    with _gw('shared:1') as g:
        a, b = _mcp(g), _mcp(g)
        _initialize(a, 'init')
        _initialize(b, 'init')
        for ws, tag in ((a, 'A'), (b, 'B')):
            ws.send_json({'jsonrpc': '2.0', 'id': 'x', 'method': 'tools/call',
                          'params': {'name': 'echo', 'arguments': {'message': tag}}})
        assert _answer(a, 'x')['result']['content'][0]['text'] == 'Echo: A'
        assert _answer(b, 'x')['result']['content'][0]['text'] == 'Echo: B'
        a.close_cleanly()
        b.close_cleanly()


# ------------------------------------------------------------ children

def test_killed_child_closes_its_per_connection_session_1011():
    with _gw() as g:
        ws = _mcp(g)
        _initialize(ws)
        started = g.wait_log('child_started')
        os.kill(started['pid'], signal.SIGKILL)
        code, reason = ws.expect_protocol_close(1011, timeout=10)
        assert b'signal 9' in reason, reason
        ws.close()
        g.wait_log('mcp_child_exited')
        assert _echo(_initialize_ws(g), 2)['result']


def _initialize_ws(g):
    ws = _mcp(g)
    _initialize(ws)
    return ws


def test_killed_shared_child_fails_in_flight_requests_and_is_restarted():
    with _gw('shared:1') as g:
        ws = _mcp(g)
        _initialize(ws)
        pid = g.wait_log('child_started')['pid']
        mark = g.mark()
        ws.send_json({'jsonrpc': '2.0', 'id': 'long', 'method': 'tools/call',
                      'params': {'name': 'trigger-long-running-operation',
                                 'arguments': {'duration': 30, 'steps': 3}}})
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        m = _answer(ws, 'long', timeout=10)
        assert m['error']['code'] == -32005, m
        new = g.wait_log('child_started', since=mark, timeout=10)
        assert new['pid'] != pid
        # the same session goes on: the new child was initialised by the gateway
        m = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = _echo(ws, 'again')
            if 'result' in m:
                break
            time.sleep(0.2)
        assert m and m['result']['content'][0]['text'] == 'Echo: hi', m
        ws.close_cleanly()


def test_two_hundred_sessions_leave_no_child_behind():
    with _gw(workers=2) as g:
        workers = g.worker_pids()
        for i in range(200):
            ws = _mcp(g)
            ws.send_json({'jsonrpc': '2.0', 'id': i, 'method': 'ping'})
            if i % 20 == 0:
                assert _answer(ws, i, timeout=20).get('result') == {}
            if i % 2:
                ws.close_cleanly()
            else:
                ws.abort()
        wait_until(lambda: not descendants(workers), timeout=20,
                   what='every MCP child to be gone')
        assert len(g.logs('child_started')) == 200


def test_in_flight_requests_are_cancelled_when_the_client_leaves():
    """The child hears notifications/cancelled before it is stopped: with a
    shared child (which survives the session) the gateway's log shows the
    child still serving, and the cancelled request's answer goes nowhere."""
    with _gw('shared:1') as g:
        ws = _mcp(g)
        _initialize(ws)
        ws.send_json({'jsonrpc': '2.0', 'id': 'slow', 'method': 'tools/call',
                      'params': {'name': 'trigger-long-running-operation',
                                 'arguments': {'duration': 2, 'steps': 2},
                                 '_meta': {'progressToken': 'p'}}})
        m = ws.recv_json(20)        # a progress notification: the call runs
        while m.get('method') == 'notifications/tools/list_changed':
            m = ws.recv_json(20)
        assert m.get('method') == 'notifications/progress' and m['params']['progressToken'] == 'p', m
        ws.abort()
        other = _mcp(g)
        _initialize(other, 'i2')
        assert _echo(other, 'e')['result']['content'][0]['text'] == 'Echo: hi'
        time.sleep(2.5)             # the cancelled call ends in the child meanwhile
        assert _echo(other, 'e2')['result']
        other.close_cleanly()


def test_request_timeout_answers_with_an_error():
    # long enough for node to start and answer initialize on a loaded machine
    with _gw(request_timeout_ms='3000') as g:
        ws = _mcp(g)
        _initialize(ws)
        ws.send_json({'jsonrpc': '2.0', 'id': 't', 'method': 'tools/call',
                      'params': {'name': 'trigger-long-running-operation',
                                 'arguments': {'duration': 20, 'steps': 1}}})
        t0 = time.monotonic()
        m = _answer(ws, 't', timeout=15)
        assert m['error']['code'] == -32004 and 'timed out' in m['error']['message'], m
        assert 2.5 < time.monotonic() - t0 < 10
        assert _echo(ws, 'after')['result']
        ws.close_cleanly()


def test_too_many_requests_in_flight_are_refused():
    with _gw(max_inflight='2') as g:
        ws = _mcp(g)
        _initialize(ws)
        for i in range(3):
            ws.send_json({'jsonrpc': '2.0', 'id': 'l%d' % i, 'method': 'tools/call',
                          'params': {'name': 'trigger-long-running-operation',
                                     'arguments': {'duration': 1, 'steps': 1}}})
        m = _answer(ws, 'l2')
        assert m['error']['code'] == -32003, m
        ws.close_cleanly()


def test_max_children_refuses_a_session_with_1013():
    # one worker: the limits are per worker process
    with _gw(workers=1, max_children_per_user='1') as g:
        user = unique_user()
        a = _mcp(g, user=user)
        _initialize(a)
        b = _mcp(g, user=user)
        code, reason = b.expect_protocol_close(1013)
        assert b'limit' in reason, reason
        b.close()
        c = _mcp(g)                 # another user is served
        _initialize(c)
        a.close_cleanly()
        c.close_cleanly()


# ------------------------------------------------------------ rules

def test_require_claim_refuses_the_upgrade_with_403():
    with _gw(require_claim='plan:pro') as g:
        try:
            _mcp(g)
            raise AssertionError('upgrade without the claim was accepted')
        except HandshakeError as e:
            assert e.status == 403 and b'claim' in e.body, (e.status, e.body)
        ws = _mcp(g, claims={'plan': ['free', 'pro']})
        _initialize(ws)
        ws.close_cleanly()
        assert g.logs('websocket_auth_failed')[-1]['reason'] == 'claim_required'


def test_tool_rules_refuse_with_a_reason_and_hide_the_tool():
    extra = {'tools_deny': 'get-env', 'tools_allow.role.admin': 'get-env',
             'tools_deny.role.guest': 'get-sum'}
    with _gw(**extra) as g:
        ws = _mcp(g, claims={'role': 'guest'})
        _initialize(ws)
        ws.send_json({'jsonrpc': '2.0', 'id': 'env', 'method': 'tools/call',
                      'params': {'name': 'get-env', 'arguments': {}}})
        m = _answer(ws, 'env')
        assert m['error']['code'] == -32001 and 'tools_deny' in m['error']['data'], m
        ws.send_json({'jsonrpc': '2.0', 'id': 'sum', 'method': 'tools/call',
                      'params': {'name': 'get-sum', 'arguments': {'a': 1, 'b': 2}}})
        m = _answer(ws, 'sum')
        assert m['error']['code'] == -32001 and 'role=guest' in m['error']['data'], m
        ws.send_json({'jsonrpc': '2.0', 'id': 'list', 'method': 'tools/list'})
        names = [t['name'] for t in _answer(ws, 'list', timeout=20)['result']['tools']]
        assert 'echo' in names and 'get-env' not in names and 'get-sum' not in names, names
        ws.close_cleanly()

        admin = _mcp(g, claims={'role': 'admin'})
        _initialize(admin)
        admin.send_json({'jsonrpc': '2.0', 'id': 'env', 'method': 'tools/call',
                         'params': {'name': 'get-env', 'arguments': {}}})
        assert 'result' in _answer(admin, 'env'), 'the admin claim allows get-env'
        admin.close_cleanly()


def test_tool_calls_per_second_per_user():
    # one worker: the bucket is per user in each worker process
    with _gw(workers=1, tool_calls_per_s='2') as g:
        user = unique_user()
        a, b = _mcp(g, user=user), _mcp(g, user=user)
        _initialize(a)
        _initialize(b, 2)
        answers = [_echo(ws, 'r%d' % i) for i, ws in enumerate((a, b, a, b))]
        limited = [m for m in answers if 'error' in m]
        assert limited and all(m['error']['code'] == -32002 for m in limited), answers
        assert 'result' in answers[0]
        a.close_cleanly()
        b.close_cleanly()


# ------------------------------------------------------------ side by side

def test_jsonrpc_endpoint_and_gateway_protocol_side_by_side():
    sections = {'endpoint.everything': endpoint(),
                'endpoint.legacy': {'path': '/v1/ws', 'protocol': 'mcpgw'}}
    with Gateway(sections) as g:
        mcp = _mcp(g)
        _initialize(mcp)
        legacy = client(g)                       # [server] path: welcome, ping
        legacy.ping_roundtrip('a')
        other = ws_handshake(g.port, make_token(unique_user()), path='/v1/ws')
        assert other.welcome['type'] == 'connection_established'
        other.ping_roundtrip('b')
        mcp.send_json({'jsonrpc': '2.0', 'id': 1, 'type': 'ping'})   # no method
        assert _answer(mcp, 1)['error']['code'] == -32600
        assert _echo(mcp, 2)['result']
        for ws in (mcp, legacy, other):
            ws.close_cleanly()


def test_endpoint_metrics():
    with _gw() as g:
        ws = _mcp(g)
        _initialize(ws)
        _echo(ws, 2)
        ws.send_json({'jsonrpc': '2.0', 'id': 3, 'method': 'tools/call',
                      'params': {'name': 'nope', 'arguments': {}}})
        _answer(ws, 3)
        st, _, body = http_request(g.port, b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
        text = body.decode()
        assert st == 200
        assert 'mcpgw_endpoint_sessions_open{endpoint="everything"} 1' in text, text[-3000:]
        assert 'mcpgw_endpoint_children{endpoint="everything"} 1' in text
        assert 'mcpgw_endpoint_requests_total{endpoint="everything",method="tools/call"} 2' in text
        assert 'mcpgw_endpoint_requests_total{endpoint="everything",method="initialize"} 1' in text
        assert 'mcpgw_endpoint_request_duration_seconds_count{endpoint="everything"}' in text
        ws.close_cleanly()
        wait_until(lambda: 'mcpgw_endpoint_children{endpoint="everything"} 0' in
                   http_request(g.port, b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')[2].decode(),
                   timeout=10, what='children gauge back to 0')


# ------------------------------------------------------------ configuration

def test_endpoint_configuration_errors():
    cases = [
        ({'endpoint.a': {'path': '/ws', 'plugin': 'mcp_stdio', 'command': 'x'}},
         'already [server] path'),
        ({'endpoint.a': {'path': '/m', 'plugin': 'mcp_stdio', 'command': 'x'},
          'endpoint.b': {'path': '/m', 'plugin': 'mcp_stdio', 'command': 'x'}},
         'already used by [endpoint.a]'),
        ({'endpoint.a': {'path': '/m', 'plugin': 'mcp_stdio', 'command': 'x', 'colour': 'red'}},
         "unknown key 'colour'"),
        ({'endpoint.a': {'path': '/m', 'command': 'x'}}, "missing key 'plugin'"),
        ({'endpoint.a': {'plugin': 'mcp_stdio'}}, "missing key 'path'"),
        ({'endpoint.a': {'path': '/m', 'plugin': 'ping'}}, 'not a connection-level plugin'),
        ({'endpoint.a': {'path': '/metrics', 'plugin': 'mcp_stdio'}}, "gateway's own"),
        ({'endpoint.a': {'path': '/m', 'protocol': 'soap', 'plugin': 'mcp_stdio'}},
         'jsonrpc, mcpgw or echo'),
        ({'endpoint.a': {'path': '/m', 'protocol': 'mcpgw', 'plugin': 'mcp_stdio'}},
         'takes no plugin'),
        (dict(('endpoint.e%d' % i, {'path': '/e%d' % i, 'protocol': 'mcpgw'}) for i in range(17)),
         'at most 16 endpoints'),
        ({'endpoint.' + 'n' * 64: {'path': '/m', 'protocol': 'mcpgw'}}, 'longer than 63'),
    ]
    for sections, needle in cases:
        rc, out, err = check_config(sections)
        assert rc != 0 and needle in out + err, (sections, rc, out, err)


def test_plugin_refuses_bad_values_at_start():
    sections = {'endpoint.everything': endpoint(sessions='shared:0')}
    rc, out, err = check_config(sections)
    # -t runs each plugin's init too (issue 15, item 11)
    assert rc != 0 and 'shared:N' in err and 'is valid' not in out, (rc, out, err)
    g = start_expect_exit(sections)
    assert g.returncode not in (0, None) and 'shared:N' in g.stderr_text(), g.stderr_text()[-2000:]


def test_a_crashed_worker_leaves_no_mcp_server_behind():
    """The supervisor is the subreaper: the MCP servers of a worker killed
    with SIGKILL come to it and are killed (orphans_killed)."""
    with _gw(workers=2) as g:
        ws = _mcp(g)
        _initialize(ws)
        child = g.wait_log('child_started')
        worker = [p for p in g.worker_pids() if child['pid'] in descendants([p])]
        assert worker, 'the child is not under a worker'
        os.kill(worker[0], signal.SIGKILL)
        g.wait_log('orphans_killed', timeout=10)
        wait_until(lambda: process_gone(child['pid']), timeout=10,
                   what='the orphaned MCP server to be gone')
        ws.close()


# ------------------------------------------------------------ edge cases (tests/mcp/fake_server.py)

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'mcp', 'fake_server.py')


def _fake_gw(sessions='per-connection', workers=1, **extra):
    sec = {'path': MCP_PATH, 'protocol': 'jsonrpc', 'plugin': 'mcp_stdio',
           'command': '/usr/bin/python3 %s' % os.path.abspath(FAKE), 'sessions': sessions}
    sec.update(extra)
    return Gateway({'endpoint.fake': sec, 'server': {'workers': str(workers)}})


def _call(ws, id_, name, **args):
    ws.send_json({'jsonrpc': '2.0', 'id': id_, 'method': 'tools/call',
                  'params': {'name': name, 'arguments': args}})


def _read_flood(ws, id_):
    """Reads the flood's notifications, which must come in order, up to
    the answer to id_; returns (how many, the answer)."""
    seen = 0
    while True:
        m = ws.recv_json(20)
        if m.get('id') == id_:
            return seen, m
        assert m['params']['data']['i'] == seen, (seen, m['params']['data']['i'])
        seen += 1


def test_a_child_flooding_a_slow_client_is_paused_not_cut():
    """26 MB of notifications to a client that reads nothing for 2 s: the
    child is paused (its stdout unread) instead of the gateway queueing past
    max_outbound_bytes (4 MiB), which would close the client 1008."""
    with _fake_gw() as g:
        ws = _mcp(g)
        _initialize(ws)
        _call(ws, 'f', 'flood', count=400, size=65536)
        time.sleep(2)
        seen, m = _read_flood(ws, 'f')
        assert seen == 400 and m['result']['content'][0]['text'] == 'sent'
        assert not g.logs('websocket_slow_consumer')
        ws.close_cleanly()


def test_child_stderr_is_logged_with_a_rate_limit():
    with _fake_gw() as g:
        ws = _mcp(g)
        _initialize(ws)
        _call(ws, 's1', 'stderr', lines=500)
        assert 'result' in _answer(ws, 's1')
        time.sleep(1.2)
        _call(ws, 's2', 'stderr', lines=1)
        assert 'result' in _answer(ws, 's2')
        rec = g.wait_log('child_stderr_suppressed', timeout=5)
        logged = [r for r in g.logs('child_stderr') if r['pid'] == rec['pid']]
        assert 20 <= len(logged) <= 22, len(logged)
        assert rec['lines'] + len(logged) >= 500, (rec, len(logged))
        ws.close_cleanly()


def test_a_crash_looping_shared_child_backs_off():
    sec = {'command': '/bin/false', 'sessions': 'shared:1', 'request_timeout_ms': '0'}
    with Gateway({'endpoint.fake': dict(sec, path=MCP_PATH, protocol='jsonrpc',
                                        plugin='mcp_stdio'),
                  'server': {'workers': '1'}}) as g:
        ws = _mcp(g)
        ws.send_json({'jsonrpc': '2.0', 'id': 1, 'method': 'ping'})
        time.sleep(2.5)
        starts = [r for r in g.logs('child_started')]
        # 0.1 + 0.2 + 0.4 + 0.8 s of backoff fit in 2.5 s: about five starts, not hundreds
        assert 3 <= len(starts) <= 7, len(starts)
        exits = g.logs('mcp_child_exited')
        assert exits and 'exited with code 1' in exits[0]['reason'], exits[:1]
        ws.close()


def test_idle_session_is_closed():
    with _fake_gw(idle_timeout_ms='600') as g:
        ws = _mcp(g)
        _initialize(ws)
        t0 = time.monotonic()
        code, reason = ws.expect_protocol_close(1000, timeout=5)
        assert reason == b'Idle timeout' and 0.5 < time.monotonic() - t0 < 3, (reason,)
        ws.close()


def test_a_shared_child_crash_fails_the_request_and_the_session_goes_on():
    with _fake_gw('shared:1') as g:
        ws = _mcp(g)
        _initialize(ws)
        _call(ws, 'c', 'crash')
        m = _answer(ws, 'c')
        assert m['error']['code'] == -32005 and 'code 3' in m['error']['data'], m
        g.wait_log('child_started', pred=lambda r: len(g.logs('child_started')) >= 2, timeout=5)
        deadline = time.monotonic() + 10
        while True:
            _call(ws, 'n', 'nothing')
            m = _answer(ws, 'n')
            if m['error']['code'] == -32602 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert m['error']['code'] == -32602, m      # the restarted child answers
        ws.close_cleanly()


def test_what_a_child_leaves_in_its_group_is_killed_when_it_ends():
    with _fake_gw() as g:
        ws = _mcp(g)
        _initialize(ws)
        _call(ws, 'p', 'spawn')
        helper = int(_answer(ws, 'p')['result']['content'][0]['text'])
        assert os.path.exists('/proc/%d' % helper)
        ws.close_cleanly()
        wait_until(lambda: process_gone(helper), timeout=10,
                   what='the child\'s helper process to be killed')


def test_a_paused_child_that_exits_loses_nothing():
    """The child writes 12 MB to a client that reads nothing for 2 s, then
    answers and exits: the answer still arrives, then the 1011 close."""
    with _fake_gw() as g:
        ws = _mcp(g)
        _initialize(ws)
        _call(ws, 'f', 'flood_exit', count=200, size=65536)
        time.sleep(2)
        seen, m = _read_flood(ws, 'f')
        assert seen == 200 and m['result']['content'][0]['text'] == 'sent', (seen, m)
        code, reason = ws.expect_protocol_close(1011, timeout=10)
        assert b'code 0' in reason, reason
        ws.close()


def test_server_requests_reach_the_one_client_or_are_refused_when_shared():
    with _fake_gw() as g:                       # per connection: the client answers
        ws = _mcp(g)
        _initialize(ws)
        _call(ws, 's', 'sample')
        req = ws.recv_json(10)
        assert req.get('method') == 'sampling/createMessage', req
        ws.send_json({'jsonrpc': '2.0', 'id': req['id'], 'result': {'role': 'assistant',
                      'content': {'type': 'text', 'text': 'from-client'}}})
        m = _answer(ws, 's')
        assert 'from-client' in m['result']['content'][0]['text'], m
        ws.close_cleanly()
    with _fake_gw('shared:1') as g:             # shared: refused, nobody else sees it
        a, b = _mcp(g), _mcp(g)
        _initialize(a)
        _initialize(b, 2)
        _call(a, 's', 'sample')
        m = _answer(a, 's')
        inner = json.loads(m['result']['content'][0]['text'])
        assert inner['error']['code'] == -32601 and 'shared' in inner['error']['message'], inner
        b.send_json({'jsonrpc': '2.0', 'id': 'x', 'method': 'ping'})
        assert _answer(b, 'x')['error']['code'] == -32601      # fake: no ping; no sampling seen
        a.close_cleanly()
        b.close_cleanly()


def test_a_shared_child_that_never_answers_initialize_is_replaced():
    sec = {'path': MCP_PATH, 'protocol': 'jsonrpc', 'plugin': 'mcp_stdio',
           'command': '/bin/sleep 100', 'sessions': 'shared:1', 'request_timeout_ms': '1000'}
    with Gateway({'endpoint.fake': sec, 'server': {'workers': '1'}}) as g:
        ws = _mcp(g)
        t0 = time.monotonic()
        ws.send_json({'jsonrpc': '2.0', 'id': 1, 'method': 'initialize',
                      'params': {'protocolVersion': '2025-06-18', 'capabilities': {},
                                 'clientInfo': {'name': 'raw', 'version': '1'}}})
        m = _answer(ws, 1, timeout=10)
        assert m['error']['code'] in (-32004, -32005), m
        assert time.monotonic() - t0 < 5
        rec = g.wait_log('mcp_child_exited', timeout=5)
        assert 'initialize' in rec['reason'], rec
        g.wait_log('child_started', pred=lambda r: len(g.logs('child_started')) >= 2, timeout=5)
        ws.close_cleanly()
