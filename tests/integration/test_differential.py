"""
test_differential.py - mcpgw against the reference server, side by side.

The reference is tests/reference/server.mjs: a Node program on the npm `ws`
and `jsonwebtoken` packages that follows the TypeScript reference plan's
message handling, error paths included (installed by
scripts/install-test-packages reference, as tests/run and .ci/run do through
this test). Every case below is one scripted conversation: the same bytes go
to the reference and to a gateway with the equivalent settings (the
harness's defaults: /ws, HS256 secret, ping/batch/agent_status, 1 MiB
max_payload, 5 connections per user), and each side's transcript is written
down: HTTP status and body before the upgrade, every message received
(timestamps checked for ISO 8601 and then replaced by "<T>"), close frames
(code, reason) and EOF.

The transcripts must be equal. A case that may differ names its accepted
differences, each an entry of DIFFERENCES (the reason, and README's
"Differences" section says the same) together with the exact rewrite of the
reference's transcript that gives mcpgw's: the case fails on any other
difference, and also when an accepted difference is gone (so the list stays
true). The TypeScript plan itself cannot run here (it needs its logger,
metrics and Express app); what the Node program leaves out is said at its top.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import zlib

import harness
from harness import (BUILDDIR, ISO_MS_RE, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                     SECRET, SRCDIR, ConnectionEOF, Gateway, HandshakeError, ServerClose,
                     build_frame, close_payload, connect, make_token, parse_http_response,
                     shared_gateway, unique_user, upgrade_request, ws_handshake)

# ------------------------------------------------------------------ accepted differences

# name -> why mcpgw answers otherwise (README "Differences" lists the same,
# with the key that restores the reference's behaviour where there is one).
DIFFERENCES = {
    'batch-dispatches':
        "batch runs each sub-message through the handler table and returns its real reply; "
        "the reference returns the placeholder {processed: true} for anything, even a "
        "sub-message that is not an object",
    'error-id':
        "a 'Failed to process message' error carries the message's id when it had one (an "
        "added field, so a client can tell which request failed)",
    'update-from':
        "agent_status_update carries 'from', the sender's authenticated user id (an added "
        "field: nobody can speak for another user)",
    'agent-id-required':
        "agent_status needs an agentId that is a string or an integer (what "
        "agent_id_claim checks and subscribers key on); the reference broadcasts anything",
    'close-reason':
        "when mcpgw fails a connection (1002, 1007, 1009) its close frame names the reason; "
        "ws sends the code alone",
    'type-cut':
        "the type echoed in 'Unknown message type: ...' is cut to 256 bytes",
    'exact-integers':
        "integers up to 2^63 are kept exactly; JSON.parse rounds beyond 2^53",
    'json-strict':
        "strings with \\u0000 or a lone surrogate escape, numbers beyond double's range and "
        "nesting deeper than 2048 are refused with a JSON error (jansson's values and the C "
        "handler API cannot hold them); JSON.parse accepts them",
    'binary-utf8':
        "a binary message that is not UTF-8 is a JSON error; Node decodes it with U+FFFD "
        "replacements",
    'auth-reserved':
        "'auth' is the gateway's in-band token refresh, a reserved type: a message of that "
        "type is answered as a refresh ('Authentication failed' when it carries no valid "
        "token) instead of 'Unknown message type: auth'",
    'subprotocol':
        "mcpgw answers only a subprotocol it speaks (mcpgw); ws without handleProtocols "
        "answers the client's first offer, whatever it is",
    'leeway':
        "exp and nbf are checked with [auth] leeway_s = 30 (0 restores the reference's)",
    'algorithms':
        "only [auth] algorithms are accepted, HS256 by default; jwt.verify() with a secret "
        "takes HS256, HS384 and HS512 ([auth] algorithms = HS256 HS384 HS512 restores it)",
    'user-id-required':
        "a token must name its user (user_claim, then sub); the reference counts such "
        "connections as 'anonymous'",
    'bearer-header':
        "the token may also come in Authorization: Bearer (or the subprotocol); the "
        "reference reads ?token= only",
    'http-strict':
        "before the upgrade mcpgw answers as RFC 6455 and 7230 say (404 for another path, "
        "426 for a missing upgrade or another version, with texts of its own); ws answers "
        "400 for another path, accepts version 8, and a plain request goes to the "
        "reference's Express app",
    'connection-count-released':
        "a user's connection count is released when a connection ends; the reference "
        "plan never calls handleConnectionClose(), so its sixth connection ever is refused",
    'sigterm-1001':
        "on SIGTERM mcpgw closes every connection with 1001 (after the replies in "
        "progress); the reference terminates the sockets without a close frame",
}

# ------------------------------------------------------------------ the two servers

REF_DIR = os.path.join(BUILDDIR, 'tests', 'reference-run')


def install_reference():
    """npm ci of tests/reference into the build tree (once per lock file)."""
    cmd = [os.path.join(SRCDIR, 'scripts', 'install-test-packages'), 'reference', BUILDDIR]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    assert p.returncode == 0, '%s failed:\n%s' % (' '.join(cmd), p.stdout.decode()[-2000:])


class Reference:
    """tests/reference/server.mjs on a port of its own. It looks enough like
    a harness Gateway (name, lines, alive(), close()) for the runner to stop
    it with the module's shared gateways and show its stderr on a failure."""

    def __init__(self, env=None):
        self.name = 'reference server'
        self.lines = []
        self.returncode = None
        self.shared = False
        install_reference()
        e = dict(os.environ, PORT='0', JWT_SECRET=SECRET)
        e.update(env or {})
        self.proc = subprocess.Popen(['node', os.path.join(REF_DIR, 'server.mjs')], cwd=REF_DIR,
                                     env=e, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith('{'):
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ''
            raise AssertionError('reference server did not start: %r %s' % (line, err[-2000:]))
        self.port = json.loads(line)['listening']
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self):
        for raw in self.proc.stderr:
            self.lines.append(raw.decode('utf-8', 'replace').rstrip('\n'))

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def close(self):
        self.returncode = self.proc.poll()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()


