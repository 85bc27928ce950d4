"""Live reload (SIGHUP): log level, limits, auth keys, compression for new
connections and the handler table change while established connections stay
open and keep working; an invalid configuration is refused as a whole with
file:line messages; restart-only settings are reported as such."""
import os
import signal
import time

from harness import (Gateway, client, http_request, make_token, sanitized_build, unique_user,
                     upgrade_request, ws_handshake)


def _reload(g, since=None):
    mark = len(g.records) if since is None else since
    g.signal(signal.SIGHUP)
    return g.wait_every_worker('config_reloaded', since=mark)[0]


def _rewrite(g, section, key, value):
    g.conf.sections.setdefault(section, {})
    if value is None:
        g.conf.sections[section].pop(key, None)
    else:
        g.conf.sections[section][key] = value
    g.conf.rewrite_main()


def test_reload_keeps_connections_and_applies_limits_and_auth():
    with Gateway({'log': {'level': 'info'}}) as g:
        live = client(g)
        user = unique_user('lim')
        held = [client(g, user) for _ in range(2)]
        _rewrite(g, 'auth', 'max_connections_per_user', 2)
        _rewrite(g, 'auth', 'jwt_secret', 'rotated-secret')
        _reload(g)
        live.ping_roundtrip('across-reload')            # still open and served
        # New connections see the new secret...
        status, _, _ = http_request(g.port, upgrade_request('/ws', make_token(unique_user())))
        assert status == 401
        ok = ws_handshake(g.port, make_token(unique_user(), secret='rotated-secret'))
        ok.ping_roundtrip('new-secret')
        ok.close_cleanly()
        # ...and the new per-user limit.
        status, _, body = http_request(g.port, upgrade_request(
            '/ws', make_token(user, secret='rotated-secret')))
        assert (status, body) == (429, b'Too Many Connections'), status
        for ws in held + [live]:
            ws.ping_roundtrip('still')
            ws.close_cleanly()


def test_reload_log_level():
    with Gateway({'log': {'level': 'info'}}) as g:
        ws = client(g)
        ws.ping_roundtrip('a')
        assert not g.logs('websocket_message')          # debug only
        _rewrite(g, 'log', 'level', 'debug')
        _reload(g)
        ws.ping_roundtrip('b')
        g.wait_log('websocket_message')
        ws.close_cleanly()


def test_reload_handler_table():
    with Gateway({'log': {'level': 'info'}}) as g:
        ws = client(g)
        # Remove agent_status, add ping2 (the ping plugin under a new type).
        g.conf.sections.pop('handler.agent_status')
        g.conf.sections['handler.ping2'] = {'plugin': 'ping', 'reply_type': 'pong2'}
        g.conf.rewrite_main()
        _reload(g)
        ws.send_json({'type': 'agent_status', 'id': 1, 'agentId': 'a', 'status': 's'})
        err = ws.recv_json()
        assert err['type'] == 'error' and err['message'] == 'Unknown message type: agent_status'
        ws.send_json({'type': 'ping2', 'id': 2})
        assert ws.recv_json()['type'] == 'pong2'
        ws.ping_roundtrip('ping-kept')
        assert any(r.get('type') == 'agent_status' for r in g.logs('plugin_unloaded'))
        ws.close_cleanly()


def test_reload_callback_gets_new_section():
    with Gateway({'handler.batch': {'plugin': 'batch', 'max_messages': 5}}) as g:
        ws = client(g)
        batch = {'type': 'batch', 'id': 'b', 'messages': [{'type': 'ping', 'id': i}
                                                          for i in range(3)]}
        ws.send_json(batch)
        assert ws.recv_json()['type'] == 'batch_response'
        _rewrite(g, 'handler.batch', 'max_messages', 2)
        _reload(g)
        g.wait_log('plugin_reloaded', pred=lambda r: r.get('type') == 'batch')
        ws.send_json(batch)
        err = ws.recv_json()
        assert err['type'] == 'error' and 'limit 2' in err['error'], err
        ws.close_cleanly()


def test_invalid_config_is_refused_as_a_whole():
    with Gateway({'log': {'level': 'info'}}) as g:
        ws = client(g)
        mark = len(g.records)
        _rewrite(g, 'auth', 'max_connections_per_user', 1)
        g.conf.write('50-broken.ini', '[server]\nno_such_key = 1\n')
        g.signal(signal.SIGHUP)
        g.wait_log('config_reload_failed', since=mark, timeout=10)
        errors = [r['error'] for r in g.logs('config_reload_error')]
        assert any('50-broken.ini:2:' in e for e in errors), errors
        # The old configuration stays: the per-user limit is still 5.
        user = unique_user()
        held = [client(g, user) for _ in range(3)]
        ws.ping_roundtrip('still-here')
        for h in held + [ws]:
            h.close_cleanly()
        os.unlink(g.conf.file('50-broken.ini'))


