"""The live status page (GET /status, web/status.html), in a real headless
browser: Debian's chromium driven by playwright-core (tests/browser/).

The browser tests need /usr/bin/chromium (apt-get install chromium), node and
npm; playwright-core is installed from npm into $MCPGW_BUILDDIR/tests/.browser
at first use. Without them these tests FAIL with a message saying what to
install: they never pass silently.
"""
import atexit
import json
import os
import re
import sys
import time

from harness import SRCDIR, Gateway, client, http_request, make_token, unique_user

sys.path.insert(0, os.path.join(SRCDIR, 'tests', 'browser'))
import browser as browser_mod  # noqa: E402

PAGE_SRC = os.path.join(SRCDIR, 'web', 'status.html')
CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
       "connect-src 'self' ws: wss:; img-src data:")
ADMIN = {'admin': {'claim': 'role', 'value': 'admin'}}

_browser = None


def the_browser():
    """One headless chromium for the whole module (launching costs seconds);
    each test starts from about:blank."""
    global _browser
    if _browser is None or _browser.proc.poll() is not None:
        _browser = browser_mod.Browser()
        atexit.register(_browser.close)
    _browser.reset()
    return _browser


def get(port, path, token=None):
    auth = 'Authorization: Bearer %s\r\n' % token if token else ''
    return http_request(port, ('GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n'
                               % (path, auth)).encode())


def js(s):
    return json.dumps(s)


def open_page(b, gw, token):
    """Loads /status, pastes the token, clicks Connect, waits until the
    page's WebSocket is open."""
    r = b.goto('http://127.0.0.1:%d/status' % gw.port)
    assert r['status'] == 200, r
    assert r['headers'].get('content-security-policy') == CSP, r['headers']
    assert b.eval("document.getElementById('state').dataset.state") == 'idle'
    b.fill('#token', token)
    b.click('#connect')
    b.wait("document.getElementById('state').dataset.state === 'connected'",
           what='the page to show "connected"')


def agent_cells(b):
    """The agents table as [[agent, status, last update, updates], ...]."""
    return b.eval("Array.from(document.querySelectorAll('#agents tbody tr[data-agent]'))"
                  ".map(r => Array.from(r.cells).map(c => c.textContent))")


def wait_agent(b, agent_id, status_text, timeout=10):
    expr = ("Array.from(document.querySelectorAll('#agents tbody tr[data-agent]')).some(r => "
            "r.cells[0].textContent === %s && r.cells[1].textContent === %s)"
            % (js(agent_id), js(status_text)))
    try:
        b.wait(expr, timeout, what='agent %r with status %r' % (agent_id, status_text))
    except AssertionError as e:
        raise AssertionError('%s; table: %r' % (e, agent_cells(b)))


def assert_token_kept_private(b, gw, token):
    info = b.info()
    assert token not in info['url'], info['url']
    for u in info['requests'] + info['websockets']:
        assert token not in u, 'token in a URL the page requested: %s' % u[:120]
    assert all(not u.startswith(('http://', 'https://')) or
               u.startswith('http://127.0.0.1:%d/' % gw.port) for u in info['requests']), \
        'the page requested another origin: %r' % info['requests']
    assert token not in gw.stderr_text(), 'token in the gateway log'
    assert not info['errors'], 'page errors: %r' % info['errors']
    csp = [c for c in info['console'] if 'Content Security Policy' in c]
    assert not csp, 'CSP violations: %r' % csp
    return info


# ---------------------------------------------------------------- without a browser

def test_status_page_served_as_built():
    with Gateway() as gw:
        status, headers, body = get(gw.port, '/status')
        assert status == 200, (status, body[:200])
        assert headers.get('content-type') == 'text/html; charset=utf-8', headers
        assert headers.get('content-security-policy') == CSP, headers
        with open(PAGE_SRC, 'rb') as f:
            src = f.read()
        assert body == src, 'GET /status differs from web/status.html (%d vs %d bytes)' % (
            len(body), len(src))
        assert int(headers.get('content-length', -1)) == len(src), headers