def reference():
    """The reference server the cases share, kept with the harness's shared
    gateways (the runner stops them at the end of the module)."""
    r = harness._shared.get('reference')
    if r is None or not r.alive():
        r = harness._shared['reference'] = Reference()
        r.shared = True
    return r


def gateway():
    return shared_gateway('differential')

# ------------------------------------------------------------------ transcripts

def norm(v):
    """A received JSON value with its timestamps checked and replaced."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k == 'timestamp' and isinstance(x, str) and ISO_MS_RE.match(x):
                out[k] = '<T>'
            else:
                out[k] = norm(x)
        return out
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


class Transcript:
    """What one server did in a case, in order, as a list of lines."""

    def __init__(self, port):
        self.port = port
        self.lines = []
        self.socks = []

    def add(self, *event):
        self.lines.append(list(event))

    def connect(self, name, token=None, user=None, path='/ws', headers=None, key=None):
        """Upgrades; records the welcome (or the refusal). Returns the RawWS or None."""
        if token is None:
            token = make_token(user or unique_user())
        elif token is False:
            token = None
        try:
            ws = ws_handshake(self.port, token, path=path, headers=headers, key=key)
        except HandshakeError as e:
            self.add(name, 'http', e.status, e.body.decode('utf-8', 'replace'))
            return None
        self.socks.append(ws)
        self.add(name, 'open', norm(ws.welcome))
        ws.name = name
        return ws

    def http(self, name, raw):
        """Records the status and body of the answer to raw bytes (the status
        alone for a 101)."""
        s = connect(self.port)
        try:
            s.sendall(raw)
            data = b''
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    b = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not b:
                    break
                data += b
                if data.startswith(b'HTTP/1.1 101 ') and b'\r\n\r\n' in data:
                    break
        finally:
            s.close()
        status, _, body = parse_http_response(data)
        self.add(name, 'http', status, '' if status == 101 else body.decode('utf-8', 'replace'))

    def recv(self, ws, n=1, timeout=5):
        """Records the next n messages (or the close / EOF that comes instead)."""
        for _ in range(n):
            try:
                op, payload = ws.recv_message(timeout)
            except socket.timeout:
                self.add(ws.name, 'nothing within %ss' % timeout)
                return
            except ServerClose as c:
                self.add(ws.name, 'close', c.code, _reason(c))
                return
            except ConnectionEOF:
                self.add(ws.name, 'eof')
                return
            self.add(ws.name, 'text' if op == OP_TEXT else 'binary', _decode(payload))

    def recv_close(self, ws, timeout=5):
        """Records what ends the connection: data messages first, then the
        close frame (answered) or an EOF without one."""
        while True:
            try:
                op, payload = ws.recv_message(timeout)
            except ServerClose as c:
                code, reason = c.code, _reason(c)
                self.add(ws.name, 'close', code, reason)
                try:
                    ws.send_close(code if code not in (None, 1005, 1006) else 1000)
                except OSError:
                    pass
                try:
                    ws.wait_eof(timeout)
                    self.add(ws.name, 'eof')
                except AssertionError as e:
                    self.add(ws.name, 'no eof', str(e)[:60])
                ws.close()              # and our side, as a client does
                return
            except ConnectionEOF:
                self.add(ws.name, 'eof')
                ws.close()
                return
            self.add(ws.name, 'text' if op == OP_TEXT else 'binary', _decode(payload))

    def fence(self, ws, id_='fence'):
        """Records everything up to the pong of a ping sent now (so no
        message is left unseen)."""
        ws.send_json({'type': 'ping', 'id': id_})
        for _ in range(50):
            before = len(self.lines)
            self.recv(ws)
            last = self.lines[-1] if len(self.lines) > before else None
            if not last or last[1] != 'text' or (
                    isinstance(last[2], dict) and last[2].get('type') == 'pong' and
                    last[2].get('id') == id_):
                return

    def close_all(self):
        for ws in self.socks:
            ws.close()


def _reason(c):
    r = c.reason or b''
    return r.decode('utf-8', 'replace') if isinstance(r, bytes) else r


def _decode(payload):
    text = payload.decode('utf-8', 'replace')
    try:
        return norm(json.loads(text))
    except ValueError:
        return text
    except RecursionError:      # deeper than python's json can go
        return {'too deep to decode': len(text)}


def fmt(lines):
    return '\n'.join(json.dumps(l, ensure_ascii=False)[:300] for l in lines)


def compare(name, scenario, accepted=(), ref_port=None, gw_port=None):
    """Runs scenario on both servers; the gateway's transcript must equal the
    reference's after the accepted rewrites, in order."""
    ref = Transcript(ref_port or reference().port)
    gw = Transcript(gw_port or gateway().port)
    for t in (ref, gw):
        try:
            scenario(t)
        finally:
            t.close_all()
    want = [list(l) for l in ref.lines]
    for diff, rewrite in accepted:
        assert diff in DIFFERENCES, 'unknown difference %r' % diff
        before = json.dumps(want)
        want = rewrite(want)
        assert json.dumps(want) != before, \
            '%s: accepted difference %r changes nothing here: remove it' % (name, diff)
    if want != gw.lines:
        raise AssertionError(
            '%s: mcpgw differs from the reference%s\n--- reference\n%s\n--- expected of mcpgw\n%s'
            '\n--- mcpgw\n%s' % (name, ' beyond %s' % [d for d, _ in accepted] if accepted else '',
                                  fmt(ref.lines), fmt(want), fmt(gw.lines)))


