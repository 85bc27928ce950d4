"""Token checks at the upgrade, and the per-user connection limit."""
import time

from harness import (Gateway, b64url, http_request, make_token, shared_gateway, unique_user,
                     upgrade_request, ws_handshake)

MISSING = b'Unauthorized: Missing token'
INVALID = b'Unauthorized: Invalid token'
TOO_MANY = b'Too Many Connections'


def gw():
    return shared_gateway('default')


def rejected(token, g=None, path='/ws'):
    g = g or gw()
    status, headers, body = http_request(g.port, upgrade_request(path, token))
    assert headers.get('connection', '').lower() == 'close', headers
    return status, body


def assert_invalid(token, g=None):
    status, body = rejected(token, g)
    assert (status, body) == (401, INVALID), (status, body)


def accepted(token, g=None):
    ws = ws_handshake((g or gw()).port, token)
    ws.ping_roundtrip('auth-ok')
    return ws


def test_missing_token_is_401():
    status, body = rejected(None)
    assert (status, body) == (401, MISSING), (status, body)


def test_empty_token_is_missing():
    status, body = rejected('')
    assert (status, body) == (401, MISSING), (status, body)


def test_bad_signature_is_401():
    assert_invalid(make_token(unique_user(), secret='wrong-secret'))


def test_tampered_claims_are_401():
    good = make_token('mallory')
    h, p, s = good.split('.')
    other = make_token('admin').split('.')[1]
    assert_invalid('.'.join((h, other, s)))


def test_alg_none_is_401():
    assert_invalid(make_token(unique_user(), alg='none'))


def test_alg_none_with_signature_is_401():
    # Header says none, but something is in the signature slot.
    t = make_token(unique_user(), header={'alg': 'none', 'typ': 'JWT'})
    assert_invalid(t)


def test_hs512_not_allowed_is_401():
    assert_invalid(make_token(unique_user(), alg='HS512'))


def test_header_alg_mismatch_is_401():
    # Signed with HS512 but the header claims HS256.
    t = make_token(unique_user(), alg='HS512', header={'alg': 'HS256', 'typ': 'JWT'})
    assert_invalid(t)


def test_expired_is_401():
    assert_invalid(make_token(unique_user(), exp_in=-3600))


def test_nbf_in_future_is_401():
    assert_invalid(make_token(unique_user(), nbf=3600))


def test_expiry_within_leeway_accepted():
    # Default leeway is 30 s.
    accepted(make_token(unique_user(), exp_in=-5)).close_cleanly()
    accepted(make_token(unique_user(), nbf=5)).close_cleanly()


def test_leeway_zero_rejects_just_expired():
    with Gateway({'auth': {'leeway_s': 0}}) as g:
        assert_invalid(make_token(unique_user(), exp_in=-5), g)
        accepted(make_token(unique_user()), g).close_cleanly()


def test_garbage_tokens_are_401():
    for t in ('garbage', 'a.b.c', 'a.b', '...', b64url('{}') + '.' + b64url('{}') + '.x',
              b64url('[1]') + '.' + b64url('{"id":"x"}') + '.' + b64url('sig'),
              'x' * 6000, make_token(unique_user())[:-3], make_token(unique_user()) + 'AAAA'):
        assert_invalid(t)


def test_token_without_user_is_401():
    assert_invalid(make_token(claims={'role': 'x'}))


def test_other_algorithm_configured():
    with Gateway({'auth': {'algorithms': 'HS384'}}) as g:
        accepted(make_token(unique_user(), alg='HS384'), g).close_cleanly()
        assert_invalid(make_token(unique_user(), alg='HS256'), g)


def test_auth_failures_logged_without_token():
    with Gateway() as g:
        tokens = [make_token('leak-check', secret='nope'), make_token('leak-check', exp_in=-9999),
                  make_token('leak-check', alg='none'), make_token('leak-check', alg='HS512'),
                  'not-a-jwt-but-secretish-XYZZY']
        for t in tokens:
            status, _ = rejected(t, g)
            assert status == 401, status
        rejected(None, g)
        good = make_token('leak-check-ok')
        accepted(good, g).close_cleanly()
        g.wait_log('websocket_auth_success', lambda r: r.get('user') == 'leak-check-ok')
        fails = g.logs('websocket_auth_failed')
        assert len(fails) >= len(tokens) + 1, fails
        for r in fails:
            assert isinstance(r.get('reason'), str) and r['reason'], r
            assert r.get('status') == 401, r
        reasons = {r['reason'] for r in fails}
        assert len(reasons) >= 3, 'expected distinct reasons, got %r' % reasons
        text = g.stderr_text()
        for t in tokens + [good]:
            assert t not in text, 'token appears in the log'
            for part in t.split('.')[1:]:
                if len(part) > 8:
                    assert part not in text, 'a token part appears in the log'


def test_auth_success_logged():
    user = unique_user('succ')
    ws = accepted(make_token(user))
    try:
        r = gw().wait_log('websocket_auth_success', lambda r: r.get('user') == user)
        assert r.get('connections') == 1, r
        gw().wait_log('websocket_connection', lambda r: r.get('user') == user)
    finally:
        ws.close_cleanly()
    gw().wait_log('websocket_disconnection', lambda r: r.get('user') == user)