def test_status_page_source_is_self_contained():
    with open(PAGE_SRC, encoding='utf-8') as f:
        page = f.read()
    # No external asset of any kind: every URL the page names is relative.
    assert not re.search(r'(?i)\b(src|href|action)\s*=\s*["\']?\s*(https?:|//)', page), \
        'external reference in the page'
    assert not re.search(r'(?i)url\(\s*["\']?\s*(https?:|//)', page), 'external url() in CSS'
    assert not re.search(r'(?i)@import', page)
    assert not re.search(r'(?i)<script[^>]+src=', page), 'external script'
    assert not re.search(r'(?i)<link[^>]+stylesheet', page), 'external stylesheet'
    # Untrusted data is never parsed as HTML, and the token never stored.
    for bad in ('innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(',
                'localStorage', 'sessionStorage', 'document.cookie', '?token='):
        assert bad not in page, 'the page uses %s' % bad
    # The token travels in the subprotocol and the Authorization header only.
    assert "['mcpgw', 'mcpgw.bearer.' + token]" in page
    assert "Authorization: 'Bearer ' + token" in page
    # The token input is a password field that no form submission can carry.
    m = re.search(r'<input[^>]*id="token"[^>]*>', page)
    assert m and 'type="password"' in m.group(0) and 'name=' not in m.group(0), m


# ---------------------------------------------------------------- in chromium

def test_status_page_shows_agent_status_live():
    b = the_browser()
    with Gateway(ADMIN) as gw:
        admin_user = unique_user('admin')
        token = make_token(admin_user, extra={'role': 'admin'})
        open_page(b, gw, token)
        gw.wait_log('websocket_connection', lambda r: r.get('user') == admin_user)

        other = client(gw)
        try:
            agent = 'agent-%d' % os.getpid()
            other.send_json({'type': 'agent_status', 'id': 'a1', 'agentId': agent,
                             'status': 'busy'})
            assert other.recv_type('agent_status_ack')['agentId'] == agent
            wait_agent(b, agent, 'busy')

            # A later update replaces the status in the same row.
            other.send_json({'type': 'agent_status', 'id': 'a2', 'agentId': agent,
                             'status': 'idle'})
            wait_agent(b, agent, 'idle')
            rows = [r for r in agent_cells(b) if r[0] == agent]
            assert len(rows) == 1 and rows[0][3] == '2', rows
            assert re.match(r'^\d\d:\d\d:\d\d$', rows[0][2]), rows

            # Non-string statuses are shown as JSON text; markup stays text.
            evil = '<img src=x onerror="window.__pwned=1">'
            other.send_json({'type': 'agent_status', 'id': 'a3', 'agentId': '<b>x</b>',
                             'status': {'load': 0.5, 'note': evil}})
            wait_agent(b, '<b>x</b>', json.dumps({'load': 0.5, 'note': evil},
                                                 separators=(',', ':')))
            assert b.eval("document.querySelectorAll('#agents img, #agents b, #log img').length") == 0
            assert b.eval('window.__pwned === undefined') is True

            # The polled counts: the page's own connection and `other`.
            b.wait("parseInt(document.getElementById('connections').textContent, 10) >= 2",
                   timeout=10, what='a connection count >= 2')
            b.wait("parseInt(document.getElementById('users').textContent, 10) >= 2",
                   timeout=10, what='a user count >= 2')
            per_user = b.eval("Array.from(document.querySelectorAll('#per-user tbody tr'))"
                              ".map(r => r.cells[0].textContent)")
            assert admin_user in per_user, per_user
            # Rates appear from the second poll on, as numbers per second.
            rate = b.wait("/^[0-9.]+k?$/.test(document.getElementById('rate-in').textContent)"
                          " && document.getElementById('rate-in').textContent", timeout=10,
                          what='a message rate')
            assert float(rate.rstrip('k')) >= 0, rate
            # The message log shows what arrived, newest first.
            kinds = b.eval("Array.from(document.querySelectorAll('#log .k')).map(e => e.textContent)")
            assert kinds[0] == 'agent_status_update' and kinds[-1] == 'connection_established', kinds
        finally:
            other.close_cleanly()

        info = assert_token_kept_private(b, gw, token)
        assert info['websockets'] == ['ws://127.0.0.1:%d/ws' % gw.port], info['websockets']
        assert any('/api/connections?detail=1' in u for u in info['requests']), info['requests']


def test_status_page_without_admin_claim():
    """A valid token that is not an admin's: the WebSocket part works, the
    page shows the gateway's error for /api/connections."""
    b = the_browser()
    with Gateway(ADMIN) as gw:
        token = make_token(unique_user('viewer'))
        status, _, body = get(gw.port, '/api/connections', token)
        assert status in (401, 403), (status, body)
        error = json.loads(body.decode())['error']
        open_page(b, gw, token)
        msg = b.wait("!document.getElementById('api-error').classList.contains('hidden') && "
                     "document.getElementById('api-error').textContent", what='the API error')
        assert error in msg and str(status) in msg, msg
        assert b.eval("document.getElementById('connections').textContent") == '\u2013'
        other = client(gw)
        try:
            other.send_json({'type': 'agent_status', 'id': 1, 'agentId': 'solo', 'status': 'ok'})
            wait_agent(b, 'solo', 'ok')
        finally:
            other.close_cleanly()
        assert b.eval("document.getElementById('state').dataset.state") == 'connected'
        assert_token_kept_private(b, gw, token)