# ------------------------------------------------------------------ rewrites

def each_message(pred, change):
    """A rewrite applying change(msg) -> msg to every recorded message
    matching pred(msg)."""
    def rewrite(lines):
        out = []
        for l in lines:
            l = list(l)
            if l[1] in ('text', 'open') and isinstance(l[2], dict) and pred(l[2]):
                l[2] = change(dict(l[2]))
            out.append(l)
        return out
    return rewrite


def replace_line(index, *event):
    def rewrite(lines):
        out = [list(l) for l in lines]
        out[index] = list(event)
        return out
    return rewrite


def with_from(user):
    """'update-from': every agent_status_update names its sender."""
    return ('update-from', each_message(lambda m: m.get('type') == 'agent_status_update',
                                        lambda m: dict(m, **{'from': user})))


def close_reason(reason):
    """'close-reason': the close frames mcpgw sends name the reason."""
    def rewrite(lines):
        return [l[:3] + [reason] if l[1] == 'close' and l[3] == '' else l for l in lines]
    return ('close-reason', rewrite)


def json_error(text, id_=None):
    m = {'type': 'error', 'message': 'Failed to process message', 'error': text,
         'timestamp': '<T>'}
    if id_ is not None:
        m['id'] = id_
    return m


# ------------------------------------------------------------------ the cases

