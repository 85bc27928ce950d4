"""
harness.py - the integration-test harness for mcpgw.

Runs the real gateway binary ($MCPGW_BUILDDIR/core/mcpgw) on a temporary
configuration directory, reads its JSON log lines from stderr, and talks to
it over plain TCP sockets (with a hand-written WebSocket client that can
also build deliberately broken frames) or through the `websockets` library.

Standard library plus python3-websockets only; run with /usr/bin/python3.
"""
import asyncio
import base64
import collections
import hashlib
import hmac
import itertools
import json
import os
import re
import shutil
import signal as signal_mod
import socket
import struct
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get('MCPGW_SRCDIR') or os.path.join(HERE, '..', '..'))
BUILDDIR = os.path.abspath(os.environ.get('MCPGW_BUILDDIR') or SRCDIR)
MCPGW = os.path.join(BUILDDIR, 'core', 'mcpgw')
PLUGIN_DIR = os.path.join(BUILDDIR, 'plugins', '.libs')
TEST_PLUGIN_DIR = os.path.join(BUILDDIR, 'tests', 'plugins', '.libs')
TEST_PLUGIN_SRC = os.path.join(SRCDIR, 'tests', 'plugins')
SHIPPED_CONF = os.path.join(SRCDIR, 'conf.d')

SECRET = 'test-secret'
WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
ISO_MS_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')

# Opcodes.
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class GatewayError(Exception):
    """The gateway did not start (or stop) as expected."""


class HandshakeError(AssertionError):
    """The server answered an upgrade request with something else than 101."""

    def __init__(self, status, headers, body):
        super().__init__('handshake refused: %r %r %r' % (status, headers, body))
        self.status, self.headers, self.body = status, headers, body


class ConnectionEOF(AssertionError):
    """The server closed the TCP connection."""


class ServerClose(AssertionError):
    """A close frame arrived where a data message was expected."""

    def __init__(self, code, reason):
        super().__init__('server sent close %r %r' % (code, reason))
        self.code, self.reason = code, reason


# ---------------------------------------------------------------- utilities

_counter = itertools.count(1)


def unique_user(prefix='user'):
    """A user id no other test uses, so per-user limits never interfere."""
    return '%s-%d-%d' % (prefix, os.getpid(), next(_counter))


