"""Configuration: `mcpgw -t`, error locations, file order, environment."""
import os
import re
import socket
import shutil
import subprocess
import tempfile

from harness import (BUILDDIR, MCPGW, SECRET, SHIPPED_CONF, SRCDIR, ConfDir, Gateway, HandshakeError,
                     check_config, free_port, http_request, make_token, start_expect_exit, unique_user, upgrade_request,
                     ws_handshake)

BAD = '60-bad.ini'


def assert_error_at(text, lines):
    """-t must exit 1 and name 60-bad.ini at one of `lines`."""
    rc, out, err = check_config(files={BAD: text})
    assert rc == 1, 'exit code %r, stderr:\n%s' % (rc, err)
    pat = r'%s:(%s):' % (re.escape(BAD), '|'.join(str(n) for n in lines))
    assert re.search(pat, err), 'no "%s:LINE:" (%r) in stderr:\n%s' % (BAD, lines, err)
    return err


def test_shipped_conf_is_valid():
    assert os.path.isdir(SHIPPED_CONF), SHIPPED_CONF
    conf = SHIPPED_CONF
    if os.path.realpath(BUILDDIR) != os.path.realpath(SRCDIR):
        # A separate build tree (make distcheck): the shipped files plus a
        # later file pointing [plugins] dir at this build's plugins.
        conf = tempfile.mkdtemp(prefix='mcpgw-shipped-')
        for name in os.listdir(SHIPPED_CONF):
            shutil.copy(os.path.join(SHIPPED_CONF, name), conf)
        with open(os.path.join(conf, '99-builddir.ini'), 'w') as f:
            f.write('[plugins]\ndir = %s\n' % os.path.join(BUILDDIR, 'plugins', '.libs'))
    p = subprocess.run([MCPGW, '-t', '-c', conf], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=15,
                       env={k: v for k, v in os.environ.items() if k != 'MCPGW_JWT_SECRET'})
    assert p.returncode == 0, (p.returncode, p.stderr.decode(errors='replace'))


def test_good_temp_config_is_valid():
    rc, out, err = check_config()
    assert rc == 0, (rc, err)


def test_comments_and_other_files_ignored():
    rc, out, err = check_config(files={
        '40-comments.ini': '; a comment\n# another\n[server]\n; path = /nope\n',
        'README': 'not an ini file [[[\n',
        '70-x.ini.disabled': '[bogus]\nkey = 1\n'})
    assert rc == 0, (rc, err)


def test_unknown_key():
    err = assert_error_at('[server]\nbogus_key = 1\n', [2])
    assert 'bogus_key' in err, err


def test_unknown_section():
    assert_error_at('; leading comment\n[bogus]\nkey = 1\n', [2, 3])


def test_bad_port():
    assert_error_at('[server]\n\nlisten = 127.0.0.1:99999\n', [3])
    assert_error_at('[server]\nlisten = 127.0.0.1:http\n', [2])


def test_bad_max_payload():
    assert_error_at('[server]\nmax_payload = lots\n', [2])
    assert_error_at('[server]\nmax_payload = -5\n', [2])


def test_algorithms_none():
    assert_error_at('[auth]\nalgorithms = none\n', [2])


def test_unknown_algorithm():
    assert_error_at('[auth]\nalgorithms = HS999\n', [2])


def test_handler_without_plugin():
    assert_error_at('[handler.orphan]\ndelay_ms = 5\n', [1, 2])


def test_bad_log_level():
    assert_error_at('[log]\nlevel = loud\n', [2])


def test_bad_agent_silence():
    assert_error_at('[admin]\nagent_silence_s = soon\n', [2])
    assert_error_at('[admin]\nagent_silence_s = -1\n', [2])
    assert_error_at('[admin]\n\nagent_silence_s = 86401\n', [3])
    for good in ('0', '1', '86400'):
        rc, out, err = check_config({'admin': {'agent_silence_s': good}})
        assert rc == 0, (good, err)


def test_bad_heartbeat_interval():
    assert_error_at('[heartbeat]\ninterval_ms = often\n', [2])


def test_several_errors_all_reported():
    rc, out, err = check_config(files={BAD: '[server]\nbogus_one = 1\n\nbogus_two = 2\n'})
    assert rc == 1, rc
    assert BAD + ':2:' in err and BAD + ':4:' in err, err