def one_connection(*messages, binary=False, fence=True):
    """A scenario: connect, send each message (text, bytes or object), read
    one reply each, then a fence and a clean close."""
    def scenario(t):
        ws = t.connect('c')
        for m in messages:
            data = m if isinstance(m, (str, bytes)) else json.dumps(m)
            if binary:
                ws.send_binary(data.encode() if isinstance(data, str) else data)
            else:
                ws.send_text(data)
            t.recv(ws)
        if fence:
            t.fence(ws)
        ws.send_close(1000, b'Client closed connection')
        t.recv_close(ws)
    return scenario


def test_welcome_and_client_close():
    """The welcome; a close 1000 "Client closed connection" is echoed with
    its code and reason."""
    compare('welcome', one_connection(fence=False))


def test_close_without_status_is_echoed_empty():
    def scenario(t):
        ws = t.connect('c')
        ws.send_frame(OP_CLOSE, b'')
        t.recv_close(ws)
    compare('empty close', scenario)


def test_ping():
    compare('ping', one_connection({'type': 'ping', 'id': 'p1'}, {'type': 'ping', 'id': 42},
                                   {'type': 'ping'}, {'type': 'ping', 'id': {'a': [1, None]}},
                                   {'type': 'ping', 'id': 'h\u00e9llo \U0001F600', 'x': 1},
                                   '{"type":"ping","id":0.6}', '{"type":"ping","id":-0}'))


def test_client_ping_frame_gets_pong():
    def scenario(t):
        ws = t.connect('c')
        ws.send_ping(b'are you there')
        while True:
            f = ws.recv_frame()
            if f.opcode == OP_PONG:
                t.add('c', 'pong', f.payload.decode())
                break
        ws.send_close(1000)
        t.recv_close(ws)
    compare('ping frame', scenario)


def test_unknown_type():
    compare('unknown type', one_connection({'type': 'foo', 'id': 'u1'}, {'type': 'foo'},
                                           {'type': '', 'id': 'empty'},
                                           {'type': 'PING', 'id': 'case'},
                                           {'type': 'we"ird\\ty\npe \u00e9', 'id': 9}))


def test_message_without_type():
    compare('no type', one_connection({'id': 'no-type'}, {}, {'ID': 1, 'Type': 'ping'}))


def test_values_that_are_not_objects():
    compare('not an object', one_connection('[1,2]', '42', '"ping"', 'true', 'false', '[]',
                                            'null', ' 7 '))


def test_types_that_are_not_strings():
    compare('type not a string', one_connection(
        *('{"type":%s,"id":"t"}' % v for v in
          ('5', '1.5', 'true', 'false', 'null', '{}', '{"a":1}', '["ping"]', '[1,[2,null],{}]',
           '1e21', '-0', '2.0', '1e-7', '0.000001', '-123.456e-10', '[]'))))


JSON_ERRORS = (
    'not json', '', '   ', '{"type": "ping", ', '{', '[', '{"a"', '{"a":', '{"a":1', '[1',
    '{"type":"ping"} x', '{"type":"ping"}}', 'x' * 50, '{"a":1,}', '[1,]', '[1 2]', '{a:1}',
    '{"a" 1}', '{"a":1,"b"}', '{"a" :1 , "b" 2}', '01', '-', '1.', '1e', '1e+', '+1', 'tru',
    'nul!', 'NaN', 'undefined', 'Infinity', '[object Object]', '"abc', '"a\tb"', '"a\\qb"',
    '"\\u12G4"', '"\\u12"', '"\\', '{"type":"agent_status","id":"a","agentId":"b","status":nope}',
    '{"type":"ping","id":"xx","bad":[tru]}', '{"type":"ping","x":[tru],"id":"xxxxxxxx"}',
    '{"\u00e9":"\u00fc" x}', '\u00e9', '["\u00fc","\U0001F600",oops]', '123abc', '0x10', '.5',
    '{"a":[1,2,', '{"type":"ping","id":1}{', 't rue', '\u00a0{}',
)


