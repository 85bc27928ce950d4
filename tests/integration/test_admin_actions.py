"""The admin API's actions on connections, on their own (the status page
uses them): GET /api/connections?detail=1 (the list of every worker's
connections, bounded by limit), DELETE /api/connections/ID (closes one with
1008) and POST /api/users/USER/disconnect (closes all of a user's), with one
and with two workers (a connection held by the other worker than the one
that answers the request), and their 400/401/403/404/405 answers."""
import json
import os
import signal
import socket
import time
import urllib.parse

from harness import (Gateway, assert_healthy, client, http_request, make_token, unique_user,
                     wait_until)

ADMIN_CLOSE = (1008, 'Closed by an administrator')


def _call(port, path, method='GET', token=None, body=None, timeout=5):
    hdrs = 'Authorization: Bearer %s\r\n' % token if token else ''
    if body is not None or method == 'POST':
        hdrs += 'Content-Length: %d\r\n' % len(body or b'')
    raw = ('%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n' % (method, path, hdrs)).encode()
    status, headers, data = http_request(port, raw + (body or b''), timeout=timeout)
    if headers.get('content-type') != 'application/json':
        return status, headers, data        # the gateway's plain-text 404 for unknown paths
    return status, headers, json.loads(data)


def _admin():
    return make_token(unique_user('admin'), extra={'role': 'admin'})


def _port_of(ws):
    return ws.sock.getsockname()[1]


def _worker_of(g, ws):
    peer = '127.0.0.1:%d' % _port_of(ws)
    return g.wait_log('websocket_connection', pred=lambda r: r.get('ip') == peer).get('worker')


def _id_of(g, ws):
    peer = '127.0.0.1:%d' % _port_of(ws)
    return g.wait_log('websocket_connection', pred=lambda r: r.get('ip') == peer)['connection']


def _clients_on_both_workers(g, user=None, at_least=1, limit=100):
    by_worker = {0: [], 1: []}
    for _ in range(limit):
        ws = client(g, user)
        w = _worker_of(g, ws)
        if len(by_worker[w]) >= at_least:
            # one user has 5 connections at most: give back what is not needed
            cid = _id_of(g, ws)
            ws.close()
            g.wait_log('websocket_disconnection', pred=lambda r: r.get('connection') == cid)
            continue
        by_worker[w].append(ws)
        if all(len(v) >= at_least for v in by_worker.values()):
            return by_worker
    raise AssertionError('connections never reached both workers')


def _detail(g, token, query=''):
    status, _, body = _call(g.port, '/api/connections?detail=1' + query, token=token)
    assert status == 200, (status, body)
    return body


def _check_list(g, workers):
    token = _admin()
    alice = unique_user('alice')
    conns = _clients_on_both_workers(g, alice) if workers == 2 else {0: [client(g, alice)]}
    others = [client(g) for _ in range(2)]
    try:
        everyone = [ws for v in conns.values() for ws in v] + others
        ids = {_id_of(g, ws): ws for ws in everyone}
        everyone[0].ping_roundtrip('counted')
        # Whichever worker answers, the list has every worker's connections
        # (several calls: the kernel spreads them over the workers).
        for _ in range(6):
            d = _detail(g, token)
            listed = {e['id']: e for e in d['list']}
            assert set(ids) <= set(listed), (sorted(ids), sorted(listed))
            assert d['truncated'] is False and d['listed'] == len(d['list']), d
            assert 'workers_unanswered' not in d, d
        e = listed[_id_of(g, everyone[0])]
        assert e['user'] == alice and e['ip'] == '127.0.0.1:%d' % _port_of(everyone[0]), e
        assert e['messages_in'] >= 1 and e['messages_out'] >= 2, e        # welcome + pong
        assert e['bytes_in'] > 0 and e['bytes_out'] > 0, e
        assert e['path'] == '/ws' and e['compression'] in ('none', 'permessage-deflate'), e
        assert e['since'].endswith('Z') and e['since'][:2] == '20', e
        if workers == 2:
            assert {listed[i]['worker'] for i in ids} == {0, 1}, listed
            for i, ws in ids.items():
                assert listed[i]['worker'] == _worker_of(g, ws)
        else:
            assert 'worker' not in e, e
        # Counts and errors ride along; newest first.
        assert d['connections'] >= len(ids) and d['per_user'][alice] == len(
            [ws for v in conns.values() for ws in v]), d
        assert [x['id'] for x in d['list']] == sorted((x['id'] for x in d['list']), reverse=True)
        assert isinstance(d['errors']['close_codes']['sent'], dict), d['errors']
        assert d['agent_silence_s'] == 60 and d['workers'] == workers, d
        # Without detail: no list (as before).
        status, _, plain = _call(g.port, '/api/connections', token=token)
        assert status == 200 and 'list' not in plain and 'connections' in plain, plain
        # limit caps the list, and says so.
        for _ in range(4):
            d = _detail(g, token, '&limit=2')
            assert len(d['list']) == 2 and d['truncated'] is True and d['limit'] == 2, d
    finally:
        for ws in [ws for v in conns.values() for ws in v] + others:
            ws.close()


