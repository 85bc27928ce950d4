"""Edge hardening: TLS (python3-websockets with an ssl context and openssl
s_client), asymmetric JWT keys and the key-confusion attack, issuer and
audience, the Origin allow-list, the global connection limit, the handshake
timeout (slowloris), the outbound cap (slow consumers) and the inbound rate
limit. Every case checks the answer the bad input gets and that other
connections keep being served."""
import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import websockets

from harness import (SECRET, Gateway, assert_healthy, b64url, client, connect, http_request,
                     kernel_backlog_bound, make_token, slow_reader_socket, unique_user,
                     upgrade_request, wait_until, ws_handshake)

_TMP = []


def _tmpdir():
    d = tempfile.mkdtemp(prefix='mcpgw-hard-')
    _TMP.append(d)
    return d


def _openssl(*args, **kw):
    return subprocess.run(['openssl'] + list(args), check=True, capture_output=True, **kw)


def _cert():
    """A self-signed certificate for localhost/127.0.0.1, made now."""
    d = _tmpdir()
    cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
             '-days', '1', '-subj', '/CN=localhost',
             '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1')
    return cert, key


def _tls_sections(cert, key, **server):
    s = {'tls': {'cert': cert, 'key': key}}
    if server:
        s['server'] = server
    return s


def _ssl_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def test_tls_python_websockets_client():
    cert, key = _cert()
    with Gateway(_tls_sections(cert, key)) as g:
        listening = g.logs('server_listening')
        assert listening and listening[0].get('tls') is True, listening

        async def run():
            url = 'wss://localhost:%d/ws?token=%s' % (g.port, make_token(unique_user()))
            async with websockets.connect(url, ssl=_ssl_context(cert)) as ws:
                welcome = json.loads(await ws.recv())
                assert welcome['type'] == 'connection_established', welcome
                await ws.send(json.dumps({'type': 'ping', 'id': 'tls'}))
                pong = json.loads(await ws.recv())
                assert pong == {**pong, 'type': 'pong', 'id': 'tls'}, pong
        asyncio.run(asyncio.wait_for(run(), 15))


def test_tls_handshake_with_openssl_s_client():
    cert, key = _cert()
    with Gateway(_tls_sections(cert, key)) as g:
        p = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % g.port,
                            '-alpn', 'http/1.1', '-CAfile', cert, '-verify_return_error', '-ign_eof',
                            '-servername', 'localhost'],
                           input=b'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n',
                           capture_output=True, timeout=15)
        out = p.stdout.decode(errors='replace')
        assert 'ALPN protocol: http/1.1' in out, out[-2000:]
        assert 'Verify return code: 0 (ok)' in out, out[-2000:]
        assert 'HTTP/1.1 404' in out, out[-2000:]      # plain HTTP answers over TLS too
        # TLS 1.1 is below the minimum.
        old = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % g.port,
                              '-tls1_1'], input=b'', capture_output=True, timeout=15)
        assert old.returncode != 0 or b'Cipher is (NONE)' in old.stdout, old.stdout[-1500:]
        assert_healthy_tls(g, cert)


def assert_healthy_tls(g, cert):
    async def run():
        url = 'wss://localhost:%d/ws?token=%s' % (g.port, make_token(unique_user()))
        async with websockets.connect(url, ssl=_ssl_context(cert)) as ws:
            await ws.recv()
            await ws.send(json.dumps({'type': 'ping', 'id': 'h'}))
            assert json.loads(await ws.recv())['type'] == 'pong'
    asyncio.run(asyncio.wait_for(run(), 15))


def test_tls_plus_plain_listener():
    cert, key = _cert()
    with Gateway({'tls': {'cert': cert, 'key': key},
                  'server': {'plain_listen': '127.0.0.1:0'}}) as g:
        wait_until(lambda: len(g.logs('server_listening')) == 2, what='two listeners')
        records = g.logs('server_listening')
        plain = [r for r in records if r.get('tls') is False]
        assert plain, records
        ws = ws_handshake(plain[0]['port'], make_token(unique_user()))
        ws.ping_roundtrip('plain')
        ws.close_cleanly()
        # The TLS port does not speak plain HTTP.
        s = connect(g.port)
        s.sendall(upgrade_request('/ws', make_token(unique_user())))
        s.settimeout(3)
        try:
            data = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            data = b''
        s.close()
        assert not data.startswith(b'HTTP/1.1 101'), data
        assert_healthy_tls(g, cert)


