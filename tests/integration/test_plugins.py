"""The plugin loader and the plugin API, through real and test plugins."""
import time

from harness import (Gateway, assert_healthy, built_test_plugin, client, plugin_dir_with,
                     plugin_dir_with_shipped, shared_gateway, shipped_plugin, start_expect_exit)


def echo_gw():
    d = plugin_dir_with_shipped(async_echo=built_test_plugin('async_echo'))
    return shared_gateway('async', sections={
        'plugins': {'dir': d},
        'handler.async_echo': {'plugin': 'async_echo', 'delay_ms': 200}})


def expect_refused(sections, plugin=None):
    """The gateway must exit 1 with exactly one plugin_load_failed line."""
    g = start_expect_exit(sections)
    assert g.returncode is not None, 'gateway kept running:\n' + g.stderr_text()
    assert g.returncode == 1, 'exit code %r:\n%s' % (g.returncode, g.stderr_text())
    fails = g.logs('plugin_load_failed')
    assert len(fails) == 1, 'plugin_load_failed lines: %r\n%s' % (fails, g.stderr_text())
    r = fails[0]
    assert isinstance(r.get('reason'), str) and r['reason'], \
        'plugin_load_failed has no "reason" field: %r' % r
    if plugin:
        assert r.get('plugin') == plugin, 'plugin_load_failed "plugin" is not %r: %r' % (plugin, r)
    assert not g.logs('server_listening'), 'must not listen with a refused plugin'
    return r


def test_plugin_from_custom_dir_for_new_type():
    d = plugin_dir_with(ping=shipped_plugin('ping'))
    with Gateway({'plugins': {'dir': d}, 'handler.ping': None, 'handler.batch': None,
                  'handler.agent_status': None, 'handler.ping2': {'plugin': 'ping'}}) as g:
        r = g.wait_log('plugin_loaded', lambda r: r.get('type') == 'ping2')
        assert r.get('plugin') == 'ping', r
        c = client(g)
        try:
            c.send_json({'type': 'ping2', 'id': 'two'})
            m = c.recv_json()
            assert m['type'] == 'pong' and m['id'] == 'two', m
            c.send_json({'type': 'ping', 'id': 'one'})
            m = c.recv_json()
            assert m['type'] == 'error' and m['message'] == 'Unknown message type: ping', m
        finally:
            c.close_cleanly()


def test_raw_twin_answers_fails_or_declines_to_the_tree_handler():
    """A raw handler (ABI 1.4) answers at once, fails, or declines: then the
    tree handler gets the message and answers later (its request outlives
    the raw call); inside a batch the tree handler serves."""
    d = plugin_dir_with_shipped(async_echo=built_test_plugin('async_echo'))
    with Gateway({'plugins': {'dir': d},
                  'handler.echo_raw': {'plugin': 'async_echo', 'delay_ms': 100,
                                       'raw': 'true'}}) as g:
        c = client(g)
        try:
            c.send_text('{"type":"echo_raw","id":{"k":[1,-0]},"payload":"later"}')
            c.send_text('{"type":"echo_raw","id":"\\u0041","payload":"now"}')
            c.send_text('{"type":"echo_raw","id":1e2,"payload":"fail"}')
            now = c.recv_json()
            assert now['type'] == 'async_echo_reply' and now['id'] == 'A', now
            assert now['payload'] == 'now', now
            failed = c.recv_json()
            assert failed['type'] == 'error' and failed['error'] == 'raw refused', failed
            assert failed['message'] == 'Failed to process message' and failed['id'] == 100, failed
            later = c.recv_json()
            assert later['type'] == 'async_echo_reply' and later['payload'] == 'later', later
            assert later['id'] == {'k': [1, 0]}, later
            c.send_json({'type': 'batch', 'id': 'B', 'messages': [
                {'type': 'echo_raw', 'id': 's', 'payload': 'fail'}]})
            b = c.recv_json()
            assert b['type'] == 'batch_response', b
            assert b['responses'][0]['status'] == 'success', b
            assert b['responses'][0]['result']['payload'] == 'fail', b
            # a declined request still pending when its client leaves
            c.send_json({'type': 'echo_raw', 'id': 'gone', 'payload': 'later'})
        finally:
            c.close_cleanly()
        g.wait_log('async_echo_orphaned', lambda r: r.get('id') == 'gone')
        assert_healthy(g)


def test_plugins_loaded_logged():
    g = shared_gateway('default')
    types = {r.get('type'): r.get('plugin') for r in g.logs('plugin_loaded')}
    assert types.get('ping') == 'ping', types
    assert types.get('batch') == 'batch', types
    assert types.get('agent_status') == 'agent_status', types


def test_one_plugin_serves_two_sections():
    d = plugin_dir_with_shipped(async_echo=built_test_plugin('async_echo'))
    with Gateway({'plugins': {'dir': d},
                  'handler.echo_fast': {'plugin': 'async_echo', 'delay_ms': 50},
                  'handler.echo_slow': {'plugin': 'async_echo', 'delay_ms': 600}}) as g:
        c = client(g)
        try:
            t0 = time.monotonic()
            c.send_json({'type': 'echo_slow', 'id': 'slow', 'payload': 's'})
            c.send_json({'type': 'echo_fast', 'id': 'fast', 'payload': 'f'})
            first = c.recv_json()
            t1 = time.monotonic() - t0
            second = c.recv_json()
            t2 = time.monotonic() - t0
            assert first['id'] == 'fast' and second['id'] == 'slow', (first, second)
            assert t1 < 0.5 and t2 >= 0.55, (t1, t2)
        finally:
            c.close_cleanly()