def wait_until(pred, timeout=5.0, interval=0.02, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.1fs waiting for %s' % (timeout, what))
        time.sleep(interval)


def metrics(port):
    """GET /metrics, parsed: {'name{labels}': value}."""
    status, headers, body = http_request(port, b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
    assert status == 200, status
    assert headers['content-type'].startswith('text/plain; version=0.0.4'), headers
    values = {}
    for line in body.decode().splitlines():
        if line.startswith('#') or not line.strip():
            continue
        name, value = line.rsplit(' ', 1)
        values[name] = float(value)
    return values


def sanitized_build():
    """Is the gateway under test built with AddressSanitizer? (Its allocator
    keeps freed memory in quarantine: RSS bounds do not apply; its
    LeakSanitizer reports leaks at exit instead.)"""
    path = MCPGW
    libs = os.path.join(os.path.dirname(path), '.libs', os.path.basename(path))
    for p in (libs, path):
        if os.path.isfile(p):
            with open(p, 'rb') as f:
                if b'__asan_init' in f.read():
                    return True
    return False


def process_gone(pid):
    """Has pid exited (gone, or a zombie nobody reaped yet)?"""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def kernel_backlog_bound(sock):
    """An upper bound, in bytes, on what the kernel can hold between the
    gateway and this never-reading client socket: the gateway's send buffer
    (it sets no SO_SNDBUF, so TCP autotuning may grow it to tcp_wmem's
    maximum) plus this socket's actual receive buffer. A test that wants the
    gateway's own outbound queue to fill must send more than this."""
    try:
        with open('/proc/sys/net/ipv4/tcp_wmem') as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return wmem_max + rcvbuf


def slow_reader_socket(port, path='/ws', token=None, rcvbuf=4096):
    """A connected, upgraded raw socket that will never read: its receive
    buffer is shrunk before connect, so the TCP window it advertises stays
    small. The 101 answer is left unread in it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(('127.0.0.1', port))
    s.sendall(upgrade_request(path, token or make_token(unique_user())))
    return s


def run_async(coro, timeout=30):
    """Runs a coroutine to completion on a fresh event loop."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------- JWT

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


_HASHES = {'HS256': hashlib.sha256, 'HS384': hashlib.sha384, 'HS512': hashlib.sha512}


def make_token(user='alice', secret=SECRET, alg='HS256', exp_in=3600, nbf=None,
               extra=None, claims=None, header=None):
    """Mints a JWT. Default claims: {"id": user, "sub": user, "iat": now,
    "exp": now + exp_in}; `claims` replaces the id/sub/iat part (exp is still
    added from exp_in unless present or exp_in is None); nbf is seconds from
    now; `extra` is merged last. `header` replaces the header object (it may
    disagree with `alg`, which chooses how the token is really signed).
    alg 'none' gives an unsigned token "h.p."."""
    now = int(time.time())
    if claims is None:
        body = {'iat': now}
        if user is not None:
            body['id'] = user
            body['sub'] = user
    else:
        body = dict(claims)
    if exp_in is not None and 'exp' not in body:
        body['exp'] = now + exp_in
    if nbf is not None:
        body['nbf'] = now + nbf
    if extra:
        body.update(extra)
    hdr = header if header is not None else {'alg': alg, 'typ': 'JWT'}
    signing_input = b64url(json.dumps(hdr, separators=(',', ':'))) + '.' + \
        b64url(json.dumps(body, separators=(',', ':')))
    if alg.lower() == 'none':
        return signing_input + '.'
    digest = _HASHES[alg.upper()]
    sig = hmac.new(secret.encode() if isinstance(secret, str) else secret,
                   signing_input.encode('ascii'), digest).digest()
    return signing_input + '.' + b64url(sig)


# ---------------------------------------------------------------- configuration

# MCPGW_TEST_WORKERS=N runs every gateway of the suite with N workers
# (unless a test sets its own); the default is the gateway's.
TEST_WORKERS = os.environ.get('MCPGW_TEST_WORKERS')


def default_sections():
    server = {'listen': '127.0.0.1:0', 'path': '/ws'}
    if TEST_WORKERS:
        server['workers'] = TEST_WORKERS
    return {
        'server': server,
        'auth': {'jwt_secret': SECRET, 'algorithms': 'HS256'},
        'heartbeat': {'interval_ms': '30000'},
        'log': {'level': 'debug'},
        'plugins': {'dir': PLUGIN_DIR},
        'handler.ping': {'plugin': 'ping'},
        'handler.batch': {'plugin': 'batch'},
        'handler.agent_status': {'plugin': 'agent_status'},
    }


def merge_sections(overrides=None, defaults=True):
    """Defaults updated by overrides: a section mapped to None is removed, a
    key mapped to None is removed, anything else is set (as str)."""
    base = default_sections() if defaults else {}
    for sec, kv in (overrides or {}).items():
        if kv is None:
            base.pop(sec, None)
            continue
        d = base.setdefault(sec, {})
        for k, v in kv.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = str(v)
    return base


def render_ini(sections):
    out = ['; written by tests/integration/harness.py']
    for sec, kv in sections.items():
        out.append('[%s]' % sec)
        for k, v in kv.items():
            out.append('%s = %s' % (k, v))
        out.append('')
    return '\n'.join(out) + '\n'


class ConfDir:
    """A temporary configuration directory: 50-harness.ini rendered from
    sections (merged with the defaults unless defaults=False; not written at
    all when sections is False), plus raw files {name: text}."""

    MAIN = '50-harness.ini'

    def __init__(self, sections=None, files=None, defaults=True):
        self.path = tempfile.mkdtemp(prefix='mcpgw-conf-')
        self.sections = None
        if sections is not False:
            merged = merge_sections(sections, defaults)
            if merged:
                self.sections = merged
                self.write(self.MAIN, render_ini(merged))
        for name, text in (files or {}).items():
            self.write(name, text)

    def rewrite_main(self):
        self.write(self.MAIN, render_ini(self.sections))

    def write(self, name, text):
        p = os.path.join(self.path, name)
        with open(p, 'w') as f:
            f.write(text)
        return p

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def _child_env(env):
    e = dict(os.environ)
    e.pop('MCPGW_JWT_SECRET', None)
    if env:
        for k, v in env.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
    return e


def check_config(sections=None, files=None, defaults=True, env=None, conf_dir=None,
                 timeout=15):
    """Runs `mcpgw -t -c DIR`; returns (exit code, stdout, stderr)."""
    conf = None
    if conf_dir is None:
        conf = ConfDir(sections, files, defaults)
        conf_dir = conf.path
    try:
        p = subprocess.run([MCPGW, '-t', '-c', conf_dir], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=_child_env(env), timeout=timeout)
        return p.returncode, p.stdout.decode('utf-8', 'replace'), p.stderr.decode('utf-8', 'replace')
    finally:
        if conf:
            conf.cleanup()


# ---------------------------------------------------------------- test plugins

_built_plugins_dir = None


def built_test_plugin(name):
    """Path of a test plugin NAME.so: the one automake built, else one
    compiled here from tests/plugins/NAME.c (for runs outside `make check`)."""
    global _built_plugins_dir
    p = os.path.join(TEST_PLUGIN_DIR, name + '.so')
    if os.path.exists(p):
        return p
    if _built_plugins_dir is None:
        _built_plugins_dir = tempfile.mkdtemp(prefix='mcpgw-testplugins-')
    out = os.path.join(_built_plugins_dir, name + '.so')
    if not os.path.exists(out):
        flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'jansson', 'libevent'],
                               stdout=subprocess.PIPE, check=True).stdout.decode().split()
        subprocess.run(['gcc', '-shared', '-fPIC', '-O1', '-I' + os.path.join(SRCDIR, 'include'),
                        '-o', out, os.path.join(TEST_PLUGIN_SRC, name + '.c')] + flags, check=True)
    return out


