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
        assert any(u.endswith('/api/connections') for u in info['requests']), info['requests']


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