def test_sixth_connection_is_429():
    user = unique_user('limit')
    conns = [accepted(make_token(user)) for _ in range(5)]
    try:
        status, body = rejected(make_token(user))
        assert (status, body) == (429, TOO_MANY), (status, body)
        r = gw().wait_log('websocket_auth_failed', lambda r: r.get('status') == 429)
        assert r.get('reason'), r
        # Another user is not affected.
        accepted(make_token(unique_user())).close_cleanly()
        # The five are still fine.
        for i, c in enumerate(conns):
            c.ping_roundtrip('still-%d' % i)
    finally:
        for c in conns:
            c.close_cleanly()


def _reconnect_after(user, mark, g=None):
    g = g or gw()
    g.wait_log('websocket_disconnection', lambda r: r.get('user') == user, since=mark)
    return accepted(make_token(user), g)


def test_slot_released_after_clean_close():
    user = unique_user('rel')
    conns = [accepted(make_token(user)) for _ in range(5)]
    try:
        status, _ = rejected(make_token(user))
        assert status == 429
        mark = gw().mark()
        conns.pop(0).close_cleanly()
        conns.append(_reconnect_after(user, mark))
        status, _ = rejected(make_token(user))
        assert status == 429, 'limit must still hold after reuse'
    finally:
        for c in conns:
            c.close_cleanly()


def test_slot_released_after_abrupt_close():
    import socket
    user = unique_user('abrupt')
    conns = [accepted(make_token(user)) for _ in range(5)]
    try:
        mark = gw().mark()
        c = conns.pop()
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        conns.append(_reconnect_after(user, mark))
        r = gw().wait_log('websocket_disconnection', lambda r: r.get('user') == user, since=mark)
        assert r.get('code') == 1006, 'abnormal closure expected: %r' % r
        mark = gw().mark()
        conns.pop().abort()  # TCP reset
        conns.append(_reconnect_after(user, mark))
    finally:
        for c in conns:
            c.close_cleanly()


def test_slot_released_after_heartbeat_timeout():
    with Gateway({'heartbeat': {'interval_ms': 200},
                  'auth': {'max_connections_per_user': 2}}) as g:
        user = unique_user('hbslot')
        silent = [ws_handshake(g.port, make_token(user)) for _ in range(2)]
        status, body = rejected(make_token(user), g)
        assert (status, body) == (429, TOO_MANY)
        for s in silent:       # never answer the pings
            s.wait_eof(3)
        g.wait_log('websocket_heartbeat_timeout', lambda r: r.get('user') == user)
        ws = ws_handshake(g.port, make_token(user))
        ws.ping_roundtrip('after-timeout')
        ws.close_cleanly()


def test_user_from_sub_without_id():
    user = unique_user('sub')
    ws = accepted(make_token(claims={'sub': user}))
    try:
        gw().wait_log('websocket_auth_success', lambda r: r.get('user') == user)
    finally:
        ws.close_cleanly()


def test_id_wins_over_sub():
    user = unique_user('idwins')
    ws = accepted(make_token(claims={'id': user, 'sub': 'someone-else'}))
    try:
        gw().wait_log('websocket_auth_success', lambda r: r.get('user') == user)
    finally:
        ws.close_cleanly()


def test_numeric_id():
    n = int(time.time() * 1000) % 1000000000 + 7
    ws = accepted(make_token(claims={'id': n}))
    try:
        gw().wait_log('websocket_auth_success', lambda r: str(r.get('user')) == str(n))
    finally:
        ws.close_cleanly()


def test_numeric_id_shares_limit_with_string_id():
    # id 424242 and "424242" are the same user for the limit.
    g = Gateway({'auth': {'max_connections_per_user': 1}})
    with g:
        a = accepted(make_token(claims={'id': 424242}), g)
        try:
            status, body = rejected(make_token(claims={'id': '424242'}), g)
            assert (status, body) == (429, TOO_MANY), (status, body)
        finally:
            a.close_cleanly()


def test_configured_user_claim():
    with Gateway({'auth': {'user_claim': 'uid'}}) as g:
        user = unique_user('uid')
        ws = accepted(make_token(claims={'uid': user, 'sub': 'fallback'}), g)
        g.wait_log('websocket_auth_success', lambda r: r.get('user') == user)
        ws.close_cleanly()


def test_token_via_bearer_header_raw():
    token = make_token(unique_user())
    ws = ws_handshake(gw().port, None, headers={'Authorization': 'Bearer ' + token})
    ws.ping_roundtrip('bearer')
    ws.close_cleanly()
    status, headers, body = http_request(
        gw().port, upgrade_request('/ws', None, headers={'Authorization': 'Bearer x.y.z'}))
    assert (status, body) == (401, INVALID), (status, body)


def test_query_token_wins_over_header():
    good = make_token(unique_user())
    status, headers, body = http_request(
        gw().port, upgrade_request('/ws', 'x.y.z', headers={'Authorization': 'Bearer ' + good}))
    assert (status, body) == (401, INVALID), (status, body)


def test_percent_encoded_token_and_other_params():
    token = make_token(unique_user())
    enc = token.replace('.', '%2E').replace('-', '%2d')
    ws = ws_handshake(gw().port, None, path='/ws?client=x&token=' + enc + '&v=2')
    ws.ping_roundtrip('pct')
    ws.close_cleanly()


def test_unusable_token_is_invalid_not_missing():
    # A token is present but cannot be used: the reference answers "Invalid
    # token" (jwt.verify fails), not "Missing token".
    status, body = rejected('%zz')
    assert (status, body) == (401, INVALID), ('bad percent escape', status, body)
    with Gateway({'server': {'max_header_bytes': 65536}}) as g:
        status, body = rejected('x' * 10000, g)
        assert (status, body) == (401, INVALID), ('10000-byte token', status, body)