def test_status_page_bad_token_and_disconnect():
    """A token the gateway refuses: the page does not claim to be connected
    and says why polling failed; Disconnect stops everything."""
    b = the_browser()
    with Gateway(ADMIN) as gw:
        token = make_token(unique_user('forger'), secret='not-the-secret', extra={'role': 'admin'})
        b.goto('http://127.0.0.1:%d/status' % gw.port)
        b.fill('#token', token)
        b.click('#connect')
        state = b.wait("['reconnecting', 'error'].includes("
                       "document.getElementById('state').dataset.state) && "
                       "document.getElementById('state').textContent", what='a refused connection')
        assert 'retrying' in state, state
        msg = b.wait("!document.getElementById('api-error').classList.contains('hidden') && "
                     "document.getElementById('api-error').textContent", what='the API error')
        assert '401' in msg, msg
        gw.wait_log('websocket_auth_failed')
        b.click('#disconnect')
        assert b.eval("document.getElementById('state').dataset.state") == 'idle'
        assert_token_kept_private(b, gw, token)
        # Nothing retries after Disconnect (an attempt already on the wire
        # may still land: count from a moment later).
        time.sleep(0.5)
        n = len(gw.logs('websocket_auth_failed'))
        time.sleep(2.5)
        assert len(gw.logs('websocket_auth_failed')) == n, 'the page kept reconnecting'


# ---------------------------------------------------------------- managing (issue 17)

def _conn_id(gw, ws):
    peer = '127.0.0.1:%d' % ws.sock.getsockname()[1]
    return gw.wait_log('websocket_connection', lambda r: r.get('ip') == peer)['connection']


def _wait_row(b, cid, present=True, timeout=10):
    expr = "!!document.querySelector('#conns tr[data-conn=\"%d\"]')" % cid
    b.wait(expr if present else '!' + expr, timeout,
           what='connection %d %s the list' % (cid, 'in' if present else 'gone from'))


def _agent_state(b, agent_id):
    return b.eval("(Array.from(document.querySelectorAll('#agents tbody tr[data-agent]'))"
                  ".find(r => r.cells[0].textContent === %s) || {}).dataset?.state || null"
                  % js(agent_id))