def require_node_20():
    """mcpgw's JSON error texts are JSON.parse's of Node 20 and later (V8
    11); an older Node words them otherwise ("Unexpected token o in JSON at
    position 1" in Node 18, Debian 12's), so it cannot be the reference here."""
    out = subprocess.run(['node', '--version'], stdout=subprocess.PIPE).stdout.decode().strip()
    major = int(out.lstrip('v').split('.')[0])
    assert major >= 20, ('the reference must run on Node 20 or later for its JSON.parse '
                         'texts; this node is %s' % out)


def test_json_errors_in_node_20_wording():
    require_node_20()
    compare('JSON errors', one_connection(*JSON_ERRORS))


def test_json_errors_in_binary_frames():
    require_node_20()
    compare('JSON errors, binary', one_connection(*JSON_ERRORS[:12], binary=True))


def test_binary_frame_ping():
    compare('binary ping', one_connection({'type': 'ping', 'id': 'bin'}, binary=True))


def test_fragmented_message():
    def scenario(t):
        ws = t.connect('c')
        text = json.dumps({'type': 'ping', 'id': 'frag-' + 'x' * 300})
        ws.send_frame(OP_TEXT, text[:10], fin=False)
        ws.send_ping(b'between')
        ws.send_frame(OP_CONT, text[10:200], fin=False)
        ws.send_frame(OP_CONT, text[200:], fin=True)
        t.recv(ws)
        ws.send_close(1000)
        t.recv_close(ws)
    compare('fragments', scenario)


def test_batch_placeholders_and_dispatch():
    msgs = [{'type': 'ping', 'id': 'a'}, {'type': 'nope', 'id': 'b'}, {'id': 'c'}]

    def dispatched(lines):
        # mcpgw's real replies where the reference has {processed: true}
        out = [list(l) for l in lines]
        r = dict(out[1][2])
        r['responses'] = [
            {'id': 'a', 'type': 'response', 'status': 'success',
             'result': {'type': 'pong', 'id': 'a', 'timestamp': '<T>'}},
            {'id': 'b', 'type': 'response', 'status': 'error',
             'error': 'Unknown message type: nope'},
            {'id': 'c', 'type': 'response', 'status': 'error',
             'error': 'Message must be a JSON object with a string type'},
        ]
        out[1][2] = r
        return out
    compare('batch', one_connection({'type': 'batch', 'id': 'B', 'messages': msgs}),
            accepted=[('batch-dispatches', dispatched)])


def test_batch_errors():
    compare('batch errors', one_connection({'type': 'batch', 'id': 'B1'},
                                           {'type': 'batch', 'id': 'B2', 'messages': {}},
                                           {'type': 'batch', 'id': 'B3', 'messages': 'x'},
                                           {'type': 'batch', 'messages': 'x'},
                                           {'type': 'batch', 'id': 'B4', 'messages': []}),
            accepted=[('error-id', lambda lines: [
                l if i not in (1, 2, 3) else l[:2] + [dict(l[2], id='B%d' % i)]
                for i, l in enumerate(lines)])])


def test_batch_with_null_sub_message():
    compare('batch null', one_connection({'type': 'batch', 'id': 'BN', 'messages': [None]}),
            accepted=[('batch-dispatches', replace_line(
                1, 'c', 'text', {'type': 'batch_response', 'id': 'BN', 'responses': [
                    {'type': 'response', 'status': 'error',
                     'error': 'Message must be a JSON object with a string type'}],
                    'timestamp': '<T>'}))])


def agent_status_scenario(report, user):
    def scenario(t):
        sender = t.connect('sender', user=user)
        other = t.connect('other')
        sender.send_json(report)
        t.fence(sender)
        t.fence(other)
        for ws in (sender, other):
            ws.send_close(1000)
            t.recv_close(ws)
    return scenario


def test_agent_status():
    user = unique_user()
    compare('agent_status', agent_status_scenario(
        {'type': 'agent_status', 'id': 's1', 'agentId': 'agent-7', 'status': 'busy'}, user),
        accepted=[with_from(user)])


def test_agent_status_without_status():
    user = unique_user()
    compare('agent_status no status', agent_status_scenario(
        {'type': 'agent_status', 'id': 'no-status', 'agentId': 'a1'}, user),
        accepted=[with_from(user)])


def test_agent_status_with_odd_status_values():
    user = unique_user()
    compare('agent_status odd status', agent_status_scenario(
        {'type': 'agent_status', 'id': 'odd', 'agentId': 42, 'status': {'busy': [1, None]}},
        user), accepted=[with_from(user)])