def test_missing_plugin_refuses_reload():
    with Gateway() as g:
        ws = client(g)
        mark = len(g.records)
        g.conf.sections['handler.x'] = {'plugin': 'does_not_exist'}
        g.conf.sections.pop('handler.ping')
        g.conf.rewrite_main()
        g.signal(signal.SIGHUP)
        g.wait_log('config_reload_failed', since=mark, timeout=10)
        ws.ping_roundtrip('ping-still-registered')      # nothing was unloaded
        ws.close_cleanly()


def test_listen_change_needs_restart():
    with Gateway() as g:
        ws = client(g)
        _rewrite(g, 'server', 'listen', '127.0.0.1:1')
        mark = len(g.records)
        g.signal(signal.SIGHUP)
        g.wait_log('config_restart_required', since=mark, timeout=10)
        ws.ping_roundtrip('same-port')
        client(g).close_cleanly()                       # still listening where it was
        ws.close_cleanly()
        time.sleep(0.1)


def test_a_value_a_plugin_refuses_refuses_the_reload():
    """The supervisor runs the new configuration's plugin inits (in a child,
    as mcpgw -t does) before it commits: a value a plugin refuses keeps the
    old configuration for everyone, so a worker started later (here: after
    a crash) is not handed a configuration it cannot start with."""
    with Gateway({'server': {'workers': '2'}, 'log': {'level': 'info'}}) as g:
        ws = client(g)
        mark = len(g.records)
        _rewrite(g, 'handler.agent_status', 'include_sender', 'perhaps')
        g.signal(signal.SIGHUP)
        rec = g.wait_log('config_reload_error', since=mark, timeout=15)
        assert 'plugin' in rec['error'], rec
        g.wait_log('config_reload_failed', since=mark, timeout=5)
        time.sleep(0.3)
        assert not g.logs('config_reloaded', since=mark)       # the workers were not told
        mark = len(g.records)
        victim = g.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        g.wait_log('worker_restarted', since=mark, timeout=10)
        time.sleep(0.5)
        assert not g.logs('worker_start_failed', since=mark)
        assert not g.logs('plugin_load_failed', since=mark), g.logs('plugin_load_failed')
        fresh = client(g)
        fresh.ping_roundtrip('after')
        fresh.close_cleanly()
        ws.close()


def _rss_kib(pids):
    total = 0
    for pid in pids:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    total += int(line.split()[1])
    return total


def test_reloads_free_old_snapshots_and_keep_connections():
    """Each reload makes a new configuration snapshot and drops the old one
    once nothing uses it (issue 16): 120 reloads of a configuration holding
    a 60 KiB public_key_file leave the supervisor's and worker's memory
    where it was (kept forever, they grew by ~14 MiB), and connections
    opened before them, one holding the first snapshot's [endpoint.NAME],
    keep working (under ASan, reading a freed section would be a crash)."""
    pem = '-----BEGIN PUBLIC KEY-----\n' + ('A' * 63 + '\n') * 940 + '-----END PUBLIC KEY-----\n'
    sections = {'server': {'workers': '1'}, 'log': {'level': 'info'},
                'auth': {'public_key_file': 'big.pem'},
                'endpoint.echo': {'path': '/echo', 'protocol': 'echo'}}
    with Gateway(sections, files={'big.pem': pem}) as g:
        def reloads(n):
            for _ in range(n):
                _reload(g)
        # The first snapshot stays: the plugins read their keys from it.
        # Connections opened on the second hold it alone.
        reloads(1)
        live = client(g)
        echo = ws_handshake(g.port, make_token(unique_user()), path='/echo', read_welcome=False)
        reloads(20)                     # malloc's arenas settle
        before = _rss_kib(g.pids())
        reloads(120)
        grown = _rss_kib(g.pids()) - before
        live.ping_roundtrip('after-reloads')
        echo.send_text('still-here')
        assert echo.recv_message(5) == (1, b'still-here')
        fresh = ws_handshake(g.port, make_token(unique_user()), path='/echo', read_welcome=False)
        fresh.send_text('new')
        assert fresh.recv_message(5) == (1, b'new')
        for ws in (live, echo, fresh):
            ws.close_cleanly()
        assert len(g.logs('config_reloaded')) >= 140
        if not sanitized_build():       # ASan's quarantine keeps freed memory
            assert grown < 3 * 1024, 'RSS grew by %d KiB over 120 reloads' % grown
