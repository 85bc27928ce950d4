"""The install layout: `make install DESTDIR=...` of the build tree puts the
binary, plugins, headers, mcpgw.pc, the production configuration, the
systemd unit and the man pages where they belong; the installed gateway
checks its installed configuration and serves; a re-install keeps a
modified configuration file; `make uninstall` removes what was installed
and leaves what the administrator changed or added.

The tests share one DESTDIR, installed on first use; the re-install and
uninstall tests come last and change it. Run alone with
/usr/bin/python3 tests/integration/run.py test_install
"""
import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import harness
from harness import BUILDDIR, SECRET, SRCDIR, Gateway, make_token, unique_user, ws_handshake

PLUGINS = ('ping', 'batch', 'agent_status', 'mcp_stdio')
HANDLER_PLUGINS = ('ping', 'batch', 'agent_status')     # what the installed conf.d loads
SHIPPED_CONF = os.path.join(SRCDIR, 'conf.d')
DEV_SECRET_RE = re.compile(r'^\s*jwt_secret\s*[=:]', re.M)
HARDENING = {
    'NoNewPrivileges': 'yes',
    'ProtectSystem': 'strict',
    'ProtectHome': 'yes',
    'PrivateTmp': 'yes',
    'PrivateDevices': 'yes',
    'ProtectKernelTunables': 'yes',
    'ProtectKernelModules': 'yes',
    'ProtectControlGroups': 'yes',
    'RestrictAddressFamilies': 'AF_INET AF_INET6 AF_UNIX',
    'LockPersonality': 'yes',
    'MemoryDenyWriteExecute': 'yes',
    'DynamicUser': 'yes',
    'CapabilityBoundingSet': '',
    'LimitNOFILE': '1048576',
    'Restart': 'on-failure',
    'Type': 'notify',
    'ExecReload': '/bin/kill -HUP $MAINPID',
}

_state = {}


# ---------------------------------------------------------------- helpers

def _make_env():
    # A make started from `make check` must not inherit its jobserver or
    # command-line variables.
    env = dict(os.environ)
    for k in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES', 'DESTDIR'):
        env.pop(k, None)
    return env