def test_agent_status_without_agent_id():
    user = unique_user()

    def refused(lines):
        # mcpgw: no update to anyone, one processing error to the sender
        out = []
        for l in lines:
            if l[1] == 'text' and l[2].get('type') in ('agent_status_update', 'agent_status_ack'):
                if l[2]['type'] == 'agent_status_ack':
                    out.append(['sender', 'text', json_error('agent_status requires agentId')])
                continue
            out.append(l)
        return out
    compare('agent_status no agentId', agent_status_scenario(
        {'type': 'agent_status', 'id': 'no-agent', 'status': 'idle'}, user),
        accepted=[('agent-id-required', refused), ('error-id', each_message(
            lambda m: m.get('error') == 'agent_status requires agentId',
            lambda m: dict(m, id='no-agent')))])


def test_long_unknown_type_is_cut():
    long_type = 'x' * 300
    compare('long type', one_connection({'type': long_type, 'id': 'L'}),
            accepted=[('type-cut', each_message(
                lambda m: m.get('message', '').startswith('Unknown message type: x'),
                lambda m: dict(m, message='Unknown message type: ' + 'x' * 256)))])


def test_integers_beyond_2_53():
    compare('big integer', one_connection('{"type":"ping","id":9007199254740993}'),
            accepted=[('exact-integers', each_message(lambda m: m.get('id') == 9007199254740992,
                                                      lambda m: dict(m, id=9007199254740993)))])


def test_values_json_parse_accepts_and_mcpgw_refuses():
    deep = '{"type":"ping","id":' + '[' * 3000 + ']' * 3000 + '}'
    compare('strict JSON', one_connection('{"type":"ping","id":"a\\u0000b"}',
                                          '{"type":"ping","id":"\\ud800"}',
                                          '{"type":"ping","id":1e400}', deep),
            accepted=[('json-strict', lambda lines: [lines[0]] + [
                ['c', 'text', json_error(text + ' in JSON at position %d' % pos)]
                for text, pos in (('\\u0000 is not allowed', 22),
                                  ('Lone surrogate in Unicode escape', 21),
                                  ('Number out of range', 20),
                                  ('Maximum nesting depth exceeded', 2067))] + lines[5:])])


def test_binary_message_that_is_not_utf8():
    data = b'{"type":"ping","id":"caf\xe9"}'
    compare('binary not UTF-8', one_connection(data, binary=True),
            accepted=[('binary-utf8', replace_line(
                1, 'c', 'text', json_error('Invalid UTF-8 in string in JSON at position 21')))])


# -- frames and limits

def violation(frame):
    def scenario(t):
        ws = t.connect('c')
        ws.send_raw(frame)
        t.recv_close(ws)
    return scenario


def test_payload_over_the_limit_closes_1009():
    big = json.dumps({'type': 'ping', 'id': 'x' * (1024 * 1024)})
    compare('over max_payload', violation(build_frame(OP_TEXT, big)),
            accepted=[close_reason('Message too big')])


def test_payload_at_the_limit_is_served():
    text = '{"type":"ping","id":"%s"}' % ('y' * (1024 * 1024 - len('{"type":"ping","id":""}')))
    assert len(text) == 1024 * 1024

    def scenario(t):
        ws = t.connect('c')
        ws.send_text(text)
        op, payload = ws.recv_message(10)
        m = json.loads(payload)
        t.add('c', 'pong', m['type'], len(m['id']))
        ws.send_close(1000)
        t.recv_close(ws)
    compare('at max_payload', scenario)


def test_invalid_utf8_text_closes_1007():
    compare('text not UTF-8', violation(build_frame(OP_TEXT, b'{"type":"ping","id":"\xff"}')),
            accepted=[close_reason('Invalid UTF-8 in text message')])


def test_unmasked_frame_closes_1002():
    compare('unmasked', violation(build_frame(OP_TEXT, '{"type":"ping"}', mask=False)),
            accepted=[close_reason('client frame is not masked')])


def test_unknown_opcode_closes_1002():
    compare('opcode 3', violation(build_frame(3, b'x')),
            accepted=[close_reason('unknown opcode')])


def test_invalid_close_code_closes_1002():
    compare('close 999', violation(build_frame(OP_CLOSE, close_payload(999))),
            accepted=[close_reason('Invalid close code')])


