"""
test_workers.py - the process model: a supervisor with several worker
processes ([server] workers). Limits that hold exactly across workers, a
crash that costs one worker, its replacement, the handler watchdog,
connection ids, SIGHUP and a graceful shutdown with clients on every worker.
"""
import os
import signal
import threading
import time

from harness import (Gateway, HandshakeError, assert_healthy, built_test_plugin, client,
                     http_request, make_token, plugin_dir_with_shipped, process_gone, unique_user,
                     wait_until, ws_handshake)


def _worker_of(g, ws):
    """The worker serving this client (from its websocket_connection line)."""
    peer = '127.0.0.1:%d' % ws.sock.getsockname()[1]
    rec = g.wait_log('websocket_connection', pred=lambda r: r.get('ip') == peer)
    return rec['worker']


def _clients_on_every_worker(g, n_workers, at_least=2, limit=200):
    """Clients until every worker serves at least `at_least` of them."""
    by_worker = {w: [] for w in range(n_workers)}
    for _ in range(limit):
        ws = client(g)
        by_worker[_worker_of(g, ws)].append(ws)
        if all(len(v) >= at_least for v in by_worker.values()):
            return by_worker
    raise AssertionError('connections never reached every worker: %r'
                         % {w: len(v) for w, v in by_worker.items()})


def _close_all(by_worker):
    for conns in by_worker.values():
        for ws in conns:
            ws.abort()