def test_connection_list_one_worker():
    with Gateway({'server': {'workers': 1}, 'log': {'level': 'info'}}) as g:
        _check_list(g, 1)


def test_connection_list_two_workers():
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        _check_list(g, 2)


def test_close_one_connection_on_either_worker():
    """Closes until both cases were seen: the answering worker holds the
    connection, and it does not (the close travels over the bus)."""
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        token = _admin()
        seen = set()
        for i in range(40):
            ws = client(g)
            holder, cid = _worker_of(g, ws), _id_of(g, ws)
            mark = g.mark()
            status, _, body = _call(g.port, '/api/connections/%d' % cid, 'DELETE', token)
            assert status == 200 and body['closed'] == 1 and body['id'] == cid, body
            assert (body['code'], body['reason']) == ADMIN_CLOSE, body
            assert ws.expect_protocol_close(1008) == (1008, ADMIN_CLOSE[1].encode())
            rec = g.wait_log('admin_disconnect', lambda r: r.get('connection') == cid, since=mark)
            assert rec['found'] is True and rec['admin'].startswith('admin'), rec
            seen.add(rec['worker'] == holder)
            # Gone: a second DELETE finds it nowhere.
            status, _, body = _call(g.port, '/api/connections/%d' % cid, 'DELETE', token)
            assert status == 404 and body['error'] == 'No such connection', body
            ws.close()
            if seen == {True, False}:
                break
        assert seen == {True, False}, 'never closed across workers in %d tries' % (i + 1)
        assert token not in g.stderr_text()


def test_close_connection_bad_requests():
    with Gateway({'log': {'level': 'info'}}) as g:
        token = _admin()
        ws = client(g)
        cid = _id_of(g, ws)
        for bad in ('abc', '0', '-1', '1x', '99999999999999999999', ''):
            status, _, body = _call(g.port, '/api/connections/' + bad, 'DELETE', token)
            assert status == 400 and 'connection id' in body['error'], (bad, status, body)
        status, _, body = _call(g.port, '/api/connections/%d' % (cid + 100000), 'DELETE', token)
        assert status == 404, (status, body)
        # Methods: DELETE only.
        for m in ('GET', 'POST', 'PUT'):
            status, headers, _ = _call(g.port, '/api/connections/%d' % cid, m, token)
            assert status == 405 and headers.get('allow') == 'DELETE', (m, status, headers)
        # Tokens: none 401, bad 401, not an admin's 403; the connection stays.
        status, _, _ = _call(g.port, '/api/connections/%d' % cid, 'DELETE')
        assert status == 401
        status, _, _ = _call(g.port, '/api/connections/%d' % cid, 'DELETE', 'nope')
        assert status == 401
        user_token = make_token(unique_user())
        status, _, body = _call(g.port, '/api/connections/%d' % cid, 'DELETE', user_token)
        assert status == 403, (status, body)
        ws.ping_roundtrip('still-open')
        # Other workers' detail list: bad parameters.
        for q in ('detail=2', 'detail=', 'detail=1&limit=0', 'detail=1&limit=1001',
                  'detail=1&limit=x'):
            status, _, body = _call(g.port, '/api/connections?' + q, token=token)
            assert status == 400, (q, status, body)
        status, _, _ = _call(g.port, '/api/connections?detail=1', token=user_token)
        assert status == 403
        ws.close_cleanly()


def test_disconnect_user_on_every_worker():
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        token = _admin()
        bob = unique_user('bob s/é')        # needs percent-encoding in the path
        conns = _clients_on_both_workers(g, bob)
        bobs = [ws for v in conns.values() for ws in v]
        bystander = client(g)
        path = '/api/users/%s/disconnect' % urllib.parse.quote(bob, safe='')
        mark = g.mark()
        status, _, body = _call(g.port, path, 'POST', token)
        assert status == 200, (status, body)
        assert body['user'] == bob and body['closed'] == len(bobs), body
        assert (body['code'], body['reason']) == ADMIN_CLOSE, body
        for ws in bobs:
            assert ws.expect_protocol_close(1008) == (1008, ADMIN_CLOSE[1].encode())
            ws.close()
        rec = g.wait_log('admin_disconnect_user', since=mark)
        assert rec['user'] == bob and rec['closed'] == len(bobs), rec
        bystander.ping_roundtrip('untouched')
        wait_until(lambda: bob not in _detail(g, token)['per_user'], what='bob gone')
        # Again: nobody left to close.
        status, _, body = _call(g.port, path, 'POST', token)
        assert status == 200 and body['closed'] == 0, body
        # Bad requests.
        status, headers, _ = _call(g.port, path, 'GET', token)
        assert status == 405 and headers.get('allow') == 'POST', status
        for bad in ('/api/users/%zz/disconnect', '/api/users/%00/disconnect',
                    '/api/users//disconnect'):
            status, _, body = _call(g.port, bad, 'POST', token)
            assert status in (400, 404), (bad, status, body)
        status, _, _ = _call(g.port, '/api/users/%s/disconnect' % 'x', 'POST',
                             make_token(unique_user()))
        assert status == 403
        status, _, _ = _call(g.port, '/api/users/x/disconnect', 'POST')
        assert status == 401
        status, _, _ = _call(g.port, '/api/users/x/other', 'POST', token)
        assert status == 404
        bystander.close_cleanly()