def test_status_page_manages_connections():
    """With two workers: the list shows a live connection (whichever worker
    holds it), its Disconnect button closes it (the client sees 1008), "All
    of user" closes a user's connections on both workers, Send broadcasts,
    the errors panel counts the 1008 closes, and agents grey out when silent
    or when their sender has left."""
    b = the_browser()
    sections = dict(ADMIN, server={'workers': 2}, auth={'max_connections_per_user': 20},
                    admin={'claim': 'role', 'value': 'admin', 'agent_silence_s': 3})
    with Gateway(sections) as gw:
        token = make_token(unique_user('ops'), extra={'role': 'admin'})
        open_page(b, gw, token)
        b.wait("!document.getElementById('conns-panel').classList.contains('hidden')",
               what='the connections panel')

        # One connection, listed, then closed from the page.
        target = client(gw)
        cid = _conn_id(gw, target)
        _wait_row(b, cid)
        row = b.eval("Array.from(document.querySelector('#conns tr[data-conn=\"%d\"]').cells)"
                     ".map(c => c.textContent)" % cid)
        assert row[1].startswith('user-') and row[2].startswith('127.0.0.1:'), row
        assert row[7] in ('0', '1'), row      # the worker column (two workers)
        b.click('#conns tr[data-conn="%d"] button[data-action="close"]' % cid)
        code, reason = target.expect_protocol_close(1008)
        assert (code, reason) == (1008, b'Closed by an administrator'), (code, reason)
        msg = b.wait("document.getElementById('action-result').textContent", what='a result')
        assert 'Closed connection %d' % cid in msg, msg
        _wait_row(b, cid, present=False)

        # All of a user's connections, on both workers.
        carol = unique_user('carol')
        carols, ids, workers = [], [], set()
        while len(carols) < 4 or len(workers) < 2:
            assert len(carols) < 20, 'carol never reached both workers'
            carols.append(client(gw, carol))
            ids.append(_conn_id(gw, carols[-1]))
            workers |= {r['worker'] for r in gw.logs('websocket_connection')
                        if r.get('connection') == ids[-1]}
        for i in ids:
            _wait_row(b, i)
        b.click('#conns tr[data-conn="%d"] button[data-action="user"]' % ids[0])
        for ws in carols:
            assert ws.expect_protocol_close(1008)[0] == 1008
        msg = b.wait("/Closed [0-9]+ connections of/.test(document.getElementById('action-result')"
                     ".textContent) && document.getElementById('action-result').textContent",
                     what='the user result')
        assert msg.startswith('Closed %d connections of %s' % (len(carols), carol)), msg
        for i in ids:
            _wait_row(b, i, present=False)

        # The errors panel counts the 1008s we sent (recent and total).
        recent = b.wait("(r => r && parseInt(r.cells[1].textContent, 10) >= 5 && r.cells[1].textContent)"
                        "(document.querySelector('#errors tr[data-error=\"close.sent.1008\"]'))",
                        what='five 1008 closes in the errors panel')
        assert int(recent) >= 5, recent
        assert b.eval("!!document.querySelector('#errors tr[data-error=\"slow\"]')")

        # Broadcast from the page.
        listener = client(gw)
        b.fill('#broadcast-body', '{"type":"notice","text":"from the page"}')
        b.click('#broadcast-send')
        assert listener.recv_type('notice') == {'type': 'notice', 'text': 'from the page'}
        msg = b.wait("/^Sent to/.test(document.getElementById('action-result').textContent) && "
                     "document.getElementById('action-result').textContent", what='sent')
        assert re.match(r'^Sent to \d+ recipients?\.$', msg), msg
        b.fill('#broadcast-body', '[1, 2]')
        b.click('#broadcast-send')
        assert 'JSON object' in b.eval("document.getElementById('action-result').textContent")

        # Agents: one whose sender leaves is greyed at once ("gone"), one that
        # keeps quiet greys after agent_silence_s (3 s).
        leaver = client(gw)
        leaver.send_json({'type': 'agent_status', 'id': 1, 'agentId': 'leaver', 'status': 'busy'})
        wait_agent(b, 'leaver', 'busy')
        listener.send_json({'type': 'agent_status', 'id': 2, 'agentId': 'quiet', 'status': 'busy'})
        wait_agent(b, 'quiet', 'busy')
        assert _agent_state(b, 'quiet') == 'live'
        leaver.close_cleanly()
        b.wait("(r => r && r.dataset.state === 'gone')(Array.from(document.querySelectorAll("
               "'#agents tbody tr[data-agent]')).find(r => r.cells[0].textContent === 'leaver'))",
               timeout=10, what='the agent whose sender left greyed as gone')
        b.wait("(r => r && r.dataset.state === 'silent')(Array.from(document.querySelectorAll("
               "'#agents tbody tr[data-agent]')).find(r => r.cells[0].textContent === 'quiet'))",
               timeout=10, what='the quiet agent greyed as silent')
        listener.send_json({'type': 'agent_status', 'id': 3, 'agentId': 'quiet', 'status': 'idle'})
        b.wait("(r => r && r.dataset.state === 'live')(Array.from(document.querySelectorAll("
               "'#agents tbody tr[data-agent]')).find(r => r.cells[0].textContent === 'quiet'))",
               what='the agent live again after an update')
        listener.close_cleanly()
        assert_token_kept_private(b, gw, token)
        adm = gw.logs('admin_disconnect') + gw.logs('admin_disconnect_user')
        assert len(adm) == 2 and all('admin' in r for r in adm), adm


def test_status_page_greys_out_when_the_gateway_is_gone():
    b = the_browser()
    gw = Gateway(ADMIN)
    try:
        token = make_token(unique_user('ops'), extra={'role': 'admin'})
        open_page(b, gw, token)
        b.wait("/^[0-9]+$/.test(document.getElementById('connections').textContent)",
               what='a polled count')
        opacity = "parseFloat(getComputedStyle(document.getElementById('connections')).opacity)"
        assert b.eval("document.getElementById('main').dataset.lost") == '0'
        assert b.eval(opacity) == 1
        assert b.eval("document.getElementById('lost').classList.contains('hidden')")
        gw.stop()
        b.wait("document.getElementById('main').dataset.lost === '1'", timeout=10,
               what='the page to notice it lost the gateway')
        assert b.eval(opacity) < 0.5
        note = b.eval("document.getElementById('lost').textContent")
        assert note.startswith('Lost the gateway') and \
            not b.eval("document.getElementById('lost').classList.contains('hidden')"), note
        # The stale numbers stay visible (greyed), not erased.
        assert re.match(r'^[0-9]+$', b.eval("document.getElementById('connections').textContent"))
        b.click('#disconnect')
    finally:
        gw.close()