def _per_user_limit_race(workers):
    with Gateway({'server': {'workers': workers}, 'log': {'level': 'info'}}) as g:
        wait_until(lambda: len(g.logs('worker_started')) == workers,
                   what='%d workers started' % workers)
        user = unique_user('racer')
        token = make_token(user)
        start = threading.Barrier(50)
        results, held = [], []
        lock = threading.Lock()

        def attempt():
            start.wait()
            try:
                ws = ws_handshake(g.port, token)
                with lock:
                    results.append(101)
                    held.append(ws)
            except HandshakeError as e:
                with lock:
                    results.append(e.status)

        threads = [threading.Thread(target=attempt) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == [101] * 5 + [429] * 45, sorted(results)
        # The attempts were spread over the workers (each logged its own).
        seen = {r.get('worker') for r in g.logs('websocket_auth_success')} | \
               {r.get('worker') for r in g.logs('websocket_connection_rejected')}
        assert seen == set(range(workers)), seen
        for ws in held:
            ws.close_cleanly()
        # Every slot comes back: five new connections of the user work again.
        wait_until(lambda: len(g.logs('websocket_disconnection')) == 5, timeout=10,
                   what='five disconnections')
        again = [ws_handshake(g.port, token) for _ in range(5)]
        for ws in again:
            ws.close_cleanly()


def test_per_user_limit_is_exact_across_2_workers():
    _per_user_limit_race(2)


def test_per_user_limit_is_exact_across_4_workers():
    _per_user_limit_race(4)


def test_max_connections_is_exact_across_workers():
    with Gateway({'server': {'workers': 2, 'max_connections': 6}, 'log': {'level': 'info'}}) as g:
        held = []
        statuses = []
        for _ in range(10):
            try:
                held.append(client(g))
                statuses.append(101)
            except HandshakeError as e:
                statuses.append(e.status)
        assert statuses == [101] * 6 + [503] * 4, statuses
        for ws in held:
            ws.close_cleanly()


def test_connection_ids_are_unique_across_workers():
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        by_worker = _clients_on_every_worker(g, 2, at_least=5)
        ids = [r['connection'] for r in g.logs('websocket_connection')]
        assert len(ids) == len(set(ids)), sorted(ids)
        _close_all(by_worker)


def test_a_crashed_worker_costs_only_its_connections():
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        wait_until(lambda: len(g.logs('worker_started')) == 2, what='2 workers started')
        pids = {r['worker']: r['pid'] for r in g.logs('worker_started')}
        # One user's five slots, on both workers, plus other clients.
        user = unique_user('crash')
        mine = {0: [], 1: []}
        for _ in range(5):
            ws = client(g, user=user)
            mine[_worker_of(g, ws)].append(ws)
        others = _clients_on_every_worker(g, 2, at_least=2)
        victim = 0 if len(mine[0]) >= len(mine[1]) else 1
        survivor = 1 - victim
        mark = g.mark()
        t0 = time.monotonic()
        os.kill(pids[victim], signal.SIGSEGV)
        crash = g.wait_log('worker_crashed', since=mark, timeout=5)
        assert crash['worker'] == victim and crash['signal'] == signal.SIGSEGV, crash
        assert crash['reason'] == 'crash', crash
        assert crash['released_slots'] == len(mine[victim]) + len(others[victim]), crash
        back = g.wait_log('worker_restarted', since=mark, timeout=5)
        assert back['worker'] == victim and back['pid'] != pids[victim], back
        assert time.monotonic() - t0 < 1.5, 'replaced after %.2fs' % (time.monotonic() - t0)
        # The victim's clients lost their connection; the survivor's did not.
        for ws in mine[victim] + others[victim]:
            ws.wait_eof(5)
        for ws in mine[survivor] + others[survivor]:
            ws.ping_roundtrip('still-here')
        # The dead worker's slots are free: the user has exactly its share back.
        regained = [client(g, user=user) for _ in range(len(mine[victim]))]
        try:
            client(g, user=user)
            raise AssertionError('a sixth connection of the user was accepted')
        except HandshakeError as e:
            assert e.status == 429, e.status
        # New connections reach both workers again (the replacement accepts).
        more = _clients_on_every_worker(g, 2, at_least=1)
        metrics = _get(g.port, '/metrics')
        assert 'mcpgw_worker_restarts_total{reason="crash"} 1' in metrics, metrics
        for ws in regained + mine[survivor]:
            ws.close_cleanly()
        _close_all(others)
        _close_all(more)
        assert g.alive()


def _get(port, path, headers=''):
    """The body of GET path (with extra header lines)."""
    _, _, body = http_request(port, ('GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n'
                                     % (path, headers)).encode())
    return body.decode('utf-8', 'replace')


def test_handler_watchdog_replaces_a_wedged_worker():
    d = plugin_dir_with_shipped(misbehave=built_test_plugin('misbehave'))
    with Gateway({'server': {'workers': 2, 'handler_watchdog_ms': 300},
                  'plugins': {'dir': d},
                  'handler.misbehave': {'plugin': 'misbehave'},
                  'log': {'level': 'info'}}) as g:
        by_worker = _clients_on_every_worker(g, 2, at_least=1)
        wedged, other = by_worker[0][0], by_worker[1][0]
        mark = g.mark()
        wedged.send_json({'type': 'misbehave', 'do': 'spin'})     # never returns
        # The other worker keeps serving while that one spins.
        other.ping_roundtrip('not-blocked')
        dog = g.wait_log('handler_watchdog', since=mark, timeout=5)
        assert dog['type'] == 'misbehave' and dog['worker'] == 0, dog
        crash = g.wait_log('worker_crashed', since=mark, timeout=5)
        assert crash['reason'] == 'watchdog' and crash.get('handling') == 'misbehave', crash
        g.wait_log('worker_restarted', since=mark, timeout=5)
        wedged.wait_eof(5)
        other.ping_roundtrip('still-here')
        # A handler under the limit is fine.
        ws = by_worker[1][0]
        ws.send_json({'type': 'misbehave', 'do': 'spin', 'ms': 50})
        assert ws.recv_json()['type'] == 'misbehave_ok'
        # host->worker() tells a plugin which worker it runs in.
        ws.send_json({'type': 'misbehave', 'do': 'whoami'})
        assert ws.recv_json() == {'type': 'misbehave_ok', 'worker': 1, 'workers': 2}
        _close_all(by_worker)


def test_crash_names_the_message_type_being_handled():
    d = plugin_dir_with_shipped(misbehave=built_test_plugin('misbehave'))
    with Gateway({'server': {'workers': 1},
                  'plugins': {'dir': d},
                  'handler.misbehave': {'plugin': 'misbehave'},
                  'log': {'level': 'info'}}) as g:
        ws = client(g)
        mark = g.mark()
        ws.send_json({'type': 'misbehave', 'do': 'crash'})
        crash = g.wait_log('worker_crashed', since=mark, timeout=5)
        assert crash['signal'] == signal.SIGSEGV and crash.get('handling') == 'misbehave', crash
        ws.wait_eof(5)
        g.wait_log('worker_restarted', since=mark, timeout=5)
        assert_healthy(g)


def test_crash_loop_backs_off():
    d = plugin_dir_with_shipped(misbehave=built_test_plugin('misbehave'))
    with Gateway({'server': {'workers': 1},
                  'plugins': {'dir': d},
                  'handler.misbehave': {'plugin': 'misbehave'},
                  'log': {'level': 'info'}}) as g:
        mark = g.mark()
        for i in range(3):
            ws = client(g, timeout=10)
            ws.send_json({'type': 'misbehave', 'do': 'crash'})
            ws.wait_eof(5)
            g.wait_log('worker_restarted', since=mark, timeout=10)
            mark = g.mark()
        events = [r for r in g.logs() if r.get('event') in ('worker_crashed', 'worker_restarted')]
        assert [r['event'] for r in events] == ['worker_crashed', 'worker_restarted'] * 3, events
        # A worker that keeps dying is started again later each time: 0.1 s,
        # 0.2 s, 0.4 s after its death (each gap also holds its start-up).
        gaps = [_iso_s(events[i + 1]['timestamp']) - _iso_s(events[i]['timestamp'])
                for i in (0, 2, 4)]
        assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, gaps
        assert gaps[2] > gaps[0], gaps
        assert_healthy(g)


def _iso_s(ts):
    import datetime
    return datetime.datetime.strptime(ts, '%Y-%m-%dT%H:%M:%S.%fZ').timestamp()


def test_sighup_reaches_every_worker():
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        by_worker = _clients_on_every_worker(g, 2, at_least=1)
        mark = g.mark()
        g.signal(signal.SIGHUP)
        wait_until(lambda: len(g.logs('config_reloaded', since=mark)) == 2,
                   what='both workers reloaded')
        assert {r['worker'] for r in g.logs('config_reloaded', since=mark)} == {0, 1}
        for conns in by_worker.values():
            conns[0].ping_roundtrip('after-hup')
        assert not g.logs('worker_crashed')
        _close_all(by_worker)


def test_graceful_shutdown_closes_every_workers_clients():
    g = Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}})
    try:
        by_worker = _clients_on_every_worker(g, 2, at_least=2)
        g.signal(signal.SIGTERM)
        for conns in by_worker.values():
            for ws in conns:
                code, _ = ws.expect_close(5)
                assert code == 1001, code
                ws.send_close(1001)
                ws.close()
        assert g.wait_exit(10) == 0
        assert len(g.logs('shutdown_complete')) == 2
        assert not g.logs('worker_crashed')
    finally:
        g.close()


