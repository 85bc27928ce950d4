"""WebSocket framing (RFC 6455 section 5) with a raw client: protocol
violations must end in the right close code, valid edge cases must work."""
import json
import struct
import time

from harness import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, assert_healthy,
                     build_frame, client, close_payload, shared_gateway)


def gw():
    return shared_gateway('default')


def small_gw():
    return shared_gateway('small', sections={'server': {'max_payload': 1024}})


def ping_json(id_='f', size=None):
    """A ping message, padded to exactly `size` bytes when given."""
    base = {'type': 'ping', 'id': id_, 'pad': ''}
    text = json.dumps(base, separators=(',', ':'))
    if size is not None:
        assert size >= len(text)
        base['pad'] = 'p' * (size - len(text))
        text = json.dumps(base, separators=(',', ':'))
        assert len(text) == size
    return text.encode()


def violation(data, codes, g=None):
    """Sends data on a new connection; expects close with one of codes,
    then TCP closed; then a new connection must still work."""
    g = g or gw()
    ws = client(g)
    try:
        try:
            ws.send_raw(data)
        except OSError:
            pass
        got = ws.expect_protocol_close(codes)
    finally:
        ws.close()
    assert_healthy(g)
    return got


def test_unmasked_frame_is_1002():
    mark = gw().mark()
    violation(build_frame(OP_TEXT, ping_json(), mask=False), 1002)
    r = gw().wait_log('websocket_protocol_error', lambda r: r.get('code') == 1002, since=mark)
    assert r.get('reason'), r


def test_rsv_bits_are_1002():
    for rsv in (4, 2, 1):
        violation(build_frame(OP_TEXT, ping_json(), rsv=rsv), 1002)


def test_unknown_opcodes_are_1002():
    for op in (0x3, 0xB, 0x7, 0xF):
        violation(build_frame(op, b'x'), 1002)


def test_fragmented_ping_is_1002():
    violation(build_frame(OP_PING, b'abc', fin=False), 1002)


def test_ping_with_126_bytes_is_1002():
    violation(build_frame(OP_PING, b'x' * 126), 1002)


def test_close_with_126_bytes_is_1002():
    violation(build_frame(OP_CLOSE, close_payload(1000, b'r' * 124)), 1002)


def test_continuation_without_start_is_1002():
    violation(build_frame(OP_CONT, b'{"type":"ping"}'), 1002)


def test_new_message_inside_fragmented_is_1002():
    violation(build_frame(OP_TEXT, b'{"type":', fin=False) +
              build_frame(OP_TEXT, b'"ping"}'), 1002)


def test_invalid_utf8_is_1007():
    for bad in (b'\xff', b'{"type":"ping","id":"\xc0\xaf"}', b'"\xed\xa0\x80"',
                b'"\xf4\x90\x80\x80"', b'{"type":"ping","id":"\xe2\x82'):
        violation(build_frame(OP_TEXT, bad), 1007)


def test_invalid_utf8_across_fragments_is_1007():
    violation(build_frame(OP_TEXT, b'{"type":"ping","id":"\xe2', fin=False) +
              build_frame(OP_CONT, b'\x28"}'), 1007)


def test_utf8_split_across_fragments_is_fine():
    ws = client(gw())
    try:
        ws.send_raw(build_frame(OP_TEXT, b'{"type":"ping","id":"\xe2\x82', fin=False))
        time.sleep(0.05)
        ws.send_raw(build_frame(OP_CONT, b'\xac"}'))
        r = ws.recv_json()
        assert r['type'] == 'pong' and r['id'] == '\u20ac', r
    finally:
        ws.close_cleanly()


def test_invalid_utf8_in_close_reason_is_1007():
    violation(build_frame(OP_CLOSE, close_payload(1000, b'bad \xff reason')), 1007)


def test_invalid_close_codes_are_1002():
    for code in (999, 1004, 1005, 1006, 1015, 5000, 0):
        violation(build_frame(OP_CLOSE, close_payload(code)), 1002)


def test_close_with_one_byte_is_1002():
    violation(build_frame(OP_CLOSE, b'\x03'), 1002)


def test_message_over_max_payload_is_1009():
    g = small_gw()
    violation(build_frame(OP_TEXT, ping_json('big', 2000)), 1009, g)


def test_fragmented_message_over_max_payload_is_1009():
    g = small_gw()
    body = ping_json('bigfrag', 1800)
    violation(build_frame(OP_TEXT, body[:600], fin=False) +
              build_frame(OP_CONT, body[600:1200], fin=False) +
              build_frame(OP_CONT, body[1200:]), 1009, g)


def test_message_at_max_payload_accepted():
    g = small_gw()
    ws = client(g)
    try:
        ws.send_raw(build_frame(OP_TEXT, ping_json('edge', 1024)))
        r = ws.recv_json()
        assert r['type'] == 'pong' and r['id'] == 'edge', r
    finally:
        ws.close_cleanly()


def test_huge_64bit_length_is_refused():
    # Only the header: a length with the most significant bit set.
    hdr = struct.pack('!BBQ', 0x81, 0x80 | 127, 1 << 63) + b'\0\0\0\0'
    violation(hdr, (1002, 1009))