def shipped_plugin(name):
    return os.path.join(PLUGIN_DIR, name + '.so')


def plugin_dir_with(**plugins):
    """A temporary plugins dir holding copies: {name_in_dir: source_path}."""
    d = tempfile.mkdtemp(prefix='mcpgw-plugins-')
    for name, src in plugins.items():
        shutil.copy(src, os.path.join(d, name + '.so'))
    _temp_dirs.append(d)
    return d


_temp_dirs = []


def plugin_dir_with_shipped(**extra):
    """A temporary plugins dir with the shipped ping, batch and agent_status
    plugins plus extra {name_in_dir: source_path}."""
    plugins = {n: shipped_plugin(n) for n in ('ping', 'batch', 'agent_status')}
    plugins.update(extra)
    return plugin_dir_with(**plugins)


def cleanup_temp_dirs():
    while _temp_dirs:
        shutil.rmtree(_temp_dirs.pop(), ignore_errors=True)
    global _built_plugins_dir
    if _built_plugins_dir:
        shutil.rmtree(_built_plugins_dir, ignore_errors=True)
        _built_plugins_dir = None


# ---------------------------------------------------------------- the gateway

_live = []          # every Gateway not closed yet
_created = []       # every Gateway created since the runner last asked


class Gateway:
    """One gateway process on a temporary configuration.

    sections: {section: {key: value}} merged over the defaults (None
    removes); files: extra raw {filename: text}; env: extra environment.
    """

    def __init__(self, sections=None, files=None, env=None, defaults=True, start=True,
                 startup_timeout=10, name=None):
        self.conf = ConfDir(sections, files, defaults)
        self.env = env or {}
        self.name = name or 'gateway'
        self.proc = None
        self.port = None
        self.address = None
        self.lines = []         # every stderr line, raw text
        self.records = []       # stderr lines that parsed as JSON objects
        self.stdout_lines = []
        self._cond = threading.Condition()
        self._eof = 0
        self._threads = []
        self.returncode = None
        self.shared = False
        _live.append(self)
        _created.append(self)
        if start:
            try:
                self.start(wait=True, timeout=startup_timeout)
            except GatewayError:
                if not self._port_zero_refused():
                    raise
                # Work around a gateway that cannot bind port 0 (reported by
                # test_config.test_listen_on_port_zero): pick a free port.
                self._reset()
                self.conf.sections['server']['listen'] = '127.0.0.1:%d' % free_port()
                self.conf.rewrite_main()
                self.start(wait=True, timeout=startup_timeout)

    def _port_zero_refused(self):
        secs = self.conf.sections or {}
        return (secs.get('server', {}).get('listen', '').endswith(':0') and
                any(r.get('event') == 'server_listen_failed' for r in self.records))

    def _reset(self):
        self.kill()
        for s in (self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except Exception:
                pass
        self.lines, self.records, self.stdout_lines = [], [], []
        self._eof = 0
        self._threads = []

    # -- process -------------------------------------------------------------

    def start(self, wait=True, timeout=10):
        if not os.path.exists(MCPGW):
            raise GatewayError('gateway binary not found: %s (set MCPGW_BUILDDIR)' % MCPGW)
        # Its own session: kill() can take the supervisor and its workers.
        self.proc = subprocess.Popen([MCPGW, '-c', self.conf.path], stdin=subprocess.DEVNULL,
                                     start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_child_env(self.env))
        for stream, is_err in ((self.proc.stderr, True), (self.proc.stdout, False)):
            t = threading.Thread(target=self._reader, args=(stream, is_err), daemon=True)
            t.start()
            self._threads.append(t)
        if wait:
            self._wait_listening(timeout)
        return self

    def _reader(self, stream, is_err):
        for raw in iter(stream.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            rec = None
            if is_err:
                try:
                    obj = json.loads(line)
                    if isinstance(obj, dict):
                        rec = obj
                except ValueError:
                    pass
            with self._cond:
                if is_err:
                    self.lines.append(line)
                    if rec is not None:
                        self.records.append(rec)
                else:
                    self.stdout_lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof += 1
            self._cond.notify_all()

    def _stderr_eof(self):
        return self._eof >= 2

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.records:
                    if r.get('event') == 'server_listening':
                        self.port = int(r['port'])
                        self.address = r.get('address')
                        return
                if self._stderr_eof() or self.proc.poll() is not None:
                    # Give the reader a moment to drain the rest.
                    self._cond.wait(0.2)
                    if any(r.get('event') == 'server_listening' for r in self.records):
                        continue
                    rc = self.proc.poll()
                    raise GatewayError('gateway exited early (code %r):\n%s'
                                       % (rc, '\n'.join(self.lines)))
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise GatewayError('no server_listening within %ss:\n%s'
                                       % (timeout, '\n'.join(self.lines)))
                self._cond.wait(min(left, 0.1))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        """The supervisor's pid (signals go there)."""
        return self.proc.pid

    def n_workers(self):
        """How many worker processes this gateway runs (its [server] workers)."""
        w = str(self.conf.sections.get('server', {}).get('workers', '1'))
        return os.cpu_count() if w == 'auto' else int(w)

    def wait_every_worker(self, event, since=0, timeout=10):
        """Waits until every worker has logged event (from index since);
        returns their records."""
        n = self.n_workers()
        wait_until(lambda: len({r.get('worker') for r in self.logs(event, since)}) >= n,
                   timeout=timeout, what='%s from all %d workers' % (event, n))
        return self.logs(event, since)

    def worker_pids(self):
        """The worker processes' pids (the supervisor's children)."""
        try:
            with open('/proc/%d/task/%d/children' % (self.proc.pid, self.proc.pid)) as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def pids(self):
        """Every process of the gateway: the supervisor and its workers."""
        return [self.proc.pid] + self.worker_pids()

    def signal(self, sig=signal_mod.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10):
        """Waits for the process to exit; returns its code or raises."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('gateway still running %.1fs later' % timeout)
        self._join_readers()
        self.returncode = rc
        return rc

    def stop(self, sig=signal_mod.SIGTERM, timeout=10):
        """Sends sig and waits for the exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait_exit(timeout)
        except AssertionError:
            self.kill()
            raise

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal_mod.SIGKILL)     # workers too
            except OSError:
                self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self.returncode = self.proc.poll()
        self._join_readers()

    def _join_readers(self):
        for t in self._threads:
            t.join(2)

    def close(self):
        """Stops the process (SIGTERM, then SIGKILL) and removes the conf dir."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal_mod.SIGTERM)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            self.returncode = self.proc.poll()
            self._join_readers()
            for s in (self.proc.stdout, self.proc.stderr):
                try:
                    s.close()
                except Exception:
                    pass
        self.conf.cleanup()
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- logs ------------------------------------------------------------------

    def mark(self):
        """Index to pass as since= to only see later records."""
        with self._cond:
            return len(self.records)

    def logs(self, event=None, since=0):
        with self._cond:
            return [r for r in self.records[since:] if event is None or r.get('event') == event]

    def stderr_text(self):
        with self._cond:
            return '\n'.join(self.lines)

    def wait_log(self, event, pred=None, timeout=5, since=0):
        """The first record (from index since) with this event for which
        pred(record) holds; waits for it up to timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.records):
                    r = self.records[i]
                    i += 1
                    if r.get('event') == event and (pred is None or pred(r)):
                        return r
                left = deadline - time.monotonic()
                if left <= 0 or (self._stderr_eof() and i >= len(self.records)):
                    seen = [r.get('event') for r in self.records[since:]][-40:]
                    raise AssertionError('log event %r not seen within %ss (%s); last events: %s'
                                         % (event, timeout,
                                            'process exited' if self._stderr_eof() else 'running',
                                            seen))
                self._cond.wait(min(left, 0.1))

    # -- addresses -------------------------------------------------------------

    def url(self, token=None, path='/ws'):
        u = 'ws://127.0.0.1:%d%s' % (self.port, path)
        if token is not None:
            u += ('&' if '?' in path else '?') + 'token=' + token
        return u


