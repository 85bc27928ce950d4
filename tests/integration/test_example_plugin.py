"""The README's plugin guide, end to end: install mcpgw into a temporary
DESTDIR, build examples/echo-plugin out of tree against the installed headers
with pkg-config mcpgw, build and run its unit test against the installed mock
gateway (pkg-config mcpgw-mock), install it into the installed plugin dir, and
have the installed gateway load it from a [handler.echo] section."""
import glob
import os
import shutil
import subprocess
import tempfile

import harness
from harness import BUILDDIR, SRCDIR, Gateway, make_token, unique_user, ws_handshake


def _install_tree():
    tmp = tempfile.mkdtemp(prefix='mcpgw-install-')
    dest = os.path.join(tmp, 'dest')
    subprocess.run(['make', '-C', BUILDDIR, '-s', 'install', 'DESTDIR=' + dest],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pcs = glob.glob(os.path.join(dest, '**', 'pkgconfig', 'mcpgw.pc'), recursive=True)
    assert len(pcs) == 1, pcs
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]),
               PKG_CONFIG_SYSROOT_DIR=dest)
    return tmp, dest, env


def test_example_plugin_builds_out_of_tree_and_loads():
    tmp, dest, env = _install_tree()
    try:
        # The headers come from the install, not from the source tree.
        cflags = subprocess.run(['pkg-config', '--cflags', 'mcpgw'], env=env, check=True,
                                capture_output=True, text=True).stdout
        assert dest in cflags, cflags
        assert os.path.isfile(os.path.join(cflags.split('-I', 1)[1].split()[0],
                                           'mcpgw', 'plugin.h')), cflags
        plugindir = subprocess.run(['pkg-config', '--variable=plugindir', 'mcpgw'], env=env,
                                   check=True, capture_output=True, text=True).stdout.strip()
        # pkgconf puts the sysroot in front of path variables; pkg-config does not.
        if plugindir.startswith(dest):
            plugindir = plugindir[len(dest):]
        installed_plugins = dest + plugindir
        for name in ('ping', 'batch', 'agent_status'):
            assert os.path.isfile(os.path.join(installed_plugins, name + '.so')), name

        src = os.path.join(tmp, 'echo-plugin')
        shutil.copytree(os.path.join(SRCDIR, 'examples', 'echo-plugin'), src)
        flags = ['CFLAGS=-O2 -Wall -Wextra -Werror']
        if harness.sanitized_build():
            # the installed libraries are instrumented: the test program
            # must bring the sanitizer runtimes first, as the build's do
            flags = ['CFLAGS=-O2 -Wall -Wextra -Werror -fsanitize=address,undefined',
                     'LDFLAGS=-fsanitize=address,undefined']
        subprocess.run(['make', '-s', '-C', src] + flags,
                       env=env, check=True, capture_output=True)
        # Its unit test, against the installed mock host only.
        for path in ('mcpgw/mock_host.h',):
            assert os.path.isfile(os.path.join(cflags.split('-I', 1)[1].split()[0], path))
        check = subprocess.run(['make', '-s', '-C', src, 'check'] + flags,
                               env=env, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert 'test_echo: ok' in check.stdout, check.stdout + check.stderr
        mock_l = subprocess.run(['pkg-config', '--libs-only-L', 'mcpgw-mock'], env=env,
                                check=True, capture_output=True, text=True).stdout
        assert dest in mock_l, mock_l      # the installed library, not the build tree's
        subprocess.run(['make', '-s', '-C', src, 'install', 'DESTDIR=' + dest,
                        'PLUGINDIR=' + plugindir], env=env, check=True, capture_output=True)
        assert os.path.isfile(os.path.join(installed_plugins, 'echo.so'))

        sbin = glob.glob(os.path.join(dest, '**', 'sbin', 'mcpgw'), recursive=True)
        assert len(sbin) == 1, sbin
        saved = harness.MCPGW
        harness.MCPGW = sbin[0]
        try:
            with Gateway({'plugins': {'dir': installed_plugins},
                          'handler.echo': {'plugin': 'echo', 'prefix': 'echo:'}}) as g:
                loaded = [r for r in g.logs('plugin_loaded') if r.get('type') == 'echo']
                assert loaded and loaded[0].get('plugin') == 'echo', g.logs('plugin_loaded')
                user = unique_user('echo')
                ws = ws_handshake(g.port, make_token(user))
                ws.send_json({'type': 'echo', 'id': 7, 'payload': 'hi'})
                reply = ws.recv_json()
                assert reply['type'] == 'echo_reply', reply
                assert reply['id'] == 7 and reply['payload'] == 'echo:hi', reply
                assert reply['user'] == user, reply
                ws.send_json({'type': 'ping', 'id': 'p'})
                assert ws.recv_json()['type'] == 'pong'
                ws.close_cleanly()
        finally:
            harness.MCPGW = saved

        # The example's test can fail: an echo that forgets the prefix.
        with open(os.path.join(src, 'echo.c')) as f:
            code = f.read()
        with open(os.path.join(src, 'echo.c'), 'w') as f:
            f.write(code.replace('"%s%s", e->prefix,', '"%.0s%s", e->prefix,'))
        broken = subprocess.run(['make', '-s', '-C', src, 'check'], env=env,
                                capture_output=True, text=True)
        assert broken.returncode != 0, broken.stdout
        assert 'test_echo: FAILED' in broken.stdout, broken.stdout + broken.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