def test_tls_bad_key_refused_at_startup():
    cert, _ = _cert()
    _, other_key = _cert()
    from harness import start_expect_exit
    g = start_expect_exit({'tls': {'cert': cert, 'key': other_key}}, timeout=10)
    assert g.returncode == 1, g.returncode
    assert g.logs('tls_setup_failed'), g.stderr_text()


# ------------------------------------------------------------ asymmetric JWT

def _rsa_keys():
    d = _tmpdir()
    priv, pub = os.path.join(d, 'rsa.pem'), os.path.join(d, 'rsa.pub')
    _openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', priv)
    _openssl('pkey', '-in', priv, '-pubout', '-out', pub)
    return priv, pub


def _ec_keys(curve):
    d = _tmpdir()
    priv, pub = os.path.join(d, 'ec.pem'), os.path.join(d, 'ec.pub')
    _openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:' + curve,
             '-out', priv)
    _openssl('pkey', '-in', priv, '-pubout', '-out', pub)
    return priv, pub


def _der_ecdsa_to_raw(der, size):
    """ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) -> R || S (JWS)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b''
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b'\0')
        out += v.rjust(size, b'\0')
        i += 2 + n
    return out


def _sign_asym(alg, priv, user, extra=None):
    now = int(time.time())
    body = {'id': user, 'sub': user, 'iat': now, 'exp': now + 600}
    body.update(extra or {})
    signing_input = (b64url(json.dumps({'alg': alg, 'typ': 'JWT'})) + '.' +
                     b64url(json.dumps(body))).encode()
    digest = {'256': '-sha256', '384': '-sha384', '512': '-sha512'}[alg[2:]]
    sig = _openssl('dgst', digest, '-sign', priv, input=signing_input).stdout
    if alg.startswith('ES'):
        sig = _der_ecdsa_to_raw(sig, {'ES256': 32, 'ES384': 48}[alg])
    return signing_input.decode() + '.' + b64url(sig)


def _status(g, token):
    status, _, body = http_request(g.port, upgrade_request('/ws', token))
    return status, body


def test_rs256_public_key():
    priv, pub = _rsa_keys()
    with Gateway({'auth': {'algorithms': 'RS256', 'public_key_file': pub}}) as g:
        user = unique_user('rsa')
        ws = ws_handshake(g.port, _sign_asym('RS256', priv, user))
        ws.ping_roundtrip('rs256')
        ws.close_cleanly()
        other_priv, _ = _rsa_keys()
        assert _status(g, _sign_asym('RS256', other_priv, user)) == \
            (401, b'Unauthorized: Invalid token')
        # An HS256 token signed with the public key as the HMAC secret: the
        # classic key-confusion attack. HS256 is not configured: refused.
        with open(pub, 'rb') as f:
            confused = make_token(user, secret=f.read(), alg='HS256')
        assert _status(g, confused) == (401, b'Unauthorized: Invalid token')
        g.wait_log('websocket_auth_failed', pred=lambda r: r.get('reason') == 'alg_not_allowed')


def test_key_confusion_with_both_families_configured():
    priv, pub = _rsa_keys()
    with Gateway({'auth': {'algorithms': 'HS256 RS256', 'public_key_file': pub}}) as g:
        with open(pub, 'rb') as f:
            confused = make_token(unique_user(), secret=f.read(), alg='HS256')
        assert _status(g, confused) == (401, b'Unauthorized: Invalid token')
        g.wait_log('websocket_auth_failed', pred=lambda r: r.get('reason') == 'bad_signature')
        # Both real families still work.
        for token in (make_token(unique_user()), _sign_asym('RS256', priv, unique_user())):
            ws = ws_handshake(g.port, token)
            ws.close_cleanly()


def test_es256_and_es384():
    for alg, curve in (('ES256', 'P-256'), ('ES384', 'P-384')):
        priv, pub = _ec_keys(curve)
        with Gateway({'auth': {'algorithms': alg, 'public_key_file': pub}}) as g:
            ws = ws_handshake(g.port, _sign_asym(alg, priv, unique_user('ec')))
            ws.ping_roundtrip(alg)
            ws.close_cleanly()
            assert _status(g, make_token(unique_user())) == (401, b'Unauthorized: Invalid token')


def test_rs_algorithm_without_public_key_is_a_config_error():
    from harness import check_config
    rc, out, err = check_config({'auth': {'algorithms': 'RS256'}})
    assert rc == 1 and 'public_key_file' in err, (rc, err)


def test_jwt_secret_file():
    d = _tmpdir()
    path = os.path.join(d, 'secret')
    with open(path, 'w') as f:
        f.write('from-a-file\n')
    with Gateway({'auth': {'jwt_secret': None, 'jwt_secret_file': path}}) as g:
        ws = ws_handshake(g.port, make_token(unique_user(), secret='from-a-file'))
        ws.close_cleanly()
        assert _status(g, make_token(unique_user(), secret=SECRET)) == \
            (401, b'Unauthorized: Invalid token')


def test_issuer_and_audience():
    with Gateway({'auth': {'issuer': 'https://issuer.example', 'audience': 'mcpgw'}}) as g:
        ok = make_token(unique_user(), extra={'iss': 'https://issuer.example',
                                              'aud': ['other', 'mcpgw']})
        ws_handshake(g.port, ok).close_cleanly()
        for extra, reason in (({'iss': 'https://evil.example', 'aud': 'mcpgw'}, 'bad_issuer'),
                              ({'aud': 'mcpgw'}, 'bad_issuer'),
                              ({'iss': 'https://issuer.example', 'aud': 'other'}, 'bad_audience'),
                              ({'iss': 'https://issuer.example'}, 'bad_audience')):
            assert _status(g, make_token(unique_user(), extra=extra)) == \
                (401, b'Unauthorized: Invalid token'), extra
            g.wait_log('websocket_auth_failed', pred=lambda r, want=reason: r.get('reason') == want)


# ------------------------------------------------------------ origin

def test_origin_allow_list():
    with Gateway({'server': {'allowed_origins': 'https://app.example, https://admin.example'}}) as g:
        ws = ws_handshake(g.port, make_token(unique_user()),
                          headers={'Origin': 'https://app.example'})
        ws.close_cleanly()
        status, _, body = http_request(g.port, upgrade_request(
            '/ws', make_token(unique_user()), headers={'Origin': 'https://evil.example'}))
        assert (status, body) == (403, b'Forbidden: Origin not allowed'), (status, body)
        # Non-browser clients send no Origin: allowed by default.
        ws_handshake(g.port, make_token(unique_user())).close_cleanly()
        assert_healthy(g)


def test_origin_required():
    with Gateway({'server': {'allowed_origins': 'https://app.example',
                             'require_origin': 'true'}}) as g:
        status, _, _ = http_request(g.port, upgrade_request('/ws', make_token(unique_user())))
        assert status == 403, status


# ------------------------------------------------------------ limits

def test_global_max_connections():
    with Gateway({'server': {'max_connections': 2}}) as g:
        a = client(g)
        b = client(g)
        status, _, body = http_request(g.port, upgrade_request('/ws', make_token(unique_user())))
        assert status == 503, (status, body)
        g.wait_log('websocket_handshake_rejected', pred=lambda r: r.get('reason') == 'server_full')
        a.ping_roundtrip('still-served')
        mark = g.mark()
        a.close_cleanly()
        # The slot is free once the gateway has counted the close.
        g.wait_log('websocket_disconnection', since=mark, timeout=10)
        c = client(g)
        c.ping_roundtrip('after-release')
        c.close_cleanly()
        b.close_cleanly()


def test_handshake_timeout_slowloris():
    with Gateway({'server': {'handshake_timeout_ms': 300}}) as g:
        slow = [connect(g.port) for _ in range(5)]
        for s in slow:
            s.sendall(b'GET /ws HTTP/1.1\r\nHost: x\r\n')      # never finishes
        start = time.monotonic()
        for s in slow:
            s.settimeout(5)
            assert s.recv(100) == b'', 'slow client not closed'
            s.close()
        elapsed = time.monotonic() - start
        assert elapsed < 3, elapsed
        wait_until(lambda: len([r for r in g.logs('http_request_rejected')
                                if r.get('reason') == 'handshake_timeout']) == 5,
                   what='5 handshake_timeout log events')
        # An upgraded connection is not subject to it.
        ws = client(g)
        time.sleep(0.6)
        ws.ping_roundtrip('after-timeout')
        ws.close_cleanly()


def _sanitized():
    from harness import sanitized_build
    return sanitized_build()


def _rss_kib(g):
    """Resident memory of the whole gateway (supervisor and workers), in
    KiB: the sum of their Pss, so that shared memory (the limits table, the
    bus rings) counts once."""
    total = 0
    for pid in g.pids():
        try:
            with open('/proc/%d/smaps_rollup' % pid) as f:
                for line in f:
                    if line.startswith('Pss:'):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def test_slow_consumer_is_closed_and_memory_stays_bounded():
    """Five clients that never read are closed as slow consumers once their
    backlog passes max_outbound_bytes; the readers that keep up get every
    broadcast, and the gateway's memory stays bounded by the cap. The
    traffic is sized from the cap and the kernel's socket buffers (which
    absorb a backlog before the gateway queues anything), and the test
    waits on the closes themselves, not on a fixed time."""
    cap = 256 * 1024
    n_slow = 5
    with Gateway({'server': {'max_outbound_bytes': cap}, 'log': {'level': 'info'}}) as g:
        slow = [slow_reader_socket(g.port) for _ in range(n_slow)]
        fast = client(g)
        sender = client(g)
        sender.ping_roundtrip('ready')
        rss_before = _rss_kib(g)
        status = 'x' * 60000
        size = len(status) + 100
        # Past the kernel's buffers and the cap for every slow reader.
        needed = (cap + max(kernel_backlog_bound(s) for s in slow)) // size + 2
        limit = 2 * needed
        sent = received = 0

        def closed():
            return len(g.logs('websocket_slow_consumer'))

        while sent < limit and (sent < needed or closed() < n_slow):
            sender.send_json({'type': 'agent_status', 'id': sent, 'agentId': 'a',
                              'status': status})
            sent += 1
            # The fast reader drains as it goes; so does the sender (it gets
            # the update too, then its ack).
            while True:
                m = fast.recv_json(timeout=20)
                if m['type'] == 'agent_status_update':
                    assert m['status'] == status
                    received += 1
                    break
            while sender.recv_json(timeout=20)['type'] != 'agent_status_ack':
                pass
        assert received == sent, (received, sent)
        wait_until(lambda: closed() >= n_slow, timeout=30,
                   what='%d slow consumers closed after %d broadcasts' % (n_slow, sent))
        rss_after = _rss_kib(g)
        # Without the cap, every slow reader would hold all it was sent
        # beyond the kernel's buffers (several MB each).
        # (A sanitizer build keeps freed memory in quarantine: skip there.)
        # Each further worker may fill its bus ring (8 MiB) on the way.
        if not _sanitized():
            assert rss_after - rss_before < 8 * 1024 * g.n_workers(), (rss_before, rss_after)
        assert closed() == n_slow, g.logs('websocket_slow_consumer')
        for s in slow:
            s.close()
        fast.close_cleanly()
        sender.close_cleanly()
        assert_healthy(g)


def test_inbound_rate_limit():
    with Gateway({'server': {'rate_limit_per_s': 5, 'rate_limit_burst': 5,
                             'rate_limit_max_violations': 3}}) as g:
        ws = client(g)
        for i in range(12):
            ws.send_json({'type': 'ping', 'id': i})
        replies = []
        code = None
        from harness import ConnectionEOF, OP_CLOSE, parse_close
        try:
            while True:
                f = ws.recv_frame(timeout=5)
                if f.opcode == OP_CLOSE:
                    code = parse_close(f.payload)[0]
                    break
                replies.append(json.loads(f.payload))
        except ConnectionEOF:
            pass
        pongs = [r for r in replies if r['type'] == 'pong']
        errors = [r for r in replies if r['type'] == 'error']
        assert len(pongs) == 5, replies
        assert len(errors) == 3 and all(e['message'] == 'Rate limit exceeded' for e in errors), \
            replies
        assert code == 1008, code
        ws.close()
        assert_healthy(g)       # a fresh connection has its own bucket


def test_inbound_rate_limit_refills_up_to_the_burst():
    # the bucket refills at rate_limit_per_s and holds at most the burst:
    # after 1 s at 5/s it has 2 tokens again, not 5
    with Gateway({'server': {'rate_limit_per_s': 5, 'rate_limit_burst': 2,
                             'rate_limit_max_violations': 100}}) as g:
        ws = client(g)

        def burst(first):
            for i in range(first, first + 4):
                ws.send_json({'type': 'ping', 'id': i})
            got = [ws.recv_json() for _ in range(4)]
            return [r['type'] for r in got]

        assert burst(0) == ['pong', 'pong', 'error', 'error']
        time.sleep(1.0)
        assert burst(10) == ['pong', 'pong', 'error', 'error']
        ws.close_cleanly()


def test_rate_limit_off_by_default():
    with Gateway() as g:
        ws = client(g)
        for i in range(300):
            ws.send_json({'type': 'ping', 'id': i})
        for i in range(300):
            assert ws.recv_json()['id'] == i
        ws.close_cleanly()


def teardown_module():
    for d in _TMP:
        shutil.rmtree(d, ignore_errors=True)


def _count_frames(buf):
    """Complete frames at the start of buf: (frames, rest)."""
    n, i = 0, 0
    while len(buf) - i >= 2:
        plen = buf[i + 1] & 0x7f
        hdr = 2
        if plen == 126:
            if len(buf) - i < 4:
                break
            plen, hdr = int.from_bytes(buf[i + 2:i + 4], 'big'), 4
        elif plen == 127:
            if len(buf) - i < 10:
                break
            plen, hdr = int.from_bytes(buf[i + 2:i + 10], 'big'), 10
        if len(buf) - i < hdr + plen:
            break
        n += 1
        i += hdr + plen
    return n, buf[i:]


def test_broadcast_to_1000_clients_with_readers_that_never_read():
    """1,000 clients: 950 read everything, 50 never read. Broadcasts keep
    flowing; the 50 are closed as slow consumers, the 950 get every message,
    and the gateway's memory stays bounded by the outbound cap. (The readers
    negotiate compression, so their copies are small; the 50 get 100 KB
    frames and fall behind past any kernel buffer.)"""
    import resource
    import selectors
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    n_fast, n_slow, rounds, per_round = 950, 50, 5, 10
    status = 's' * 100000
    with Gateway({'server': {'max_outbound_bytes': 262144, 'max_connections': 2000},
                  'log': {'level': 'info'}}) as g:
        fast = [client(g, headers={'Sec-WebSocket-Extensions': 'permessage-deflate'})
                for _ in range(n_fast)]
        slow = [slow_reader_socket(g.port) for _ in range(n_slow)]
        # Enough rounds to take every never-reader past the kernel's buffers
        # and the cap, whatever this machine's TCP buffer settings are.
        needed = (262144 + max(kernel_backlog_bound(s) for s in slow)) // len(status) + 2
        rounds = max(rounds, -(-needed // per_round))
        sender = client(g)
        time.sleep(0.3)
        rss0 = _rss_kib(g)
        sel = selectors.DefaultSelector()
        for i, ws in enumerate(fast):
            ws.sock.setblocking(False)
            sel.register(ws.sock, selectors.EVENT_READ, i)
        got = [0] * n_fast
        pending = [ws.buf for ws in fast]
        for r in range(rounds):
            for k in range(per_round):
                sender.send_json({'type': 'agent_status', 'id': r * per_round + k,
                                  'agentId': 'fan', 'status': status})
            want = (r + 1) * per_round
            deadline = time.monotonic() + 30
            while min(got) < want and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1):
                    i = key.data
                    try:
                        data = key.fileobj.recv(1 << 16)
                    except BlockingIOError:
                        continue
                    assert data, 'fast reader %d was closed' % i
                    n, pending[i] = _count_frames(pending[i] + data)
                    got[i] += n
            while True:     # the sender drains its own copies and acks
                m = sender.recv_json(timeout=10)
                if m['type'] == 'agent_status_ack' and m['id'] == want - 1:
                    break
        assert min(got) == max(got) == rounds * per_round, (min(got), max(got))
        wait_until(lambda: len(g.logs('websocket_slow_consumer')) == n_slow, timeout=30,
                   what='every never-reading client closed as a slow consumer')
        rss1 = _rss_kib(g)
        print('  1,000 clients: RSS %d KiB -> %d KiB during %d broadcasts of 100 KB'
              % (rss0, rss1, rounds * per_round))
        if not _sanitized():
            # Without the cap, 50 x 80 x 100 KB = 400 MB would be queued.
            assert rss1 - rss0 < 64 * 1024, (rss0, rss1)
        for s in slow:
            s.close()
        sel.close()
        for ws in fast:
            ws.sock.setblocking(True)
            ws.close()
        sender.close_cleanly()
        assert_healthy(g)