def test_answers_that_wait_for_the_other_worker_are_logged_and_closed():
    """With two workers most list answers wait for the other one: they still
    get their access line (method, path, status), a HEAD gets no body, and
    the connection closes after the answer like any other."""
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info', 'access': 'true'}}) as g:
        token = _admin()
        ws = client(g)
        mark = g.mark()
        for _ in range(4):
            status, headers, body = _call(g.port, '/api/connections?detail=1', token=token)
            assert status == 200 and headers.get('connection') == 'close', headers
            assert len(body['list']) >= 1, body
        raw = ('HEAD /api/connections?detail=1 HTTP/1.1\r\nHost: x\r\n'
               'Authorization: Bearer %s\r\n\r\n' % token).encode()
        status, headers, data = http_request(g.port, raw)
        assert status == 200 and data == b'' and int(headers['content-length']) > 0, (status, data)
        lines = wait_until(lambda: [r for r in g.logs('access', since=mark)
                                    if r.get('path') == '/api/connections'][4:] and
                           [r for r in g.logs('access', since=mark)
                            if r.get('path') == '/api/connections'],
                           what='five access lines')
        assert [r['method'] for r in lines] == ['GET'] * 4 + ['HEAD'], lines
        assert all(r['status'] == 200 for r in lines), lines
        assert {r['worker'] for r in lines} <= {0, 1}
        assert token not in g.stderr_text()
        ws.close_cleanly()


def test_a_worker_that_does_not_answer_is_not_waited_for():
    """One worker stopped (SIGSTOP): the other answers after at most about
    a second, with what it has and "workers_unanswered": 1 (a close by id
    that it could not find: 503, not 404). Once resumed, the stopped worker
    does not act on the requests it was sent meanwhile (its connection stays
    open) and the gateway goes on."""
    with Gateway({'server': {'workers': 2}, 'log': {'level': 'info'}}) as g:
        token = _admin()
        conns = _clients_on_both_workers(g)
        held_by_1 = _id_of(g, conns[1][0])
        status, _, ready = _call(g.port, '/readyz')
        pid1 = [w['pid'] for w in ready['workers'] if w['worker'] == 1][0]
        os.kill(pid1, signal.SIGSTOP)
        try:
            got_list = got_close = None
            stray_delete = False    # a DELETE queued on the stopped worker runs when it resumes
            for _ in range(40):
                t0 = time.monotonic()
                try:
                    if got_list is None:
                        status, _, body = _call(g.port, '/api/connections?detail=1', token=token,
                                                timeout=3)
                        got_list = (status, body, time.monotonic() - t0)
                    else:
                        status, _, body = _call(g.port, '/api/connections/%d' % held_by_1,
                                                'DELETE', token, timeout=3)
                        got_close = (status, body, time.monotonic() - t0)
                        break
                except (socket.timeout, AssertionError, OSError):
                    stray_delete = stray_delete or got_list is not None
                    continue        # landed on the stopped worker
            assert got_list and got_close, (got_list, got_close)
            status, body, took = got_list
            assert status == 200 and body['workers_unanswered'] == 1, body
            assert {e['worker'] for e in body['list']} == {0}, body['list']
            assert 0.8 <= took < 2.5, took
            status, body, took = got_close
            assert status == 503 and body['workers_unanswered'] == 1, body
            assert 'did not answer' in body['error'], body
        finally:
            os.kill(pid1, signal.SIGCONT)
        g.wait_log('admin_request_expired', lambda r: r.get('worker') == 1)
        if not stray_delete:
            conns[1][0].ping_roundtrip('alive-after-sigcont')
        else:                       # that DELETE was a request like any other
            g.wait_log('admin_disconnect', lambda r: r.get('worker') == 1 and r.get('found'))
        assert_healthy(g)
        for v in conns.values():
            for ws in v:
                ws.close()