def start_expect_exit(sections=None, files=None, env=None, defaults=True, timeout=10):
    """Starts a gateway that is expected to refuse to run; returns the
    (exited) Gateway, with .returncode set (None if it had to be killed
    because it kept running)."""
    gw = Gateway(sections, files, env, defaults, start=False)
    secs = gw.conf.sections or {}
    if secs.get('server', {}).get('listen', '').endswith(':0'):
        # A concrete port, so that a refusal can only come from what is tested.
        secs['server']['listen'] = '127.0.0.1:%d' % free_port()
        gw.conf.rewrite_main()
    gw.start(wait=False)
    try:
        rc = gw.wait_exit(timeout)
    except AssertionError:
        rc = None           # still running: killed below
    gw.close()
    gw.returncode = rc
    return gw


_shared = {}


def shared_gateway(key='default', **kwargs):
    """A gateway shared by the tests that ask for the same key (started on
    first use; restarted if it died). The runner stops them at the end of
    each test module."""
    gw = _shared.get(key)
    if gw is not None and not gw.alive():
        gw.close()
        gw = None
    if gw is None:
        gw = Gateway(name='shared:' + key, **kwargs)
        gw.shared = True
        _shared[key] = gw
    return gw


def dead_shared_gateways():
    """Shared gateways that died: removed from the cache and returned."""
    dead = [(k, g) for k, g in _shared.items() if not g.alive()]
    for k, g in dead:
        del _shared[k]
        g.close()
    return dead