def test_compression_negotiated_and_used():
    ext = 'permessage-deflate; client_max_window_bits'

    def scenario(t):
        ws = t.connect('c', headers={'Sec-WebSocket-Extensions': ext})
        answer = ws.headers.get('sec-websocket-extensions', '')
        t.add('c', 'extensions', sorted(p.strip() for p in answer.split(';')))
        text = json.dumps({'type': 'ping', 'id': 'z' * 3000}).encode()
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
        ws.send_raw(build_frame(OP_TEXT, body[:-4], rsv=4))
        f = ws.recv_frame()
        d = zlib.decompressobj(-15)
        reply = json.loads(d.decompress(f.payload + b'\x00\x00\xff\xff'))
        t.add('c', 'compressed' if f.rsv == 4 else 'plain', norm(reply)['type'], len(reply['id']))
        ws.send_close(1000)
        t.recv_close(ws)
    compare('permessage-deflate', scenario)


# -- before the upgrade

def refused(token=None, **kw):
    def scenario(t):
        t.connect('c', token=token, **kw)
    return scenario


WELCOME = {'type': 'connection_established', 'message': 'Connected to MCP Server',
           'timestamp': '<T>'}


def test_missing_token_401():
    compare('no token', refused(token=False))
    compare('empty token', refused(token=''))


def test_invalid_tokens_401():
    good = make_token(unique_user())
    h, p, s = good.split('.')
    for name, tok in (('garbage', 'not-a-jwt'), ('bad signature', h + '.' + p + '.' + s[::-1]),
                      ('other secret', make_token(unique_user(), secret='another-secret')),
                      ('expired an hour ago', make_token(unique_user(), exp_in=-3600)),
                      ('not valid for an hour', make_token(unique_user(), nbf=3600)),
                      ('alg none', make_token(unique_user(), alg='none')),
                      ('exp not a number', make_token(unique_user(), extra={'exp': 'soon'}))):
        compare('token: ' + name, refused(token=tok))


def test_token_without_exp_is_accepted():
    compare('no exp', refused(token=make_token(unique_user(), exp_in=None)))


def token_refused_by_mcpgw(diff, token):
    compare('token (%s)' % diff, refused(token=token),
            accepted=[(diff, replace_line(0, 'c', 'http', 401, 'Unauthorized: Invalid token'))])


def test_token_expired_within_leeway():
    compare('expired 10 s ago', refused(token=make_token(unique_user(), exp_in=-10)),
            accepted=[('leeway', replace_line(0, 'c', 'open', WELCOME))])


def test_hs512_token():
    token_refused_by_mcpgw('algorithms', make_token(unique_user(), alg='HS512'))


def test_token_without_user_id():
    token_refused_by_mcpgw('user-id-required', make_token(None))


def test_token_in_authorization_header():
    tok = make_token(unique_user())
    compare('Authorization: Bearer', refused(token=False,
                                             headers={'Authorization': 'Bearer ' + tok}),
            accepted=[('bearer-header', replace_line(0, 'c', 'open', WELCOME))])


def http_case(name, raw, mcpgw=None):
    """mcpgw: its (status, body) where 'http-strict' says it answers otherwise."""
    accepted = ()
    if mcpgw is not None:
        accepted = [('http-strict', replace_line(0, 'c', 'http', *mcpgw))]
    compare(name, lambda t: t.http('c', raw), accepted=accepted)


def test_auth_is_a_reserved_type():
    def refresh_refused(error):
        return lambda m: {'type': 'error', 'message': 'Authentication failed', 'error': error,
                          'timestamp': '<T>', 'id': m['id']}
    compare('type auth', one_connection({'type': 'auth', 'id': 'a1'},
                                        {'type': 'auth', 'id': 'a2', 'token': 'x'}),
            accepted=[('auth-reserved', lambda lines: each_message(
                lambda m: m.get('id') == 'a1', refresh_refused('auth requires a token'))(
                each_message(lambda m: m.get('id') == 'a2', refresh_refused('Invalid token'))(
                    lines)))])