def test_bad_abi_refused():
    d = plugin_dir_with_shipped(bad_abi=built_test_plugin('bad_abi'))
    expect_refused({'plugins': {'dir': d}, 'handler.bad': {'plugin': 'bad_abi'}}, 'bad_abi')


def test_null_init_refused():
    d = plugin_dir_with_shipped(null_init=built_test_plugin('null_init'))
    expect_refused({'plugins': {'dir': d}, 'handler.ni': {'plugin': 'null_init'}}, 'null_init')


def test_duplicate_type_refused():
    d = plugin_dir_with_shipped(dup_type=built_test_plugin('dup_type'))
    expect_refused({'plugins': {'dir': d}, 'handler.dup': {'plugin': 'dup_type'}}, 'dup_type')


def test_small_descriptor_refused():
    d = plugin_dir_with_shipped(small_descriptor=built_test_plugin('small_descriptor'))
    expect_refused({'plugins': {'dir': d}, 'handler.sd': {'plugin': 'small_descriptor'}},
                   'small_descriptor')


def test_missing_plugin_refused():
    expect_refused({'handler.ghost': {'plugin': 'no_such_plugin'}}, 'no_such_plugin')


def test_not_a_shared_object_refused():
    d = plugin_dir_with_shipped()
    with open(d + '/junk.so', 'w') as f:
        f.write('this is not an ELF file\n')
    expect_refused({'plugins': {'dir': d}, 'handler.junk': {'plugin': 'junk'}}, 'junk')


def test_plugin_init_error_stops_gateway():
    d = plugin_dir_with_shipped(async_echo=built_test_plugin('async_echo'))
    g = start_expect_exit({'plugins': {'dir': d},
                           'handler.async_echo': {'plugin': 'async_echo',
                                                  'delay_ms': 'soon'}})
    assert g.returncode not in (None, 0), (g.returncode, g.stderr_text())
    assert 'delay_ms' in g.stderr_text(), \
        "the plugin's init error (about delay_ms) is not in the log:\n" + g.stderr_text()
    assert not g.logs('server_listening')


def test_async_reply_does_not_block_loop():
    g = echo_gw()
    c = client(g)
    try:
        t0 = time.monotonic()
        c.send_json({'type': 'async_echo', 'id': 'x', 'payload': {'k': [1, 'two']}})
        c.send_json({'type': 'ping', 'id': 'p'})
        first = c.recv_json()
        t_first = time.monotonic() - t0
        second = c.recv_json()
        t_second = time.monotonic() - t0
    finally:
        c.close_cleanly()
    assert first['type'] == 'pong' and first['id'] == 'p', first
    assert t_first < 0.15, 'pong took %.3fs: loop blocked?' % t_first
    assert second['type'] == 'async_echo_reply', second
    assert second['id'] == 'x' and second['payload'] == {'k': [1, 'two']}, second
    assert 0.18 <= t_second < 1.0, t_second


def test_async_many_concurrent():
    g = echo_gw()
    cs = [client(g) for _ in range(5)]
    try:
        t0 = time.monotonic()
        for i, c in enumerate(cs):
            for j in range(10):
                c.send_json({'type': 'async_echo', 'id': '%d-%d' % (i, j), 'payload': j})
        for i, c in enumerate(cs):
            got = sorted(c.recv_json()['id'] for _ in range(10))
            assert got == sorted('%d-%d' % (i, j) for j in range(10)), got
        # Concurrent, not one after the other (50 x 200 ms).
        assert time.monotonic() - t0 < 2.0
    finally:
        for c in cs:
            c.close_cleanly()


def test_batch_with_async_entry():
    g = echo_gw()
    c = client(g)
    try:
        c.send_json({'type': 'batch', 'id': 'mix', 'messages': [
            {'type': 'async_echo', 'id': 'e1', 'payload': 'first'},
            {'type': 'ping', 'id': 'p1'},
            {'type': 'async_echo', 'id': 'e2', 'payload': 'third'},
        ]})
        r = c.recv_json(5)
    finally:
        c.close_cleanly()
    assert r['type'] == 'batch_response' and r['id'] == 'mix', r
    a, p, b = r['responses']
    assert a['id'] == 'e1' and a['status'] == 'success', a
    assert a['result']['type'] == 'async_echo_reply' and a['result']['payload'] == 'first', a
    assert p['id'] == 'p1' and p['status'] == 'success' and p['result']['type'] == 'pong', p
    assert b['id'] == 'e2' and b['result']['payload'] == 'third', b


def test_orphaned_async_request():
    g = echo_gw()
    mark = g.mark()
    c = client(g)
    c.send_json({'type': 'async_echo', 'id': 'orphan', 'payload': 0})
    c.close_cleanly()
    r = g.wait_log('async_echo_orphaned', timeout=3, since=mark)
    assert r.get('id') == 'orphan', r
    time.sleep(0.05)
    assert g.alive()
    bad = [x for x in g.logs(since=mark) if x.get('level') in ('error', 'fatal', 'critical')]
    assert not bad, bad
    assert_healthy(g)


def test_orphaned_after_abrupt_close():
    g = echo_gw()
    mark = g.mark()
    c = client(g)
    c.send_json({'type': 'batch', 'id': 'ob', 'messages': [
        {'type': 'async_echo', 'id': 'o1', 'payload': 0},
        {'type': 'async_echo', 'id': 'o2', 'payload': 0}]})
    time.sleep(0.05)
    c.abort()
    g.wait_log('async_echo_orphaned', lambda r: r.get('id') == 'o1', timeout=3, since=mark)
    time.sleep(0.05)
    assert_healthy(g)
