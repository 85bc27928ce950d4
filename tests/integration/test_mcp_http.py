"""
test_mcp_http.py - MCP Streamable HTTP on a jsonrpc endpoint (issue 13):
the official @modelcontextprotocol/sdk StreamableHTTPClientTransport
(tests/mcp/driver.mjs --transport http) through mcpgw to the real
server-everything over stdio, and raw HTTP/1.1 on a socket for every
status, keep-alive with pipelined requests, and an SSE stream dropped
mid-call and resumed with Last-Event-ID.
"""
import json
import os
import socket
import threading
import time

from harness import Gateway, make_token, metrics, process_gone, unique_user, wait_until
from mcp_support import descendants, driver, endpoint

PATH = '/mcp/everything'
FAKE = os.path.join(os.path.dirname(__file__), '..', 'mcp', 'fake_server.py')
ALL = ['initialize', 'tools-list', 'echo', 'sum', 'progress', 'structured', 'resources',
       'prompts', 'logging', 'cancel', 'concurrent']
INIT = {'jsonrpc': '2.0', 'id': 1, 'method': 'initialize',
        'params': {'protocolVersion': '2025-06-18', 'capabilities': {},
                   'clientInfo': {'name': 'raw', 'version': '1'}}}
BOTH = 'application/json, text/event-stream'


def _gw(sessions='per-connection', workers=1, server=None, **extra):
    sec = {'server': dict(server or {})}
    sec['server']['workers'] = str(workers)
    sec['endpoint.everything'] = endpoint(sessions, **extra)
    return Gateway(sec)


def _fake_gw(sessions='per-connection', server=None, **extra):
    sec = {'path': PATH, 'protocol': 'jsonrpc', 'plugin': 'mcp_stdio',
           'command': '/usr/bin/python3 %s' % os.path.abspath(FAKE), 'sessions': sessions}
    sec.update(extra)
    srv = {'workers': '1'}
    srv.update(server or {})
    return Gateway({'endpoint.fake': sec, 'server': srv})


class Http:
    """One HTTP/1.1 connection: requests written as given, answers read
    one by one (Content-Length or chunked), SSE events as they come."""

    def __init__(self, port, timeout=20):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.buf = b''

    def close(self):
        self.s.close()

    @staticmethod
    def format(method, path=PATH, headers=None, body=None, token=None):
        h = {'Host': '127.0.0.1'}
        if token:
            h['Authorization'] = 'Bearer ' + token
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            body = body.encode() if isinstance(body, str) else body
            h['Content-Type'] = 'application/json'
            h['Content-Length'] = str(len(body))
        h.update(headers or {})
        head = '%s %s HTTP/1.1\r\n' % (method, path)
        head += ''.join('%s: %s\r\n' % (k, v) for k, v in h.items() if v is not None)
        return head.encode() + b'\r\n' + (body or b'')

    def send(self, *a, **kw):
        self.s.sendall(self.format(*a, **kw))

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError('connection closed; buffered %r' % self.buf[:200])
        self.buf += d

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self):
        status = self._line()
        while status.startswith(b'HTTP/1.1 100'):
            self._line()
            status = self._line()
        code = int(status.split()[1])
        hdrs = {}
        while True:
            line = self._line()
            if not line:
                break
            k, v = line.decode().split(':', 1)
            hdrs[k.strip().lower()] = v.strip()
        return code, hdrs

    def chunk(self):
        """The next chunk of a chunked body (b'' at its end)."""
        n = int(self._line(), 16)
        data = self._take(n)
        self._take(2)
        return data

    def response(self):
        code, hdrs = self.head()
        if hdrs.get('transfer-encoding') == 'chunked':
            body = b''
            while True:
                c = self.chunk()
                if not c:
                    break
                body += c
        else:
            body = self._take(int(hdrs.get('content-length', '0')))
        return code, hdrs, body

    def events(self, until=None, limit=100):
        """SSE events of a chunked stream as (id, data) up to the end, or
        until until(data) is true."""
        out, pending = [], b''
        while len(out) < limit:
            c = self.chunk()
            if not c:
                return out, True
            pending += c
            while b'\n\n' in pending:
                raw, pending = pending.split(b'\n\n', 1)
                eid, data = None, []
                for line in raw.decode().split('\n'):
                    if line.startswith('id:'):
                        eid = line[3:].strip()
                    elif line.startswith('data:'):
                        data.append(line[5:].lstrip(' '))
                data = '\n'.join(data)
                out.append((eid, json.loads(data) if data else None))
                if until and data and until(out[-1][1]):
                    return out, False
        return out, False