def test_subprotocol_answer():
    def scenario(t):
        for offer in ('chat', 'chat, mcpgw', 'mcpgw'):
            ws = t.connect('c', headers={'Sec-WebSocket-Protocol': offer})
            t.add('c', 'protocol', offer, ws.headers.get('sec-websocket-protocol'))
            ws.send_close(1000)
            t.recv_close(ws)
    compare('subprotocol', scenario, accepted=[('subprotocol', lambda lines: [
        l[:3] + [None if l[2] == 'chat' else 'mcpgw'] if l[1] == 'protocol' else l
        for l in lines])])


def test_http_post_405():
    http_case('POST', upgrade_request(token=make_token(unique_user()), method='POST'),
              (405, 'Method Not Allowed'))


def test_http_other_path():
    http_case('other path', upgrade_request('/other', token=make_token(unique_user())),
              (404, 'Not Found'))


def test_http_version_8():
    http_case('version 8', upgrade_request(token=make_token(unique_user()),
                                           headers={'Sec-WebSocket-Version': '8'}),
              (426, 'Unsupported WebSocket version'))


def test_http_without_upgrade():
    http_case('plain GET', b'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
              (426, 'Upgrade Required'))


def test_http_bad_key():
    http_case('bad key', upgrade_request(token=make_token(unique_user()), key='short'))


def test_connection_limit_per_user():
    user = unique_user()

    def scenario(t):
        socks = [t.connect('c%d' % i, user=user) for i in range(5)]
        t.connect('sixth', user=user)
        socks[0].send_close(1000)
        t.recv_close(socks[0])
        time.sleep(0.3)                 # the count is released after the close
        t.connect('after one closed', user=user)
    compare('5 per user', scenario)


# -- the reference plan as written, and shutdown (servers of their own)

def test_connection_count_leak_of_the_plan_as_written():
    """The plan never releases a user's count; mcpgw does."""
    ref = Reference({'REFERENCE_AS_WRITTEN': '1'})
    user = unique_user()

    def scenario(t):
        for i in range(6):
            ws = t.connect('c%d' % i, user=user)
            if ws:
                ws.send_close(1000)
                t.recv_close(ws)
                time.sleep(0.1)
    try:
        compare('plan as written', scenario, ref_port=ref.port,
                accepted=[('connection-count-released',
                           lambda lines: lines[:-1] + [['c5', 'open', WELCOME],
                                                       ['c5', 'close', 1000, ''],
                                                       ['c5', 'eof']])])
    finally:
        ref.close()


def test_sigterm():
    ref = Reference()
    gw = Gateway()
    try:
        def scenario(t):
            ws = t.connect('c')
            (ref if t.port == ref.port else gw).signal(signal.SIGTERM)
            t.recv_close(ws)
        compare('SIGTERM', scenario, ref_port=ref.port, gw_port=gw.port,
                accepted=[('sigterm-1001', lambda lines: lines[:1] + [
                    ['c', 'close', 1001, 'Server shutting down'], ['c', 'eof']])])
    finally:
        ref.close()
        gw.close()


def test_heartbeat_terminates_a_silent_client():
    """Both ping every interval and terminate a connection that did not
    answer the previous ping (here 300 ms on both)."""
    ref = Reference({'HEARTBEAT_MS': '300'})
    gw = Gateway({'heartbeat': {'interval_ms': '300'}})
    try:
        def scenario(t):
            ws = t.connect('c')
            pings = 0
            while True:
                try:
                    f = ws.recv_frame(5)
                except ConnectionEOF:
                    t.add('c', 'eof after pings', min(pings, 2))
                    return
                if f.opcode == OP_PING:
                    pings += 1
                    if pings == 1:
                        t.add('c', 'ping', f.payload.decode())
                else:
                    t.add('c', 'frame', f.opcode, f.payload.decode('utf-8', 'replace'))
        compare('heartbeat', scenario, ref_port=ref.port, gw_port=gw.port)
    finally:
        ref.close()
        gw.close()


def test_every_accepted_difference_is_used_and_documented():
    """The list is not a dumping ground: each entry is used by a case and
    named in README's Differences section."""
    here = open(__file__, encoding='utf-8').read()
    readme = open(os.path.join(SRCDIR, 'README.md'), encoding='utf-8').read()
    for name in DIFFERENCES:
        uses = here.count("'%s'" % name)
        assert uses >= 2, 'difference %r is not used by any case' % name
        assert '`%s`' % name in readme, 'difference %r is not in README' % name