def test_missing_config_dir():
    p = subprocess.run([MCPGW, '-t', '-c', '/nonexistent/mcpgw-conf'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=15)
    assert p.returncode != 0
    assert p.stderr.strip(), 'expected a message'


def test_invalid_config_stops_the_gateway():
    g = start_expect_exit(files={BAD: '[server]\nbogus_key = 1\n'})
    assert g.returncode == 1, (g.returncode, g.stderr_text())
    assert not g.logs('server_listening')


def test_later_file_overrides_earlier():
    with Gateway({'server': {'path': None}},
                 files={'00-a.ini': '[server]\npath = /a\n',
                        '10-b.ini': '[server]\npath = /b\n'}) as g:
        assert g.address == '127.0.0.1', g.address
        ws = ws_handshake(g.port, make_token(unique_user()), path='/b')
        ws.ping_roundtrip('b')
        ws.close_cleanly()
        status, _, _ = http_request(g.port, upgrade_request('/a', make_token(unique_user())))
        assert status == 404, status
        status, _, _ = http_request(g.port, upgrade_request('/ws', make_token(unique_user())))
        assert status == 404, status


def test_override_later_in_order_wins_for_auth():
    with Gateway(files={'90-auth.ini': '[auth]\nmax_connections_per_user = 1\n'}) as g:
        user = unique_user()
        ws = ws_handshake(g.port, make_token(user))
        try:
            ws_handshake(g.port, make_token(user)).close()
            raise AssertionError('limit from 90-auth.ini not applied')
        except HandshakeError as e:
            assert e.status == 429, e.status
        finally:
            ws.close_cleanly()


def test_env_secret_wins_over_file():
    with Gateway({'auth': {'jwt_secret': 'file-secret'}},
                 env={'MCPGW_JWT_SECRET': 'env-secret'}) as g:
        ws = ws_handshake(g.port, make_token(unique_user(), secret='env-secret'))
        ws.ping_roundtrip('env')
        ws.close_cleanly()
        status, _, body = http_request(
            g.port, upgrade_request('/ws', make_token(unique_user(), secret='file-secret')))
        assert (status, body) == (401, b'Unauthorized: Invalid token'), (status, body)


def test_port_in_use_fails():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(1)
    try:
        port = s.getsockname()[1]
        g = start_expect_exit({'server': {'listen': '127.0.0.1:%d' % port}})
        assert g.returncode not in (None, 0), (g.returncode, g.stderr_text())
        assert not g.logs('server_listening')
    finally:
        s.close()


def test_listen_on_port_zero():
    # No fallback here: the kernel picks the port, server_listening tells it.
    g = Gateway(start=False)
    with g:
        g.start(wait=False)
        r = g.wait_log('server_listening', timeout=10)
        assert r.get('address') == '127.0.0.1', r
        assert isinstance(r.get('port'), int) and 0 < r['port'] < 65536, r
        g.port = r['port']
        ws = ws_handshake(g.port, make_token(unique_user()))
        ws.ping_roundtrip('port0')
        ws.close_cleanly()


def test_plugin_name_cannot_escape_dir():
    assert_error_at('[handler.x]\nplugin = ../evil\n', [2])


def test_path_must_start_with_slash():
    assert_error_at('[server]\npath = ws\n', [2])


def test_algorithm_list():
    with Gateway({'auth': {'algorithms': 'HS256, HS512'}}) as g:
        for alg in ('HS256', 'HS512'):
            ws = ws_handshake(g.port, make_token(unique_user(), alg=alg))
            ws.close_cleanly()
        status, _, _ = http_request(g.port, upgrade_request(
            '/ws', make_token(unique_user(), alg='HS384')))
        assert status == 401, status


def test_check_mode_agrees_with_startup_on_hostnames():
    # `-t` must not accept a listen address the server then refuses to bind.
    port = free_port()
    text = '[server]\nlisten = localhost:%d\n' % port
    rc, out, err = check_config(files={BAD: text})
    if rc == 1:
        assert re.search(r'%s:2:' % re.escape(BAD), err), err
        return
    assert rc == 0, (rc, err)
    g = start_expect_exit(files={BAD: text}, timeout=3)
    assert g.returncode is None, \
        '-t accepted "localhost:PORT" but the gateway refused it at startup:\n' + \
        g.stderr_text()


def _dump(conf, env=None):
    e = dict(os.environ)
    e.pop('MCPGW_JWT_SECRET', None)
    e.update(env or {})
    p = subprocess.run([MCPGW, '-T', '-c', conf.path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=15)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_dump_prints_the_effective_configuration():
    """mcpgw -T (issue 16): every key with its value and file:line or
    default, plugin keys too, secrets redacted; the verdict on stderr."""
    conf = ConfDir({'server': {'max_payload': '64k'},
                    'handler.ping': {'plugin': 'ping', 'reply_type': 'pong2'}},
                   files={'70-later.ini': '[log]\nlevel = warn\n'})
    try:
        rc, out, err = _dump(conf)
        assert rc == 0, (rc, err)
        assert 'is valid' in err and 'is valid' not in out, err
        main = re.escape(conf.file(ConfDir.MAIN))
        lines = out.splitlines()
        assert re.search(r'^max_payload = 65536  ; %s:\d+$' % main, out, re.M), out
        assert re.search(r'^reply_type = pong2  ; %s:\d+$' % main, out, re.M), out
        assert 'level = warn  ; %s:2' % conf.file('70-later.ini') in lines, out
        assert 'shutdown_timeout_ms = 10000  ; default' in lines, out
        assert re.search(r'^jwt_secret = \(redacted\)  ; %s:\d+$' % main, out, re.M), out
        assert SECRET not in out and SECRET not in err
        for section in ('[server]', '[auth]', '[tls]', '[cluster]', '[handler.ping]',
                        '[handler.batch]'):
            assert section in lines, section
        rc, out, err = _dump(conf, {'MCPGW_JWT_SECRET': 'from-the-env'})
        assert rc == 0 and 'from-the-env' not in out, (rc, err)
        assert 'jwt_secret = (redacted)  ; environment MCPGW_JWT_SECRET' in out.splitlines()
    finally:
        conf.cleanup()


def test_dump_of_a_bad_configuration_is_the_check():
    conf = ConfDir(files={BAD: '[server]\nmax_connections = lots\n'})
    try:
        rc, out, err = _dump(conf)
        assert rc == 1 and out == '', (rc, out)
        assert '%s:2: bad value for [server] max_connections' % conf.file(BAD) in err, err
    finally:
        conf.cleanup()