def test_16bit_and_64bit_lengths():
    ws = client(gw())
    try:
        ws.send_raw(build_frame(OP_TEXT, ping_json('len16', 300)))
        assert ws.recv_json()['id'] == 'len16'
        ws.send_raw(build_frame(OP_TEXT, ping_json('len64', 70000)))
        assert ws.recv_json()['id'] == 'len64'
        # The largest payload of the 16-bit form.
        ws.send_raw(build_frame(OP_BINARY, ping_json('len16b', 65535)))
        assert ws.recv_json()['id'] == 'len16b'
    finally:
        ws.close_cleanly()


def test_ping_interleaved_in_fragmented_message():
    ws = client(gw())
    try:
        body = ping_json('frag')
        ws.send_raw(build_frame(OP_TEXT, body[:5], fin=False) +
                    build_frame(OP_PING, b'in-between') +
                    build_frame(OP_CONT, body[5:12], fin=False))
        f = ws.recv_frame()
        assert f.opcode == OP_PONG and f.payload == b'in-between' and f.fin, f
        ws.send_raw(build_frame(OP_CONT, body[12:]))
        r = ws.recv_json()
        assert r['type'] == 'pong' and r['id'] == 'frag', r
    finally:
        ws.close_cleanly()


def test_many_fragments():
    ws = client(gw())
    try:
        body = ping_json('many', 500)
        frames = [build_frame(OP_BINARY, body[:5], fin=False)]
        for i in range(5, len(body), 5):
            frames.append(build_frame(OP_CONT, body[i:i + 5], fin=i + 5 >= len(body)))
        ws.send_raw(b''.join(frames))
        assert ws.recv_json()['id'] == 'many'
    finally:
        ws.close_cleanly()


def test_empty_fragments():
    ws = client(gw())
    try:
        body = ping_json('empties')
        ws.send_raw(build_frame(OP_TEXT, b'', fin=False) +
                    build_frame(OP_CONT, body, fin=False) +
                    build_frame(OP_CONT, b''))
        assert ws.recv_json()['id'] == 'empties'
    finally:
        ws.close_cleanly()


def test_client_ping_gets_pong():
    ws = client(gw())
    try:
        for payload in (b'hello', b'', bytes(range(125))):
            ws.send_ping(payload)
            f = ws.recv_frame()
            assert f.opcode == OP_PONG and f.payload == payload and f.fin, f
    finally:
        ws.close_cleanly()


def test_unsolicited_pong_ignored():
    ws = client(gw())
    try:
        ws.send_pong(b'whatever')
        ws.ping_roundtrip('after-pong')
    finally:
        ws.close_cleanly()


def test_frame_sent_byte_by_byte():
    ws = client(gw())
    try:
        data = build_frame(OP_TEXT, ping_json('trickle', 200))
        for i in range(len(data)):
            ws.send_raw(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.002)
        assert ws.recv_json()['id'] == 'trickle'
    finally:
        ws.close_cleanly()


def test_client_close_1000_echoed():
    ws = client(gw())
    try:
        ws.send_close(1000, b'bye')
        code, _ = ws.expect_close()
        assert code == 1000, code
        ws.wait_eof(3)
    finally:
        ws.close()


def test_client_close_other_valid_codes():
    for code in (1001, 3000, 4999):
        ws = client(gw())
        try:
            ws.send_close(code)
            got, _ = ws.expect_close()
            assert got in (code, 1000), (code, got)
            ws.wait_eof(3)
        finally:
            ws.close()


def test_client_close_empty_echoed():
    ws = client(gw())
    try:
        ws.send_frame(OP_CLOSE, b'')
        got, _ = ws.expect_close()
        assert got in (None, 1000), got
        ws.wait_eof(3)
    finally:
        ws.close()


def test_disconnection_logged_with_code():
    ws = client(gw(), user='closer-user')
    mark = gw().mark()
    ws.send_close(4001)
    ws.expect_close()
    ws.wait_eof(3)
    ws.close()
    r = gw().wait_log('websocket_disconnection', lambda r: r.get('user') == 'closer-user',
                      since=mark)
    assert r.get('code') == 4001, r


def test_protocol_error_closes_without_client_reply():
    ws = client(gw())
    try:
        ws.send_raw(build_frame(OP_TEXT, ping_json(), mask=False))
        code, _ = ws.expect_close()
        assert code == 1002, code
        t0 = time.monotonic()
        ws.wait_eof(4)      # we never answer the close
        assert time.monotonic() - t0 < 3.5
    finally:
        ws.close()


def test_default_max_payload_is_1mib():
    ws = client(gw())
    try:
        ws.send_raw(build_frame(OP_TEXT, ping_json('mib', 1048576)))
        assert ws.recv_json(10)['id'] == 'mib'
    finally:
        ws.close_cleanly()
    violation(build_frame(OP_TEXT, ping_json('mib+1', 1048577)), 1009)


def test_eof_in_the_middle_of_a_frame():
    import socket
    mark = gw().mark()
    ws = client(gw(), user='midframe-user')
    data = build_frame(OP_TEXT, ping_json('cut', 500))
    ws.send_raw(data[:100])
    ws.sock.shutdown(socket.SHUT_WR)
    ws.wait_eof(5)
    ws.close()
    gw().wait_log('websocket_disconnection', lambda r: r.get('user') == 'midframe-user',
                  since=mark)
    assert_healthy(gw())
