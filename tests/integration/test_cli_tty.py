"""
test_cli_tty.py - mcpgw-cli on a terminal (issue 17): a prompt on stderr
when it waits for a line, none when stdin is a pipe.
"""
import os
import pty
import select
import subprocess
import time

from harness import BUILDDIR, Gateway, make_token, unique_user

CLI = os.path.join(BUILDDIR, 'tools', 'mcpgw-cli')


def _read_until(fd, needle, timeout=5):
    out, deadline = b'', time.monotonic() + timeout
    while needle not in out and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_interactive_cli_prompts_and_a_pipe_does_not():
    with Gateway() as g:
        url = 'ws://127.0.0.1:%d/ws' % g.port
        env = dict(os.environ, MCPGW_TOKEN=make_token(unique_user()))
        master, slave = pty.openpty()
        p = subprocess.Popen([CLI, url], stdin=slave, stdout=subprocess.PIPE, stderr=slave,
                             env=env, close_fds=True)
        os.close(slave)
        try:
            assert b'> ' in _read_until(master, b'> '), 'no prompt'
            os.write(master, b'{"type":"ping","id":"tty"}\n')
            line = p.stdout.readline()
            assert b'"tty"' in line, line
            assert b'> ' in _read_until(master, b'> '), 'no prompt after the reply'
            os.write(master, b'\x04')              # ^D: end of input
            assert p.wait(10) == 0
        finally:
            if p.poll() is None:
                p.kill()
            os.close(master)
        q = subprocess.run([CLI, '--count', '1', url], input=b'{"type":"ping","id":"pipe"}\n',
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=10)
        assert q.returncode == 0 and b'"pipe"' in q.stdout, q
        assert b'> ' not in q.stderr, q.stderr