def _make(*args, check=True):
    p = subprocess.run(['make', '-s', '-C', BUILDDIR] + list(args), env=_make_env(),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError('make %s failed (exit %d):\n%s\n%s'
                             % (' '.join(args), p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p


def _dirs():
    if 'dirs' not in _state:
        assert os.path.exists(os.path.join(BUILDDIR, 'Makefile')), \
            'the build tree %s is not configured' % BUILDDIR
        out = _make('mcpgw-install-dirs').stdout
        dirs = dict(l.split('=', 1) for l in out.splitlines() if re.match(r'^\w+=', l))
        for k in ('prefix', 'sbindir', 'sysconfdir', 'libdir', 'pkglibdir', 'includedir',
                  'mandir', 'systemdsystemunitdir', 'mcpgwconfddir', 'version'):
            assert dirs.get(k), 'make mcpgw-install-dirs did not print %s: %r' % (k, out)
        _state['dirs'] = dirs
    return _state['dirs']


def _installed():
    """The shared DESTDIR, installed on first use (again after uninstall)."""
    if _state.get('dest') and not _state.get('uninstalled'):
        return _state['dest']
    if not _state.get('tmp'):
        _state['tmp'] = tempfile.mkdtemp(prefix='mcpgw-install-')
        harness._temp_dirs.append(_state['tmp'])
    dest = os.path.join(_state['tmp'], 'dest')
    shutil.rmtree(dest, ignore_errors=True)
    _dirs()
    p = _make('install', 'DESTDIR=' + dest)
    _state.update(dest=dest, uninstalled=False, install_output=p.stdout + p.stderr)
    return dest


def _at(key, *parts):
    """A path of the installed tree: DESTDIR + the configured directory."""
    return os.path.join(_installed() + _dirs()[key], *parts)


def _binary():
    return _at('sbindir', 'mcpgw')


def _confd():
    return _at('mcpgwconfddir')


def _shipped_conf_names():
    # *-demo.ini files are not installed (they point into the source tree)
    names = sorted(n for n in os.listdir(SHIPPED_CONF)
                   if n.endswith('.ini') and not n.endswith('-demo.ini'))
    assert names, 'no conf.d/*.ini in the source tree'
    return names


def _active_lines(text):
    return [l.strip() for l in text.splitlines() if l.strip() and l.strip()[0] not in ';#']


def _run(args, env=None, timeout=20):
    e = dict(os.environ)
    e.pop('MCPGW_JWT_SECRET', None)
    e.update(env or {})
    return subprocess.run(args, env=e, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


class _Override:
    """A temporary 99-*.ini in the installed conf.d pointing [plugins] dir
    into DESTDIR (the compiled-in default does not include DESTDIR)."""

    NAME = '99-test-destdir.ini'

    def __init__(self, extra=''):
        self.path = os.path.join(_confd(), self.NAME)
        with open(self.path, 'w') as f:
            f.write('[plugins]\ndir = %s\n%s' % (_at('pkglibdir', 'plugins'), extra))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.unlink(self.path)
        return False


def _unit_settings(text):
    """[(section, key, value)] of a unit file, in order."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in '#;':
            continue
        if line.startswith('['):
            section = line.strip('[]')
            continue
        k, _, v = line.partition('=')
        out.append((section, k.strip(), v.strip()))
    return out


def _unit_path():
    return os.path.join(_installed() + _dirs()['systemdsystemunitdir'], 'mcpgw.service')


# ---------------------------------------------------------------- layout

def test_install_puts_every_file_in_its_directory():
    dest = _installed()
    d = _dirs()
    b = _binary()
    assert os.path.isfile(b) and os.access(b, os.X_OK), 'no executable %s' % b
    for name in PLUGINS:
        p = _at('pkglibdir', 'plugins', name + '.so')
        assert os.path.isfile(p), 'plugin %s not installed at %s' % (name, p)
    assert d['pkglibdir'] == d['libdir'] + '/mcpgw', d
    hdr = _at('includedir', 'mcpgw', 'plugin.h')
    with open(hdr) as f, open(os.path.join(SRCDIR, 'include', 'mcpgw', 'plugin.h')) as g:
        assert f.read() == g.read(), 'installed plugin.h differs from include/mcpgw/plugin.h'
    # mcpgw.pc: the plugin directory for plugin authors.
    pc = _at('libdir', 'pkgconfig', 'mcpgw.pc')
    with open(pc) as f:
        text = f.read()
    assert 'prefix=%s\n' % d['prefix'] in text, text
    assert re.search(r'^plugindir=\$\{libdir\}/mcpgw/plugins$', text, re.M), text
    assert re.search(r'^Version: %s$' % re.escape(d['version']), text, re.M), text
    # The mock gateway for plugins' unit tests: header, library, mcpgw-mock.pc.
    with open(_at('includedir', 'mcpgw', 'mock_host.h')) as f, \
            open(os.path.join(SRCDIR, 'include', 'mcpgw', 'mock_host.h')) as g:
        assert f.read() == g.read(), 'installed mock_host.h differs from include/mcpgw/mock_host.h'
    assert os.path.exists(_at('libdir', 'libmcpgw-mock.so')), os.listdir(_at('libdir'))
    with open(_at('libdir', 'pkgconfig', 'mcpgw-mock.pc')) as f:
        text = f.read()
    assert re.search(r'^Requires: mcpgw$', text, re.M), text
    assert re.search(r'^Libs: .*-lmcpgw-mock$', text, re.M), text
    # The configuration, the unit and the man pages.
    assert sorted(os.listdir(_confd())) == _shipped_conf_names(), os.listdir(_confd())
    assert os.path.isfile(_unit_path()), 'no unit at %s' % _unit_path()
    for sec, name in (('8', 'mcpgw.8'), ('5', 'mcpgw.conf.5')):
        p = _at('mandir', 'man' + sec, name)
        with open(p) as f, open(os.path.join(SRCDIR, 'man', name)) as g:
            assert f.read() == g.read(), '%s differs from man/%s' % (p, name)
    assert dest in b


def test_installed_configuration_has_no_build_tree_paths_or_dev_secret():
    _installed()
    secret_hint = False
    for name in _shipped_conf_names():
        p = os.path.join(_confd(), name)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, '%s mode %o' % (p, os.stat(p).st_mode)
        with open(p) as f:
            text = f.read()
        with open(os.path.join(SHIPPED_CONF, name)) as f:
            shipped = f.read()
        assert '../plugins/.libs' not in text, '%s still points at the build tree' % p
        assert 'dev-secret-change-me' not in text, '%s still has the development secret' % p
        assert not DEV_SECRET_RE.search(text), '%s sets a jwt_secret' % p
        assert not re.search(r'^\s*dir\s*[=:]', text, re.M), '%s sets [plugins] dir' % p
        # Every other setting is kept as shipped, in order.
        kept = [l for l in _active_lines(shipped)
                if not DEV_SECRET_RE.match(l) and not re.match(r'dir\s*=\s*\.\./plugins/', l)]
        assert _active_lines(text) == kept, (name, _active_lines(text), kept)
        if DEV_SECRET_RE.search(shipped):
            assert 'MCPGW_JWT_SECRET' in text and 'jwt_secret_file' in text, \
                '%s has no hint where the secret goes:\n%s' % (p, text)
            secret_hint = True
    assert secret_hint, 'no shipped conf.d file sets the development secret any more?'


def test_installed_gateway_refuses_to_start_without_a_secret():
    with _Override('[server]\nlisten = 127.0.0.1:0\n'):
        p = _run([_binary(), '-t', '-c', _confd()])
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert 'no JWT secret' in p.stderr, p.stderr
        assert 'MCPGW_JWT_SECRET' in p.stderr, p.stderr
        # Not only -t: a start fails too, before listening.
        p = _run([_binary(), '-c', _confd()], timeout=15)
        assert p.returncode != 0, (p.returncode, p.stderr)
        assert 'server_listening' not in p.stderr, p.stderr
        assert 'secret' in p.stderr.lower(), p.stderr


def test_installed_gateway_checks_its_installed_configuration():
    # Without the override the compiled-in plugin dir ($(pkglibdir)/plugins,
    # outside DESTDIR) is used: -t names the files it looked for there.
    p = _run([_binary(), '-t', '-c', _confd()], env={'MCPGW_JWT_SECRET': SECRET})
    want = os.path.join(_dirs()['pkglibdir'], 'plugins', 'ping.so')
    assert p.returncode == 0 or want in p.stderr, (p.returncode, p.stderr)
    with _Override():
        p = _run([_binary(), '-t', '-c', _confd()], env={'MCPGW_JWT_SECRET': SECRET})
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        assert 'is valid' in p.stdout, p.stdout
        # jwt_secret_file works as the hint says.
        secret_file = os.path.join(_state['tmp'], 'jwt_secret')
        with open(secret_file, 'w') as f:
            f.write(SECRET + '\n')
        with open(os.path.join(_confd(), '98-test-secret.ini'), 'w') as f:
            f.write('[auth]\njwt_secret_file = %s\n' % secret_file)
        try:
            p = _run([_binary(), '-t', '-c', _confd()])
            assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
        finally:
            os.unlink(os.path.join(_confd(), '98-test-secret.ini'))


def _installed_gateway(env=None):
    """A harness Gateway running the installed binary on a copy of the
    installed conf.d plus a test override (port 0, plugins in DESTDIR)."""
    files = {}
    for name in _shipped_conf_names():
        with open(os.path.join(_confd(), name)) as f:
            files[name] = f.read()
    files['99-test.ini'] = ('[server]\nlisten = 127.0.0.1:0\n[log]\nlevel = debug\n'
                            '[plugins]\ndir = %s\n' % _at('pkglibdir', 'plugins'))
    saved = harness.MCPGW
    harness.MCPGW = _binary()
    try:
        e = {'MCPGW_JWT_SECRET': SECRET}
        e.update(env or {})
        return Gateway(sections=False, files=files, env=e, name='installed')
    finally:
        harness.MCPGW = saved


def test_installed_gateway_serves_the_shipped_handlers():
    gw = _installed_gateway()
    try:
        # every worker loads every plugin once
        loaded = sorted(r.get('plugin') or r.get('name') or r.get('type')
                        for r in gw.logs('plugin_loaded') if r.get('worker', 0) == 0)
        assert len(loaded) == len(HANDLER_PLUGINS), gw.logs('plugin_loaded')
        ws = ws_handshake(gw.port, make_token(unique_user('inst')))
        try:
            ws.ping_roundtrip('installed')
            ws.send_json({'type': 'batch', 'id': 'b', 'messages': [{'type': 'ping', 'id': 'p'}]})
            m = ws.recv_type('batch_response')
            assert m['responses'][0]['status'] == 'success', m
            ws.send_json({'type': 'agent_status', 'id': 'a', 'agentId': 'x', 'status': 'up'})
            ws.recv_type('agent_status_ack')
        finally:
            ws.close_cleanly()
        assert gw.stop() == 0, gw.stderr_text()[-2000:]
    finally:
        gw.close()


def test_installed_gateway_notifies_systemd():
    """Type=notify: with $NOTIFY_SOCKET set, READY=1 once listening and
    STOPPING=1 when a shutdown starts."""
    sock_path = os.path.join(tempfile.mkdtemp(prefix='mcpgw-notify-'), 'notify')
    harness._temp_dirs.append(os.path.dirname(sock_path))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(0.2)
    got = []

    def drain(until, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got.extend(s.recv(4096).decode('utf-8', 'replace').split('\n'))
            except socket.timeout:
                pass
            if until in got:
                return True
        return False

    try:
        gw = _installed_gateway({'NOTIFY_SOCKET': sock_path})
        try:
            assert drain('READY=1', 10), \
                'no READY=1 on $NOTIFY_SOCKET (the unit is Type=notify); got %r' % got
            gw.signal(signal.SIGTERM)
            assert drain('STOPPING=1', 10), 'no STOPPING=1 on $NOTIFY_SOCKET; got %r' % got
            assert gw.wait_exit(15) == 0
        finally:
            gw.close()
    finally:
        s.close()


def test_help_and_version():
    d = _dirs()
    for args in (['--help'], ['-h']):
        p = _run([_binary()] + args)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        assert p.stdout.startswith('Usage: mcpgw'), p.stdout
        for opt in ('-c', '--config', '-t', '--test', '--mint-token', '--ttl', '-h', '--help',
                    '-V', '--version'):
            assert re.search(r'(^|[\s,\[])%s\b' % re.escape(opt), p.stdout), (opt, p.stdout)
        assert p.stderr == '', p.stderr
    # The default -c is the installed configuration directory.
    want = d['mcpgwconfddir']
    assert '(default %s)' % want in p.stdout, \
        'mcpgw --help does not name the installed conf.d %s as the default:\n%s' % (want, p.stdout)
    for args in (['--version'], ['-V']):
        p = _run([_binary()] + args)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        assert re.match(r'^mcpgw %s \(plugin ABI \d+\.\d+\)\n$' % re.escape(d['version']),
                        p.stdout), p.stdout
    p = _run([_binary(), '--no-such-option'])
    assert p.returncode == 2 and 'Usage: mcpgw' in p.stderr, (p.returncode, p.stderr)
    # Every option of --help is in the man page.
    with open(os.path.join(SRCDIR, 'man', 'mcpgw.8')) as f:
        man = f.read().replace('\\-', '-')
    for opt in re.findall(r'(?<![\w-])(--?[A-Za-z][\w-]*)', _run([_binary(), '--help']).stdout):
        assert opt in man, 'option %s of --help is not in man/mcpgw.8' % opt


# ---------------------------------------------------------------- the unit

def test_systemd_unit_has_the_paths_and_the_hardening():
    d = _dirs()
    with open(_unit_path()) as f:
        text = f.read()
    assert '@' not in text.replace('@system-service', '').replace('@privileged', '') \
        .replace('@resources', ''), 'unsubstituted placeholder in the unit:\n' + text
    settings = _unit_settings(text)
    service = {}
    for sec, k, v in settings:
        if sec == 'Service':
            service.setdefault(k, []).append(v)
    want_exec = '%s/mcpgw -c %s/mcpgw/conf.d' % (d['sbindir'], d['sysconfdir'])
    assert service.get('ExecStart') == [want_exec], (service.get('ExecStart'), want_exec)
    assert service.get('EnvironmentFile') == ['-%s/mcpgw/environment' % d['sysconfdir']], \
        service.get('EnvironmentFile')
    for k, v in HARDENING.items():
        assert k in service, 'the unit has no %s=' % k
        assert service[k][0] == v, '%s=%r, expected %r' % (k, service[k], v)
    assert '@system-service' in service.get('SystemCallFilter', [''])[0], \
        service.get('SystemCallFilter')
    assert service.get('AmbientCapabilities', ['']) == [''], service.get('AmbientCapabilities')
    assert ('Install', 'WantedBy', 'multi-user.target') in settings
    assert ('Unit', 'Documentation', 'man:mcpgw(8) man:mcpgw.conf(5)') in settings
    # The installed paths the unit names exist in DESTDIR.
    assert os.path.isdir(_installed() + d['sysconfdir'] + '/mcpgw/conf.d')
    assert os.access(_installed() + d['sbindir'] + '/mcpgw', os.X_OK)


def test_systemd_analyze_verify_accepts_the_unit():
    tool = shutil.which('systemd-analyze')
    if not tool:
        print('    note: systemd-analyze is not installed: unit verification skipped '
              '(the unit contents are checked by the test before)')
        return
    # verify checks that ExecStart's binary exists: point it into DESTDIR.
    d = _dirs()
    with open(_unit_path()) as f:
        text = f.read()
    text = text.replace(d['sbindir'] + '/mcpgw', _binary())
    udir = tempfile.mkdtemp(prefix='mcpgw-unit-')
    harness._temp_dirs.append(udir)
    unit = os.path.join(udir, 'mcpgw.service')
    with open(unit, 'w') as f:
        f.write(text)
    p = subprocess.run([tool, 'verify', '--man=no', unit], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, 'systemd-analyze verify: %s%s' % (p.stdout, p.stderr)
    problems = [l for l in (p.stdout + p.stderr).splitlines() if 'mcpgw.service' in l]
    assert not problems, problems


def test_systemd_unit_dir_can_be_overridden():
    _installed()
    dest = os.path.join(_state['tmp'], 'unitdir')
    _make('install-systemdsystemunitDATA', 'DESTDIR=' + dest,
          'systemdsystemunitdir=/opt/units')
    assert os.path.isfile(os.path.join(dest, 'opt', 'units', 'mcpgw.service')), \
        sorted(glob.glob(dest + '/**', recursive=True))


# ---------------------------------------------------------------- man pages

def _readme_reference():
    """[(section, key, default)] of README.md's configuration reference table."""
    with open(os.path.join(SRCDIR, 'README.md')) as f:
        text = f.read()
    start = text.index('## Configuration reference')
    end = text.index('\n## ', start + 1)
    rows, section = [], None
    for line in text[start:end].splitlines():
        if not line.startswith('|'):
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) < 3 or set(cells[0]) <= set('-') and cells[0]:
            continue
        if cells[0]:
            m = re.match(r'^`\[([^\]]+)\]`$', cells[0])
            section = m.group(1) if m else None     # the header, or the next table
        if section is None:
            continue
        dm = re.match(r'^`([^`]+)`', cells[2])
        for key in re.findall(r'`([a-z_]+)`', cells[1]):
            rows.append((section, key, dm.group(1) if dm else None))
    return rows


def _man_sections(path):
    with open(path) as f:
        text = f.read()
    parts = re.split(r'^\.SH\s+', text, flags=re.M)
    out = {}
    for p in parts[1:]:
        title, _, body = p.partition('\n')
        out[title.strip().strip('"')] = body
    return out


def _plain(roff):
    return re.sub(r'\\f[BIRP]', '', roff.replace('\\-', '-').replace('\\~', ' ')
                  .replace('\\(bu', ''))


def test_man_pages_render_without_warnings():
    pages = [os.path.join(SRCDIR, 'man', n) for n in ('mcpgw.8', 'mcpgw.conf.5')]
    groff = shutil.which('groff')
    if groff:
        for page in pages:
            p = subprocess.run([groff, '-man', '-Tutf8', '-ww', '-z', page], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert p.returncode == 0 and p.stderr == '', (page, p.returncode, p.stderr)
    else:
        print('    note: groff is not installed (apt-get install groff-base): '
              'rendering check skipped')
    man = shutil.which('man')
    if man:
        for page in pages:
            p = subprocess.run([man, '-l', page], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL,
                               env=dict(os.environ, MANPAGER='cat', PAGER='cat', MANWIDTH='80',
                                        MAN_KEEP_FORMATTING=''))
            assert p.returncode == 0, (page, p.returncode, p.stderr)
            assert 'NAME' in p.stdout and 'SEE ALSO' in p.stdout, p.stdout[:500]
            assert p.stderr.strip() == '', (page, p.stderr)
    else:
        print('    note: man is not installed: man -l check skipped')


def test_daemon_man_page_covers_options_signals_files_environment():
    secs = _man_sections(os.path.join(SRCDIR, 'man', 'mcpgw.8'))
    for title in ('NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'SIGNALS', 'ENVIRONMENT',
                  'FILES', 'EXIT STATUS', 'LOGS', 'SYSTEMD', 'SEE ALSO'):
        assert title in secs, 'mcpgw.8 has no %s section' % title
    opts = _plain(secs['OPTIONS'])
    for opt in ('-c', '--config', '-t', '--test', '--mint-token', '--ttl', '-h', '--help',
                '-V', '--version'):
        assert opt in opts, opt
    sigs = _plain(secs['SIGNALS'])
    for sig in ('SIGTERM', 'SIGINT', 'SIGHUP'):
        assert sig in sigs, sig
    assert 'MCPGW_JWT_SECRET' in _plain(secs['ENVIRONMENT'])
    assert 'environment' in _plain(secs['FILES']) and 'conf.d' in _plain(secs['FILES'])
    ex = _plain(secs['EXIT STATUS'])
    for code in ('0', '1', '2'):
        assert re.search(r'^\.B %s$' % code, secs['EXIT STATUS'], re.M), (code, ex)


def test_config_man_page_covers_every_key_of_the_readme_reference():
    secs = _man_sections(os.path.join(SRCDIR, 'man', 'mcpgw.conf.5'))
    rows = _readme_reference()
    assert len(rows) > 30, rows
    missing = []
    for section, key, default in rows:
        title = '[%s] SECTION' % section
        if section in ('handler.TYPE', 'endpoint.NAME'):
            title = '[%s] SECTIONS' % section
        body = secs.get(title)
        if body is None:
            missing.append('no section %r' % title)
            continue
        block = None
        for b in re.split(r'^\.TP\n', body, flags=re.M)[1:]:
            if key in re.findall(r'[\w.]+', _plain(b.split('\n', 1)[0])):
                block = b
                break
        if block is None:
            missing.append('[%s] %s' % (section, key))
            continue
        if default and '$(' not in default and default not in _plain(block):
            missing.append('[%s] %s: default %s not stated' % (section, key, default))
    assert not missing, 'mcpgw.conf.5 lacks: ' + '; '.join(missing)
    handlers = _plain(secs['[handler.TYPE] SECTIONS'])
    for plugin, key in (('ping', 'reply_type'), ('batch', 'max_messages'),
                        ('agent_status', 'include_sender')):
        assert plugin in handlers and key in handlers, (plugin, key)


# ---------------------------------------------------------------- re-install, uninstall

def _modified_conf():
    return os.path.join(_confd(), _shipped_conf_names()[0])


SITE_LINE = '; site change kept by make install\n'


def _modify_conf():
    p = _modified_conf()
    with open(p) as f:
        text = f.read()
    if SITE_LINE not in text:
        with open(p, 'a') as f:
            f.write(SITE_LINE)
    return text + ('' if SITE_LINE in text else SITE_LINE)


def test_reinstall_keeps_a_modified_configuration_file():
    dest = _installed()
    want = _modify_conf()
    others = {}
    for name in _shipped_conf_names()[1:]:
        p = os.path.join(_confd(), name)
        with open(p) as f:
            others[p] = f.read()
    p = _make('install', 'DESTDIR=' + dest)
    with open(_modified_conf()) as f:
        assert f.read() == want, 'make install overwrote %s' % _modified_conf()
    for path, text in others.items():
        with open(path) as f:
            assert f.read() == text, path
    assert 'keeping the existing' in p.stdout + p.stderr, p.stdout


def test_uninstall_removes_what_was_installed_and_keeps_site_files():
    dest = _installed()
    modified = _modify_conf()
    env_file = os.path.join(_installed() + _dirs()['sysconfdir'], 'mcpgw', 'environment')
    with open(env_file, 'w') as f:
        f.write('MCPGW_JWT_SECRET=%s\n' % SECRET)
    _make('uninstall', 'DESTDIR=' + dest)
    _state['uninstalled'] = True
    left = sorted(os.path.relpath(os.path.join(r, n), dest)
                  for r, _, files in os.walk(dest) for n in files)
    d = _dirs()
    want = sorted(os.path.relpath(p, '/') for p in (
        d['mcpgwconfddir'] + '/' + _shipped_conf_names()[0],
        d['sysconfdir'] + '/mcpgw/environment'))
    assert left == want, 'after make uninstall: %r, expected only %r' % (left, want)
    with open(os.path.join(dest + d['mcpgwconfddir'], _shipped_conf_names()[0])) as f:
        assert f.read() == modified
    # Once the administrator's files are gone, uninstall leaves no directory
    # of ours behind either.
    os.unlink(env_file)
    os.unlink(os.path.join(dest + d['mcpgwconfddir'], _shipped_conf_names()[0]))
    _make('uninstall', 'DESTDIR=' + dest)
    assert not os.path.exists(dest + d['sysconfdir'] + '/mcpgw'), \
        os.listdir(dest + d['sysconfdir'] + '/mcpgw')