def close_shared():
    while _shared:
        _, g = _shared.popitem()
        g.close()


def take_created():
    out = list(_created)
    del _created[:]
    return out


def close_unshared():
    for g in list(_live):
        if not g.shared:
            g.close()


# ---------------------------------------------------------------- raw HTTP

def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(port, timeout=5):
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until_close(sock, timeout=5):
    """Reads until the peer closes (EOF or reset); returns the bytes."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError('server did not close the connection within %ss; got %r'
                                 % (timeout, b''.join(chunks)[:300]))
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if not b:
            break
        chunks.append(b)
    return b''.join(chunks)


def parse_http_response(data):
    """(status, {lowercased name: value}, body bytes) of a response."""
    sep = data.find(b'\r\n\r\n')
    if sep < 0:
        raise AssertionError('no complete HTTP response head in %r' % data[:300])
    head = data[:sep].decode('latin-1').split('\r\n')
    m = re.match(r'^HTTP/1\.[01] (\d{3})(?: (.*))?$', head[0])
    if not m:
        raise AssertionError('bad status line %r' % head[0])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(':')
        name = name.strip().lower()
        value = value.strip()
        headers[name] = headers[name] + ', ' + value if name in headers else value
    return int(m.group(1)), headers, data[sep + 4:]


def http_request(port, raw, timeout=5):
    """Sends raw bytes, reads until the server closes; returns
    (status, headers, body)."""
    s = connect(port, timeout)
    try:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = recv_until_close(s, timeout)
    finally:
        s.close()
    return parse_http_response(data)


def make_key(raw16=None):
    return base64.b64encode(raw16 if raw16 is not None else os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def upgrade_request(path='/ws', token=None, key=None, method='GET', version='HTTP/1.1',
                    headers=None, host='127.0.0.1', query=None):
    """Bytes of an upgrade request. headers: {name: value} overriding or
    adding to the standard ones (None removes one); token goes in ?token=."""
    key = key if key is not None else make_key()
    hdrs = collections.OrderedDict([
        ('Host', host),
        ('Upgrade', 'websocket'),
        ('Connection', 'Upgrade'),
        ('Sec-WebSocket-Key', key),
        ('Sec-WebSocket-Version', '13'),
    ])
    lower = {k.lower(): k for k in hdrs}
    for k, v in (headers or {}).items():
        existing = lower.get(k.lower())
        if existing is not None:
            del hdrs[existing]
        if v is not None:
            hdrs[k] = v
    target = path
    params = []
    if token is not None:
        params.append('token=' + token)
    if query:
        params.append(query)
    if params:
        target += ('&' if '?' in path else '?') + '&'.join(params)
    lines = ['%s %s %s' % (method, target, version)]
    lines += ['%s: %s' % kv for kv in hdrs.items()]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')


# ---------------------------------------------------------------- frames

Frame = collections.namedtuple('Frame', 'fin rsv opcode payload')


def mask_bytes(payload, key):
    if not payload:
        return b''
    n = len(payload)
    rep = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, 'big') ^ int.from_bytes(rep, 'big')).to_bytes(n, 'big')


def build_frame(opcode, payload=b'', fin=True, rsv=0, mask=True, mask_key=None,
                length_form=None, declared_length=None):
    """One client frame. rsv: 3-bit value (4=RSV1, 2=RSV2, 1=RSV3);
    length_form: None (minimal), 7, 16 or 64 to force an encoding;
    declared_length: a length field that lies about the payload."""
    if isinstance(payload, str):
        payload = payload.encode('utf-8')
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if declared_length is None else declared_length
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    mbit = 0x80 if mask else 0
    if form == 7:
        head = struct.pack('!BB', b0, mbit | n)
    elif form == 16:
        head = struct.pack('!BBH', b0, mbit | 126, n)
    else:
        head = struct.pack('!BBQ', b0, mbit | 127, n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        return head + key + mask_bytes(payload, key)
    return head + payload


def close_payload(code=None, reason=b''):
    if code is None:
        return b''
    if isinstance(reason, str):
        reason = reason.encode('utf-8')
    return struct.pack('!H', code) + reason


def parse_close(payload):
    """(code or None, reason bytes) of a close frame's payload."""
    if len(payload) >= 2:
        return struct.unpack('!H', payload[:2])[0], payload[2:]
    return None, payload