def _post(port, body, token, sid=None, headers=None, conn=None):
    h = {'Accept': BOTH}
    if sid:
        h['Mcp-Session-Id'] = sid
    h.update(headers or {})
    c = conn or Http(port)
    c.send('POST', headers=h, body=body, token=token)
    r = c.response()
    if not conn:
        c.close()
    return r


def _session(port, token):
    code, hdrs, body = _post(port, INIT, token)
    assert code == 200, (code, body)
    sid = hdrs['mcp-session-id']
    assert len(sid) == 32 and json.loads(body)['result']['serverInfo'], body
    code, _, _ = _post(port, {'jsonrpc': '2.0', 'method': 'notifications/initialized'}, token, sid)
    assert code == 202, code
    return sid


def _echo(port, token, sid, id_, text='hi', conn=None):
    return _post(port, {'jsonrpc': '2.0', 'id': id_, 'method': 'tools/call',
                        'params': {'name': 'echo', 'arguments': {'message': text}}},
                 token, sid, conn=conn)


def _is_fake(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return b'fake_server.py' in f.read()
    except OSError:
        return False


def _assert_all_ok(rc, results, err, wanted):
    seen = {r['scenario'].split(':')[0] for r in results}
    bad = [r for r in results if not r.get('ok')]
    assert rc == 0 and not bad, 'driver exit %d, failed: %s\n%s' % (rc, json.dumps(bad)[:2000],
                                                                      err[-2000:])
    assert not [s for s in wanted if s not in seen], (results, err[-500:])


def _url(g):
    return 'ws://127.0.0.1:%d%s' % (g.port, PATH)


# ------------------------------------------------------------ the official SDK

def test_sdk_streamable_http_per_connection_sessions():
    """Every scenario of the official client's StreamableHTTPClientTransport
    (tools, progress over SSE, resources, prompts, logging, cancellation,
    20 concurrent calls), a child per session."""
    with _gw() as g:
        rc, results, err = driver(_url(g), make_token(unique_user()), '--transport', 'http',
                                  '--scenario', ','.join(ALL))
        _assert_all_ok(rc, results, err, ALL)
        assert results[0]['detail']['transport'] == 'streamable-http', results[0]


def test_sdk_streamable_http_shared_children_on_two_workers():
    """shared:2 children and two workers: a session lives in one worker, and
    the client's connections that the kernel gives the other worker are
    handed over to it (socket and bytes read) instead of getting 404."""
    with _gw('shared:2', workers=2) as g:
        for _ in range(2):
            rc, results, err = driver(_url(g), make_token(unique_user()), '--transport', 'http',
                                      '--scenario', ','.join(ALL))
            _assert_all_ok(rc, results, err, ALL)
        m = metrics(g.port)
        assert m['mcpgw_connection_handovers_total'] > 0, 'no connection ever landed elsewhere?'
        assert m['mcpgw_connection_handover_failures_total'] == 0, m
        assert not g.logs('mcp_http_rejected'), g.logs('mcp_http_rejected')


def test_http_and_websocket_sessions_side_by_side():
    """One endpoint, one user: an SDK session over WebSocket and one over
    Streamable HTTP at the same time, each with its own child."""
    with _gw() as g:
        user = unique_user()
        out = {}

        def run(kind):
            out[kind] = driver(_url(g), make_token(user), '--transport', kind, '--scenario',
                               'initialize,echo,progress,concurrent')
        ts = [threading.Thread(target=run, args=(k,)) for k in ('ws', 'http')]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        for kind in ('ws', 'http'):
            _assert_all_ok(*out[kind], ['initialize', 'echo', 'progress', 'concurrent'])
        started = g.logs('mcp_session_started')
        assert [r['user'] for r in started] == [user], started


# ------------------------------------------------------------ raw HTTP

def test_json_answers_sessions_and_delete():
    with _fake_gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        code, hdrs, body = _post(g.port, {'jsonrpc': '2.0', 'id': 7, 'method': 'ping'}, tok, sid,
                                 headers={'MCP-Protocol-Version': '2025-06-18'})
        assert code == 200 and hdrs['content-type'] == 'application/json', (code, hdrs)
        got = json.loads(body)
        assert got['id'] == 7 and got['error']['code'] == -32601, got    # the fake has no ping
        # a batch is answered with an array, in any order, one answer each
        code, hdrs, body = _post(g.port, [{'jsonrpc': '2.0', 'id': 'a', 'method': 'ping'},
                                          {'jsonrpc': '2.0', 'method': 'notifications/x'},
                                          {'jsonrpc': '2.0', 'id': 'b', 'method': 'ping'}],
                                 tok, sid)
        got = json.loads(body)
        assert code == 200 and sorted(m['id'] for m in got) == ['a', 'b'], (code, body)
        children = [p for p in descendants([g.proc.pid]) if _is_fake(p)]
        assert len(children) == 1, 'a per-connection session has its child'
        c = Http(g.port)
        c.send('DELETE', headers={'Mcp-Session-Id': sid}, token=tok)
        code, _, _ = c.response()
        assert code == 204, code
        wait_until(lambda: all(process_gone(p) for p in children), timeout=10,
                   what="the session's child to exit")
        code, _, body = _post(g.port, {'jsonrpc': '2.0', 'id': 8, 'method': 'ping'}, tok, sid)
        assert code == 404 and json.loads(body)['error']['message'] == 'Session not found', body


def test_every_refusal_has_its_status():
    with _fake_gw(server={'max_payload': '4096'}) as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        ping = {'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}

        def status(method='POST', headers=None, body=ping, token=tok):
            c = Http(g.port)
            h = {'Accept': BOTH, 'Mcp-Session-Id': sid}
            h.update(headers or {})
            c.send(method, headers=h, body=body if method == 'POST' else None, token=token)
            try:
                return c.response()
            finally:
                c.close()

        cases = [
            ('no session', dict(headers={'Mcp-Session-Id': None}), 400, 'Mcp-Session-Id'),
            ('unknown session', dict(headers={'Mcp-Session-Id': 'f' * 32}), 404, 'not found'),
            ('another user', dict(token=make_token(unique_user())), 404, 'not found'),
            ('bad version', dict(headers={'MCP-Protocol-Version': '1999-01-01'}), 400, 'version'),
            ('other version', dict(headers={'MCP-Protocol-Version': '2025-03-26'}), 400, 'version'),
            ('bad origin', dict(headers={'Origin': 'http://evil.example'}), 403, 'Origin'),
            ('wrong accept', dict(headers={'Accept': 'text/html'}), 406, 'accept'),
            ('not json', dict(body='{"jsonrpc":'), 400, 'Parse error'),
            ('not jsonrpc', dict(body={'id': 1}), 400, 'Invalid Request'),
            ('empty batch', dict(body=[]), 400, 'Invalid Request'),
            ('no token', dict(token=None), 401, 'Missing token'),
            ('bad token', dict(token='x.y.z'), 401, 'Invalid token'),
            ('method', dict(method='PUT', body=None), 405, 'Not Allowed'),
        ]
        for what, kw, want, text in cases:
            code, hdrs, body = status(**kw)
            assert code == want, (what, code, body)
            err = json.loads(body)['error']
            assert text.lower() in err['message'].lower(), (what, err)
            if want == 401:
                assert hdrs['www-authenticate'].startswith('Bearer'), (what, hdrs)
            if want == 405:
                assert 'POST' in hdrs['allow'], hdrs
        # the body is checked before it is read: over max_payload is 413
        c = Http(g.port)
        c.send('POST', headers={'Accept': BOTH, 'Mcp-Session-Id': sid}, token=tok,
               body='[' + ','.join(['{"jsonrpc":"2.0","method":"x"}'] * 200) + ']')
        code, _, _ = c.response()
        assert code == 413, code
        # a Content-Type that is not JSON is 415
        c = Http(g.port)
        raw = Http.format('POST', headers={'Accept': BOTH, 'Mcp-Session-Id': sid}, token=tok,
                          body=ping).replace(b'application/json\r\nContent-Length',
                                             b'text/plain\r\nContent-Length')
        c.s.sendall(raw)
        assert c.response()[0] == 415
        # GET without text/event-stream is 406; a second GET stream is 409
        code, _, _ = status('GET', headers={'Accept': 'application/json'})
        assert code == 406, code
        first = Http(g.port)
        first.send('GET', headers={'Accept': 'text/event-stream', 'Mcp-Session-Id': sid},
                   token=tok)
        assert first.head()[0] == 200
        code, _, _ = status('GET', headers={'Accept': 'text/event-stream'})
        assert code == 409, code
        # and after all that, the session still works
        code, _, body = _post(g.port, ping, tok, sid)
        assert code == 200 and json.loads(body)['id'] == 1, body
        reasons = {r.get('reason') for r in g.logs('mcp_http_rejected')}
        assert {'session_missing', 'session_unknown', 'bad_protocol_version',
                'origin_not_allowed', 'not_acceptable', 'stream_busy'} <= reasons, reasons


def test_keep_alive_with_pipelined_requests():
    """Four requests written at once on one connection are answered in
    order on it; an HTTP/1.0 request or Connection: close ends it."""
    with _fake_gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        c = Http(g.port)
        h = {'Accept': BOTH, 'Mcp-Session-Id': sid}
        c.s.sendall(b''.join(Http.format('POST', headers=h, token=tok,
                                         body={'jsonrpc': '2.0', 'id': i, 'method': 'ping'})
                             for i in range(3)) +
                    Http.format('POST', headers=h, token=tok,
                                body={'jsonrpc': '2.0', 'method': 'notifications/x'}))
        ids = []
        for _ in range(3):
            code, hdrs, body = c.response()
            assert code == 200 and 'connection' not in hdrs, (code, hdrs)
            ids.append(json.loads(body)['id'])
        assert ids == [0, 1, 2], ids
        assert c.response()[0] == 202
        # the same connection serves the next one later, then closes on request
        time.sleep(0.2)
        c.send('POST', headers=dict(h, Connection='close'), token=tok,
               body={'jsonrpc': '2.0', 'id': 9, 'method': 'ping'})
        code, hdrs, body = c.response()
        assert code == 200 and hdrs.get('connection') == 'close', hdrs
        assert c.s.recv(10) == b'', 'closed after Connection: close'


def test_sse_stream_dropped_mid_call_resumes_with_last_event_id():
    """A tools/call with a progress token is answered as SSE; its
    connection drops after the first progress event; GET with that event's
    id replays what followed, the result included, and ends the stream."""
    with _gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        c = Http(g.port)
        c.send('POST', headers={'Accept': BOTH, 'Mcp-Session-Id': sid}, token=tok,
               body={'jsonrpc': '2.0', 'id': 'long', 'method': 'tools/call',
                     'params': {'name': 'trigger-long-running-operation',
                                'arguments': {'duration': 2, 'steps': 4},
                                '_meta': {'progressToken': 'p1'}}})
        code, hdrs = c.head()
        assert code == 200 and hdrs['content-type'] == 'text/event-stream', hdrs
        events, _ = c.events(until=lambda m: m.get('method') == 'notifications/progress')
        assert events[0][1] is None and events[0][0].endswith('-0'), 'a priming event first'
        last_id = events[-1][0]
        assert events[-1][1]['params']['progress'] == 1, events
        c.close()                                   # dropped mid-call
        time.sleep(2.5)                             # the call ends meanwhile
        r = Http(g.port)
        r.send('GET', headers={'Accept': 'text/event-stream', 'Mcp-Session-Id': sid,
                               'Last-Event-ID': last_id}, token=tok)
        code, _ = r.head()
        assert code == 200
        events, ended = r.events()
        msgs = [m for _, m in events if m]
        assert ended, 'the stream ends after its answer'
        assert [m['params']['progress'] for m in msgs if m.get('method')] == [2, 3, 4], msgs
        assert msgs[-1]['id'] == 'long' and 'completed' in \
            msgs[-1]['result']['content'][0]['text'], msgs[-1]
        # the stream is gone once it was read to its end
        r2 = Http(g.port)
        r2.send('GET', headers={'Accept': 'text/event-stream', 'Mcp-Session-Id': sid,
                                'Last-Event-ID': last_id}, token=tok)
        assert r2.response()[0] == 404


def test_server_requests_go_to_the_get_stream_and_the_answer_comes_back():
    with _fake_gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        listen = Http(g.port)
        listen.send('GET', headers={'Accept': 'text/event-stream', 'Mcp-Session-Id': sid},
                    token=tok)
        assert listen.head()[0] == 200
        call = Http(g.port)
        call.send('POST', headers={'Accept': BOTH, 'Mcp-Session-Id': sid}, token=tok,
                  body={'jsonrpc': '2.0', 'id': 's', 'method': 'tools/call',
                        'params': {'name': 'sample', 'arguments': {}}})
        events, _ = listen.events(until=lambda m: m.get('method') == 'sampling/createMessage')
        req = events[-1][1]
        code, _, _ = _post(g.port, {'jsonrpc': '2.0', 'id': req['id'], 'result': {
            'role': 'assistant', 'content': {'type': 'text', 'text': 'from-http-client'}}},
            tok, sid)
        assert code == 202
        code, _, body = call.response()
        assert code == 200 and 'from-http-client' in body.decode(), body


def test_idle_session_ends_and_user_slots_are_per_session():
    with _fake_gw(session_idle_ms='1000', server=None) as g:
        user = unique_user()
        tok = make_token(user)
        sid = _session(g.port, tok)
        time.sleep(2.2)
        code, _, _ = _post(g.port, {'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}, tok, sid)
        assert code == 404, code
        assert any(r.get('reason') == 'idle' for r in g.logs('mcp_session_ended'))
    with _fake_gw(server=None) as g:
        g2 = None
        user = unique_user()
        tok = make_token(user)
        sids = [_session(g.port, tok) for _ in range(5)]
        listeners = []
        for sid in sids:                     # every session busy: the sixth is refused
            h = Http(g.port)
            h.send('GET', headers={'Accept': 'text/event-stream', 'Mcp-Session-Id': sid},
                   token=tok)
            assert h.head()[0] == 200
            listeners.append(h)
        code, _, body = _post(g.port, INIT, tok)
        assert code == 429, (code, body)
        listeners[0].close()                 # the oldest idle session makes room
        time.sleep(0.2)
        code, _, _ = _post(g.port, INIT, tok)
        assert code == 200, code
        code, _, _ = _post(g.port, {'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}, tok, sids[0])
        assert code == 404, 'the least recently used idle session was ended'
        assert g2 is None


def test_http_metrics_per_transport():
    with _fake_gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        _post(g.port, {'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}, tok, 'f' * 32)
        m = metrics(g.port)
        assert m['mcpgw_endpoint_http_sessions_open{endpoint="fake"}'] == 1, m
        assert m['mcpgw_endpoint_http_requests_total{endpoint="fake",method="POST"}'] >= 3, m
        assert m['mcpgw_endpoint_http_responses_total{endpoint="fake",code="404"}'] == 1, m
        assert sid


# ------------------------------------------------------------ 2026-07-28

MODERN = '2026-07-28'


def _modern(port, body, token, headers=None, accept='application/json, text/event-stream'):
    """A 2026-07-28 POST: no session; MCP-Protocol-Version, Mcp-Method and
    Mcp-Name as the body says (headers may override or remove them)."""
    params = body.setdefault('params', {})
    params.setdefault('_meta', {})['io.modelcontextprotocol/protocolVersion'] = MODERN
    params['_meta'].setdefault('io.modelcontextprotocol/clientCapabilities', {})
    h = {'Accept': accept, 'MCP-Protocol-Version': MODERN, 'Mcp-Method': body['method']}
    name = params.get('name') or params.get('uri')
    if name:
        h['Mcp-Name'] = name
    h.update(headers or {})
    return _post(port, body, token, headers=h)


def test_2026_stateless_requests_discover_and_ids_of_several_clients():
    """2026-07-28 clients: no initialize, no session; server/discover tells
    the versions and the server's identity; results carry resultType; two
    clients of one user using the same id each get their own answer."""
    with _gw() as g:
        tok = make_token(unique_user())
        code, hdrs, body = _modern(g.port, {'jsonrpc': '2.0', 'id': 'd', 'method':
                                            'server/discover'}, tok)
        r = json.loads(body)
        assert code == 200 and r['id'] == 'd', (code, body)
        res = r['result']
        assert res['resultType'] == 'complete' and MODERN in res['supportedVersions'], res
        assert '2025-11-25' in res['supportedVersions'], res
        assert res['serverInfo']['name'] == 'mcp-servers/everything' and 'tools' in \
            res['capabilities'], res
        out = {}

        def call(i):
            out[i] = _modern(g.port, {'jsonrpc': '2.0', 'id': 1, 'method': 'tools/call',
                                      'params': {'name': 'echo',
                                                 'arguments': {'message': 'c%d' % i}}}, tok)
        ts = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        for i in range(4):
            code, _, body = out[i]
            m = json.loads(body)
            assert code == 200 and m['id'] == 1, (code, body)
            assert m['result']['content'][0]['text'] == 'Echo: c%d' % i, m
            assert m['result']['resultType'] == 'complete', m
        # progress over SSE: the client's own token and id come back
        c = Http(g.port)
        body = {'jsonrpc': '2.0', 'id': 'long', 'method': 'tools/call',
                'params': {'name': 'trigger-long-running-operation',
                           'arguments': {'duration': 1, 'steps': 2},
                           '_meta': {'progressToken': 'tk',
                                     'io.modelcontextprotocol/protocolVersion': MODERN,
                                     'io.modelcontextprotocol/clientCapabilities': {}}}}
        c.send('POST', token=tok, body=body, headers={
            'Accept': BOTH, 'MCP-Protocol-Version': MODERN, 'Mcp-Method': 'tools/call',
            'Mcp-Name': 'trigger-long-running-operation'})
        code, hdrs = c.head()
        assert code == 200 and hdrs['content-type'] == 'text/event-stream', hdrs
        events, ended = c.events()
        msgs = [m for _, m in events if m]
        assert ended and [m['params']['progressToken'] for m in msgs[:-1]] == ['tk', 'tk'], msgs
        assert msgs[-1]['id'] == 'long' and msgs[-1]['result']['resultType'] == 'complete', msgs
        started = g.logs('mcp_session_started')
        assert len(started) == 1, 'one hidden session serves the user: %r' % started


def test_2026_headers_must_match_the_body():
    with _gw() as g:
        tok = make_token(unique_user())
        call = {'jsonrpc': '2.0', 'id': 2, 'method': 'tools/call',
                'params': {'name': 'echo', 'arguments': {'message': 'x'}}}
        for what, headers in [('method', {'Mcp-Method': 'tools/list'}),
                              ('no method', {'Mcp-Method': None}),
                              ('name', {'Mcp-Name': 'get-env'}),
                              ('no name', {'Mcp-Name': None})]:
            code, _, body = _modern(g.port, json.loads(json.dumps(call)), tok, headers)
            err = json.loads(body)['error']
            assert code == 400 and err['code'] == -32001, (what, code, body)
            assert 'HeaderMismatch' in err['message'], (what, err)
        # the body's version and the header's must agree too
        body = json.loads(json.dumps(call))
        body['params']['_meta'] = {'io.modelcontextprotocol/protocolVersion': '2025-11-25'}
        h = {'Accept': BOTH, 'MCP-Protocol-Version': MODERN, 'Mcp-Method': 'tools/call',
             'Mcp-Name': 'echo'}
        code, _, out = _post(g.port, body, tok, headers=h)
        assert code == 400 and json.loads(out)['error']['code'] == -32001, (code, out)
        # no GET stream and no DELETE in 2026-07-28
        c = Http(g.port)
        c.send('GET', headers={'Accept': 'text/event-stream', 'MCP-Protocol-Version': MODERN},
               token=tok)
        code, hdrs, _ = c.response()
        assert code == 405 and hdrs['allow'] == 'POST', (code, hdrs)
        # and the matching request is served
        code, _, out = _modern(g.port, json.loads(json.dumps(call)), tok)
        assert code == 200 and json.loads(out)['result']['content'][0]['text'] == 'Echo: x', out


def test_2026_progress_and_subscriptions_listen_and_a_2025_session_side_by_side():
    with _fake_gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)                 # a 2025 client of the same user
        listen = Http(g.port)
        body = {'jsonrpc': '2.0', 'id': 'L', 'method': 'subscriptions/listen',
                'params': {'_meta': {'io.modelcontextprotocol/protocolVersion': MODERN,
                                     'io.modelcontextprotocol/clientCapabilities': {}}}}
        listen.send('POST', headers={'Accept': 'text/event-stream', 'MCP-Protocol-Version': MODERN,
                                     'Mcp-Method': 'subscriptions/listen'}, token=tok, body=body)
        code, hdrs = listen.head()
        assert code == 200 and hdrs['content-type'] == 'text/event-stream', hdrs
        # the fake's flood tool sends notifications on its own: they reach the listener
        code, _, out = _modern(g.port, {'jsonrpc': '2.0', 'id': 'f', 'method': 'tools/call',
                                        'params': {'name': 'flood',
                                                   'arguments': {'count': 3, 'size': 10}}}, tok)
        assert code == 200 and json.loads(out)['id'] == 'f', out
        events, _ = listen.events(until=lambda m: m.get('method') == 'notifications/message',
                                  limit=10)
        assert events[-1][1]['method'] == 'notifications/message', events
        # the 2025 session of the same user goes on beside it
        code, _, out = _post(g.port, {'jsonrpc': '2.0', 'id': 5, 'method': 'tools/call',
                                      'params': {'name': 'flood',
                                                 'arguments': {'count': 1, 'size': 5}}}, tok, sid)
        assert code == 200 and json.loads(out)['id'] == 5, out


def test_admin_api_lists_and_ends_http_sessions():
    """An HTTP session is a connection to the admin API: listed with
    transport "http", and ended by the user's disconnect."""
    with _fake_gw() as g:
        user = unique_user()
        tok = make_token(user)
        sid = _session(g.port, tok)
        admin = make_token(unique_user('admin'), extra={'role': 'admin'})
        c = Http(g.port)
        c.send('GET', path='/api/connections?detail=1', token=admin)
        code, _, body = c.response()
        listed = [e for e in json.loads(body)['list'] if e['user'] == user]
        assert code == 200 and len(listed) == 1 and listed[0]['transport'] == 'http', body
        assert listed[0]['path'] == PATH, listed
        c = Http(g.port)
        c.send('POST', path='/api/users/%s/disconnect' % user, token=admin,
               headers={'Content-Length': '0'})
        code, _, body = c.response()
        assert code == 200 and json.loads(body)['closed'] == 1, body
        code, _, _ = _post(g.port, {'jsonrpc': '2.0', 'id': 1, 'method': 'ping'}, tok, sid)
        assert code == 404, 'the session has ended'
        assert any(r.get('reason') == 'closed_by_admin' for r in g.logs('mcp_session_ended'))


# ------------------------------------------------ review findings (regressions)

def _answered(port, tok, sid, body, accept=BOTH, wait=5):
    c = Http(port, timeout=wait)
    c.send('POST', headers={'Accept': accept, 'Mcp-Session-Id': sid}, body=body, token=tok)
    try:
        return c.response()
    finally:
        c.close()


def test_a_cancelled_request_ends_its_post():
    """No answer is due to a cancelled request: its POST ends (a JSON answer
    with 202, nothing else being due) instead of staying open forever."""
    with _gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        c = Http(g.port, timeout=10)
        c.send('POST', headers={'Accept': 'application/json', 'Mcp-Session-Id': sid}, token=tok,
               body={'jsonrpc': '2.0', 'id': 9, 'method': 'tools/call',
                     'params': {'name': 'trigger-long-running-operation',
                                'arguments': {'duration': 5, 'steps': 5}}})
        time.sleep(1)
        code, _, _ = _post(g.port, {'jsonrpc': '2.0', 'method': 'notifications/cancelled',
                                    'params': {'requestId': 9}}, tok, sid)
        assert code == 202
        t0 = time.monotonic()
        code, _, body = c.response()
        assert code == 202 and not body and time.monotonic() - t0 < 3, (code, body)


def test_ids_repeated_in_a_batch_or_too_long_are_refused():
    with _fake_gw() as g:
        tok = make_token(unique_user())
        sid = _session(g.port, tok)
        code, _, body = _answered(g.port, tok, sid, [{'jsonrpc': '2.0', 'id': 5, 'method': 'ping'},
                                                     {'jsonrpc': '2.0', 'id': 5, 'method': 'ping'}])
        assert code == 400 and 'still open' in json.loads(body)['error']['message'], body
        code, _, body = _answered(g.port, tok, sid,
                                  {'jsonrpc': '2.0', 'id': 'x' * 1100, 'method': 'ping'})
        assert code == 400 and 'id' in json.loads(body)['error']['message'], body
        code, _, body = _answered(g.port, tok, sid,
                                  {'jsonrpc': '2.0', 'id': 'x' * 300, 'method': 'ping'})
        assert code == 200 and json.loads(body)['id'] == 'x' * 300, body


def test_a_stateless_request_open_when_the_session_ends_gets_its_own_id():
    with _fake_gw() as g:
        tok = make_token(unique_user())
        h = {'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'crash',
             'Accept': 'application/json'}
        c = Http(g.port, timeout=10)
        c.send('POST', headers=h, token=tok,
               body={'jsonrpc': '2.0', 'id': 'client-7', 'method': 'tools/call',
                     'params': {'name': 'crash', 'arguments': {}}})
        code, _, body = c.response()
        assert json.loads(body)['id'] == 'client-7', body


def test_head_gets_the_head_alone():
    with _fake_gw() as g:
        tok = make_token(unique_user())
        c = Http(g.port, timeout=3)
        c.send('HEAD', token=tok)
        code, hdrs = c.head()
        assert code == 405, code
        # nothing follows the head: the next answer on the connection is the next request's
        c.send('POST', headers={'Accept': BOTH}, token=tok, body=INIT)
        code, hdrs, body = c.response()
        assert code == 200 and json.loads(body)['id'] == 1, (code, body[:100])


def test_a_session_outlives_the_configuration_it_started_with():
    """Reloads free each earlier configuration snapshot once nothing uses it
    (issue 16); a session holds its endpoint section's until it ends: here it
    still answers after four reloads (it got 404 before: the lookup compared
    sections, and a reload makes new ones), then idles out, reading that
    section (under ASan a freed one is a crash); a new session works on the
    new snapshot."""
    import signal
    def reload(n):
        mark = len(g.records)
        g.conf.sections['endpoint.fake']['replay_bytes'] = str(1024 * (n + 1))
        g.conf.rewrite_main()
        g.signal(signal.SIGHUP)
        g.wait_every_worker('config_reloaded', since=mark)

    with _fake_gw(session_idle_ms='1500') as g:
        tok = make_token(unique_user())
        reload(0)       # the first snapshot stays (the plugin read its keys there)
        old = _session(g.port, tok)
        for n in range(1, 5):       # each reload drops the previous snapshot
            reload(n)
        code, _, body = _post(g.port, {'jsonrpc': '2.0', 'id': 5, 'method': 'ping'}, tok, old)
        assert code == 200 and json.loads(body)['id'] == 5, (code, body)
        ended = g.wait_log('mcp_session_ended', timeout=10)
        assert ended['endpoint'] == 'fake', ended
        sid = _session(g.port, tok)
        code, _, body = _post(g.port, {'jsonrpc': '2.0', 'id': 6, 'method': 'ping'}, tok, sid)
        assert code == 200 and json.loads(body)['id'] == 6, (code, body)
        assert g.alive()