# ------------------------------------------------------------------ the bus

def _updates(ws, n, timeout=20):
    """The next n agent_status_update ids this client gets (other messages
    in between are kept aside)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        m = ws.recv_json(max(0.1, deadline - time.monotonic()))
        if m.get('type') == 'agent_status_update':
            got.append(m['status'])
    return got


def test_broadcast_reaches_every_worker_once_and_in_order():
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        listeners = _clients_on_every_worker(g, 2, at_least=3)
        sender = listeners[0].pop()
        n = 1000
        for i in range(n):
            sender.send_json({'type': 'agent_status', 'id': i, 'agentId': 'bus', 'status': str(i)})
        acks = 0
        while acks < n:
            if sender.recv_json(20).get('type') == 'agent_status_ack':
                acks += 1
        want = [str(i) for i in range(n)]
        for w, conns in listeners.items():
            for ws in conns:
                assert _updates(ws, n) == want, 'worker %d: out of order or missing' % w
                # ... and nothing twice: the next thing it gets is its pong.
                ws.send_json({'type': 'ping', 'id': 'after'})
                m = ws.recv_json(5)
                assert m.get('type') == 'pong' and m.get('id') == 'after', m
        metrics = _get(g.port, '/metrics')
        assert 'mcpgw_bus_dropped_total 0' in metrics, metrics
        _close_all(listeners)
        sender.close_cleanly()


def _admin_header():
    return 'Authorization: Bearer %s\r\n' % make_token(unique_user('admin'), extra={'role': 'admin'})


def _admin_post(g, path, body):
    status, _, answer = http_request(g.port, (
        'POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n'
        'Content-Length: %d\r\n\r\n%s' % (path, _admin_header(), len(body), body)).encode())
    return status, answer.decode()


def test_admin_broadcast_and_send_to_user_reach_every_worker():
    import json
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        everyone = _clients_on_every_worker(g, 2, at_least=2)
        user = unique_user('target')
        mine = {0: [], 1: []}
        while not (mine[0] and mine[1]):
            ws = client(g, user=user)
            w = _worker_of(g, ws)
            if len(mine[w]) < 2:
                mine[w].append(ws)
            else:
                ws.close_cleanly()
        total = sum(len(v) for v in everyone.values()) + len(mine[0]) + len(mine[1])
        status, body = _admin_post(g, '/api/broadcast', '{"type":"notice","n":1}')
        assert status == 200 and json.loads(body) == {'recipients': total}, (status, body, total)
        for ws in [c for v in everyone.values() for c in v] + mine[0] + mine[1]:
            m = ws.recv_json(5)
            assert m == {'type': 'notice', 'n': 1}, m
        status, body = _admin_post(g, '/api/broadcast?user=' + user, '{"type":"notice","n":2}')
        assert status == 200 and json.loads(body) == {'recipients': len(mine[0]) + len(mine[1])}
        for ws in mine[0] + mine[1]:
            assert ws.recv_json(5) == {'type': 'notice', 'n': 2}
        # The others got nothing more: their next message is their pong.
        for conns in everyone.values():
            for ws in conns:
                ws.ping_roundtrip('only-pong')
        _close_all(everyone)
        _close_all(mine)


def test_admin_broadcast_counts_only_the_workers_that_took_it():
    """A stopped worker's ring fills up: it misses the broadcasts that do
    not fit, and the admin API's recipients count does not include its
    connections for those (issue 11: the count assumed every ring took it)."""
    import json
    # the listeners do not read: room for all of it in their output
    with Gateway({'server': {'workers': 2, 'max_outbound_bytes': '64m'},
                  'log': {'level': 'info'}}) as g:
        conns = _clients_on_every_worker(g, 2, at_least=1)
        status, _, ready = http_request(g.port, b'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n')
        pid1 = [w['pid'] for w in json.loads(ready)['workers'] if w['worker'] == 1][0]
        big = json.dumps({'type': 'notice', 'pad': 'x' * 900000})
        raw = ('POST /api/broadcast HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n'
               'Content-Length: %d\r\n\r\n%s' % (_admin_header(), len(big), big)).encode()
        os.kill(pid1, signal.SIGSTOP)
        counts = []
        try:
            for _ in range(80):             # a request that lands on the stopped worker waits
                try:
                    st, _, body = http_request(g.port, raw, timeout=0.5)
                except (OSError, AssertionError):
                    continue
                if st == 200:
                    counts.append(json.loads(body)['recipients'])
                if len(counts) >= 14 or (counts and counts[-1] == len(conns[0])):
                    break
        finally:
            os.kill(pid1, signal.SIGCONT)
        # 8 MiB ring: the first ones reach both workers, the later ones only
        # worker 0 (which answers every request that got an answer)
        n0, n1 = len(conns[0]), len(conns[1])
        assert counts and counts[0] == n0 + n1 and counts[-1] == n0, (counts, n0, n1)
        assert all(c in (n0, n0 + n1) for c in counts), (counts, n0, n1)
        _close_all(conns)


def test_a_stuck_worker_does_not_hold_up_the_others():
    d = plugin_dir_with_shipped(misbehave=built_test_plugin('misbehave'))
    with Gateway({'server': {'workers': 2, 'handler_watchdog_ms': 0},
                  'plugins': {'dir': d},
                  'handler.misbehave': {'plugin': 'misbehave'},
                  'log': {'level': 'info'}}) as g:
        conns = _clients_on_every_worker(g, 2, at_least=3)
        sender, listener0 = conns[0][0], conns[0][1]
        stuck = conns[1][0]
        stuck.send_json({'type': 'misbehave', 'do': 'spin', 'ms': 2000})
        time.sleep(0.2)                 # worker 1 is spinning now
        t0 = time.monotonic()
        for i in range(200):
            sender.send_json({'type': 'agent_status', 'id': i, 'agentId': 's', 'status': str(i)})
        assert _updates(listener0, 200, timeout=5) == [str(i) for i in range(200)]
        took = time.monotonic() - t0
        assert took < 1.5, 'worker 0 was held up %.2fs by worker 1' % took
        # Once it is free again, worker 1's clients get all of it, in order.
        assert stuck.recv_json(10)['type'] == 'misbehave_ok'
        for ws in conns[1][1:]:
            assert _updates(ws, 200, timeout=10) == [str(i) for i in range(200)]
        _close_all(conns)


# ------------------------------------------------------------ observability

def _metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + ' '):
            return float(line.split()[1])
    raise AssertionError('%s not in /metrics' % name)


def test_metrics_readyz_and_connections_cover_every_worker():
    import json
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        before = _get(g.port, '/metrics')
        conns = _clients_on_every_worker(g, 2, at_least=2)
        n = sum(len(v) for v in conns.values())
        for v in conns.values():
            for ws in v:
                ws.ping_roundtrip('m')
        # Whichever worker answers, it counts every worker's traffic.
        for _ in range(4):
            after = _get(g.port, '/metrics')
            assert _metric(after, 'mcpgw_connections_open') == n, after
            assert _metric(after, 'mcpgw_messages_total{direction="in"}') - \
                _metric(before, 'mcpgw_messages_total{direction="in"}') == n
            assert _metric(after, 'mcpgw_handler_duration_seconds_count{type="ping"}') >= n
            assert _metric(after, 'mcpgw_workers') == 2
        ready = json.loads(_get(g.port, '/readyz'))
        assert [w['worker'] for w in ready['workers']] == [0, 1], ready
        assert all(w['running'] and w['pid'] > 0 for w in ready['workers']), ready
        assert sum(w['connections'] for w in ready['workers']) == n, ready
        info = json.loads(_get(g.port, '/api/connections', _admin_header()))
        assert info['connections'] == n and info['users'] == n, info
        assert info['messages_in'] >= n, info
        _close_all(conns)


# ---------------------------------------------------------- binary upgrade

def test_sigusr2_upgrade_refuses_no_handshake():
    """SIGUSR2: the binary starts anew with the listening sockets; once its
    workers serve, the old generation stops accepting, drains and exits. A
    client loop that keeps connecting meanwhile sees no failed handshake."""
    g = Gateway({'server': {'workers': 2, 'drain_timeout_ms': 300}, 'log': {'level': 'info'}})
    stop = threading.Event()
    failures, done, drained = [], [0], [0]

    def loop():
        while not stop.is_set():
            try:
                ws = client(g)
            except Exception as e:          # refused, reset, or no 101: a failure
                failures.append(repr(e))
                continue
            try:
                ws.ping_roundtrip('up')
                done[0] += 1
            except Exception:               # an old worker's drain closed it (1001)
                drained[0] += 1
            ws.close()

    threads = [threading.Thread(target=loop) for _ in range(3)]
    try:
        old_pids = set(g.worker_pids())
        held = client(g)                    # an old worker's client, kept open
        for t in threads:
            t.start()
        time.sleep(0.3)
        mark = g.mark()
        g.signal(signal.SIGUSR2)
        started = g.wait_log('upgrade_started', since=mark, timeout=10)
        complete = g.wait_log('upgrade_complete', since=mark, timeout=15)
        assert complete['pid'] == started['pid'], (started, complete)
        g.wait_log('supervisor_draining', since=mark, timeout=10)
        # the old client is kept for drain_timeout_ms, then closed 1001
        code, _ = held.expect_close(10)
        assert code == 1001, code
        held.send_close(1001)
        held.close()
        assert g.wait_exit(15) == 0         # the old supervisor hands over and exits
        time.sleep(0.5)                     # the loop goes on against the new one
        stop.set()
        for t in threads:
            t.join(10)
        assert not failures, failures[:5]
        assert done[0] > 20, done
        # The new generation serves, with new workers.
        ws = client(g)
        ws.ping_roundtrip('new')
        ws.close_cleanly()
        new_pid = complete['pid']
        with open('/proc/%d/task/%d/children' % (new_pid, new_pid)) as f:
            new_workers = {int(p) for p in f.read().split()}
        assert len(new_workers) == 2 and not (new_workers & old_pids), (new_workers, old_pids)
        os.kill(new_pid, signal.SIGTERM)
        wait_until(lambda: process_gone(new_pid), timeout=10,
                   what='the new supervisor to stop')
    finally:
        stop.set()
        g.close()


def test_a_stray_sigquit_or_sigusr2_to_a_worker_changes_nothing():
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        conns = _clients_on_every_worker(g, 2, at_least=1)
        mark = g.mark()
        g.signal(signal.SIGQUIT)            # no upgrade under way: not a hand-over
        g.wait_log('signal_ignored', since=mark)
        for pid in g.worker_pids():         # an upgrade signal meant for the supervisor
            os.kill(pid, signal.SIGUSR2)
        time.sleep(0.3)
        for v in conns.values():
            v[0].ping_roundtrip('still')
        assert not g.logs('worker_crashed') and not g.logs('supervisor_draining')
        assert_healthy(g)
        _close_all(conns)


def test_sigusr2_upgrade_follows_a_changed_listen_address():
    """An upgrade whose configuration moved [server] listen serves the new
    address (the inherited sockets of the old one are closed, not served by
    position), and says so (listen_changed)."""
    from harness import free_port
    g = Gateway({'server': {'workers': 2, 'drain_timeout_ms': 200}, 'log': {'level': 'info'}})
    new_pid = None
    try:
        old_port = g.port
        port = free_port()
        g.conf.sections['server']['listen'] = '127.0.0.1:%d' % port
        g.conf.rewrite_main()
        mark = g.mark()
        g.signal(signal.SIGUSR2)
        complete = g.wait_log('upgrade_complete', since=mark, timeout=15)
        new_pid = complete['pid']
        changed = g.wait_log('listen_changed', since=mark, timeout=5)
        assert changed['was_port'] == old_port and changed['now_port'] == port, changed
        assert g.wait_exit(15) == 0
        ws = ws_handshake(port, make_token(unique_user()))
        ws.ping_roundtrip('new address')
        ws.close_cleanly()
        try:
            ws_handshake(old_port, make_token(unique_user()), timeout=2)
            raise AssertionError('the old address still serves')
        except (OSError, AssertionError) as e:
            if 'still serves' in str(e):
                raise
    finally:
        if new_pid:
            os.kill(new_pid, signal.SIGTERM)
            wait_until(lambda: process_gone(new_pid), timeout=10,
                       what='the new supervisor to stop')
        g.close()