class RawWS:
    """A hand-made WebSocket client on a plain socket."""

    def __init__(self, sock, buf=b'', response_headers=None):
        self.sock = sock
        self.buf = buf
        self.headers = response_headers or {}
        self.welcome = None
        self.eof = False
        self.pings_seen = []       # payloads of server pings seen by recv_message
        self.skipped = []          # data messages skipped by recv_type

    # -- sending -----------------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b'', **kw):
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_ping(self, payload=b''):
        self.send_frame(OP_PING, payload)

    def send_pong(self, payload=b''):
        self.send_frame(OP_PONG, payload)

    def send_close(self, code=1000, reason=b''):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    # -- receiving ---------------------------------------------------------------

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout('timed out waiting for data from the server')
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError):
            b = b''
        if not b:
            self.eof = True
            raise ConnectionEOF('server closed the TCP connection')
        self.buf += b

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def recv_frame(self, timeout=5):
        """The next frame; raises ConnectionEOF at EOF, socket.timeout."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack('!H', self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack('!Q', self.buf[2:10])[0]
            off = 10
        if b1 & 0x80:
            raise AssertionError('server sent a masked frame')
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)
        negotiated = 'permessage-deflate' in (self.headers.get('sec-websocket-extensions') or '')
        if f.rsv & (3 if negotiated else 7) or (f.rsv and f.opcode >= 0x8):
            raise AssertionError('server frame has RSV bits set without an extension: %r'
                                 % (f[:3],))
        return f

    def recv_message(self, timeout=5, auto_pong=True):
        """The next data message as (opcode, payload), reassembling fragments
        and answering pings. A close frame raises ServerClose."""
        deadline = time.monotonic() + timeout
        parts, first = [], None
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                self.pings_seen.append(f.payload)
                if auto_pong:
                    self.send_pong(f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                code, reason = parse_close(f.payload)
                raise ServerClose(code, reason)
            if f.opcode == OP_CONT:
                if first is None:
                    raise AssertionError('server sent a continuation without a start')
            else:
                if first is not None:
                    raise AssertionError('server interleaved a new data frame in a fragmented one')
                first = f.opcode
            parts.append(f.payload)
            if f.fin:
                return first, b''.join(parts)

    def recv_json(self, timeout=5):
        op, payload = self.recv_message(timeout)
        if op != OP_TEXT:
            raise AssertionError('expected a text message, got opcode %d' % op)
        return json.loads(payload.decode('utf-8'))

    def recv_type(self, type_, timeout=5):
        """The next JSON message whose type is type_; others go to skipped."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv_json(max(0.001, deadline - time.monotonic()))
            if isinstance(m, dict) and m.get('type') == type_:
                return m
            self.skipped.append(m)

    def expect_close(self, timeout=5):
        """Reads until the server's close frame; returns (code, reason).
        Data frames and pings before it are ignored."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                return parse_close(f.payload)

    def wait_eof(self, timeout=5):
        """Waits until the server closes TCP (frames meanwhile are returned
        in a list)."""
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            try:
                frames.append(self.recv_frame(max(0.001, deadline - time.monotonic())))
            except ConnectionEOF:
                return frames
            except socket.timeout:
                raise AssertionError('server did not close TCP within %ss (frames: %r)'
                                     % (timeout, [(f.opcode, f.payload[:40]) for f in frames]))

    def expect_protocol_close(self, code, timeout=5):
        """The server must send close with this code (or one of these
        codes) and then close TCP. Returns (code, reason)."""
        codes = code if isinstance(code, (tuple, list, set)) else (code,)
        try:
            got, reason = self.expect_close(timeout)
        except ConnectionEOF:
            raise AssertionError('server closed TCP without a close frame (expected %r)' % (codes,))
        assert got in codes, 'close code %r (reason %r), expected %r' % (got, reason, codes)
        # Answer like a polite client, then the server must hang up.
        try:
            self.send_close(got if got is not None else 1000)
        except OSError:
            pass
        self.wait_eof(timeout)
        return got, reason

    # -- conveniences -------------------------------------------------------------

    def ping_roundtrip(self, id_='rt', timeout=5):
        self.send_json({'type': 'ping', 'id': id_})
        m = self.recv_type('pong', timeout)
        assert m.get('id') == id_, m
        return m

    def close_cleanly(self, timeout=3):
        try:
            self.send_close(1000)
            self.expect_close(timeout)
            self.wait_eof(timeout)
        except (OSError, AssertionError):
            pass
        self.close()

    def abort(self):
        """Closes TCP with a reset (SO_LINGER 0): no close frame, no FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def ws_handshake(port, token=None, path='/ws', headers=None, read_welcome=True, timeout=5,
                 key=None, first_frames=b''):
    """Connects and upgrades; returns a RawWS after the 101 (with .welcome,
    the parsed welcome message, when read_welcome). Raises HandshakeError
    for any other answer. first_frames are sent right behind the request,
    in the same write."""
    key = key or make_key()
    s = connect(port, timeout)
    try:
        s.sendall(upgrade_request(path, token, key, headers=headers) + first_frames)
        deadline = time.monotonic() + timeout
        data = b''
        while b'\r\n\r\n' not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no handshake response within %ss' % timeout)
            s.settimeout(left)
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                b = b''
            if not b:
                break
            data += b
        sep = data.find(b'\r\n\r\n')
        if sep < 0:
            raise AssertionError('connection closed during the handshake: %r' % data[:300])
        status, hdrs, _ = parse_http_response(data[:sep + 4])
        if status != 101:
            rest = data[sep + 4:]
            try:
                rest += recv_until_close(s, timeout)
            except AssertionError:
                pass
            raise HandshakeError(status, hdrs, rest)
        assert hdrs.get('sec-websocket-accept') == accept_for(key), \
            'bad Sec-WebSocket-Accept %r' % hdrs.get('sec-websocket-accept')
        ws = RawWS(s, data[sep + 4:], hdrs)
    except BaseException:
        s.close()
        raise
    if read_welcome:
        try:
            ws.welcome = ws.recv_json(timeout)
        except BaseException:
            ws.close()
            raise
        assert ws.welcome.get('type') == 'connection_established', ws.welcome
    return ws


def client(gw, user=None, **kw):
    """A RawWS connected to gw as a fresh user (or the given one)."""
    return ws_handshake(gw.port, make_token(user or unique_user()), **kw)


def assert_healthy(gw, timeout=5):
    """A new connection to gw works: welcome, then ping -> pong."""
    assert gw.alive(), 'gateway process has exited:\n' + gw.stderr_text()[-3000:]
    ws = client(gw, timeout=timeout)
    try:
        ws.ping_roundtrip('healthy', timeout)
    finally:
        ws.close_cleanly()
