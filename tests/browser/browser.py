"""
browser.py - a real headless browser for the mcpgw tests: Debian's chromium
(/usr/bin/chromium) driven by playwright-core through tests/browser/driver.js.

playwright-core is installed from npm at first use into
$MCPGW_BUILDDIR/tests/.browser (the build tree, never the source tree;
`make clean` removes it). Nothing here skips: when chromium, node, npm or the
install is missing, BrowserUnavailable says what to install, and the caller
fails.

Standard library only; used by tests/integration/test_status_page.py and
scripts/screenshot-status.
"""
import json
import os
import queue
import shutil
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = os.environ.get('MCPGW_CHROMIUM', '/usr/bin/chromium')
DRIVER = os.path.join(HERE, 'driver.js')


class BrowserUnavailable(AssertionError):
    """The headless browser cannot run here; the message says why."""


def _builddir():
    src = os.path.abspath(os.path.join(HERE, '..', '..'))
    return os.path.abspath(os.environ.get('MCPGW_BUILDDIR') or src)


def install_dir():
    return os.path.join(_builddir(), 'tests', '.browser')


def _wanted_version():
    with open(os.path.join(HERE, 'package.json')) as f:
        return json.load(f)['dependencies']['playwright-core']


def ensure_playwright(timeout=240):
    """Installs playwright-core (the version pinned in package.json) into
    install_dir() unless it is there already; returns the directory."""
    if not os.path.exists(CHROMIUM):
        raise BrowserUnavailable('chromium is not installed at %s: apt-get install chromium '
                                 '(scripts/install-deps)' % CHROMIUM)
    for tool in ('node', 'npm'):
        if not shutil.which(tool):
            raise BrowserUnavailable('%s is not installed: apt-get install nodejs npm' % tool)
    d = install_dir()
    want = _wanted_version()
    pkg = os.path.join(d, 'node_modules', 'playwright-core', 'package.json')
    try:
        with open(pkg) as f:
            if json.load(f).get('version') == want:
                return d
    except (OSError, ValueError):
        pass
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, '.gitignore'), 'w') as f:
        f.write('# npm install of tests/browser/package.json (build tree only)\n*\n')
    for name in ('package.json', 'package-lock.json'):
        src = os.path.join(HERE, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(d, name))
    cmd = ['npm', 'ci' if os.path.exists(os.path.join(d, 'package-lock.json')) else 'install',
           '--no-audit', '--no-fund', '--loglevel=error']
    env = dict(os.environ)
    home = env.get('HOME')
    if not home or not os.access(home, os.W_OK):
        env['npm_config_cache'] = os.path.join(d, '.npm-cache')    # no usable ~/.npm
    try:
        p = subprocess.run(cmd, cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BrowserUnavailable('`%s` in %s took over %ss' % (' '.join(cmd), d, timeout))
    if p.returncode != 0 or not os.path.exists(pkg):
        raise BrowserUnavailable('`%s` in %s failed (exit %d), so playwright-core %s is not '
                                 'available:\n%s' % (' '.join(cmd), d, p.returncode, want,
                                                     p.stdout.decode('utf-8', 'replace')[-2000:]))
    return d


class Browser:
    """One headless chromium with one page. Every method returns the
    driver's answer (a dict) or raises AssertionError with its error."""

    def __init__(self, width=1280, height=860, launch_timeout=60):
        d = ensure_playwright()
        env = dict(os.environ)
        env['NODE_PATH'] = os.path.join(d, 'node_modules')
        env['MCPGW_CHROMIUM'] = CHROMIUM
        env['MCPGW_BROWSER_WIDTH'] = str(width)
        env['MCPGW_BROWSER_HEIGHT'] = str(height)
        self.proc = subprocess.Popen(['node', DRIVER], cwd=d, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stderr = []
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout, self._lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr.append),
                         daemon=True).start()
        first = self._answer(launch_timeout)
        if not first.get('ready'):
            self.close()
            raise BrowserUnavailable('headless chromium did not start: %s' % first.get('error'))
        self.version = first.get('version')

    @staticmethod
    def _read(stream, put):
        for raw in iter(stream.readline, b''):
            put(raw.decode('utf-8', 'replace').rstrip('\n'))
        put(None)

    def _answer(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('browser driver gave no answer within %ss; stderr: %s'
                                     % (timeout, '\n'.join(self.stderr[-20:])))
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError('browser driver exited (code %r); stderr: %s'
                                     % (self.proc.poll(), '\n'.join(self.stderr[-20:])))
            try:
                return json.loads(line)
            except ValueError:
                self.stderr.append('stdout: ' + line)    # stray output: keep it for errors

    def cmd(self, name, timeout=30, check=True, **args):
        args['cmd'] = name
        self.proc.stdin.write((json.dumps(args) + '\n').encode())
        self.proc.stdin.flush()
        a = self._answer(timeout)
        if check and not a.get('ok'):
            raise AssertionError('browser %s %r failed: %s' % (
                name, {k: v for k, v in args.items() if k != 'value'}, a.get('error')))
        return a

    def goto(self, url):
        return self.cmd('goto', url=url)

    def fill(self, selector, value):
        return self.cmd('fill', selector=selector, value=value)

    def click(self, selector):
        return self.cmd('click', selector=selector)

    def eval(self, expr):
        return self.cmd('eval', expr=expr)['value']

    def wait(self, expr, timeout=10, what=None):
        """Waits until the JS expression is truthy; returns its value."""
        args = {'cmd': 'wait', 'expr': expr, 'timeout': int(timeout * 1000)}
        self.proc.stdin.write((json.dumps(args) + '\n').encode())
        self.proc.stdin.flush()
        a = self._answer(timeout + 15)
        if not a.get('ok'):
            raise AssertionError('page: timed out after %ss waiting for %s (%s)'
                                 % (timeout, what or expr, (a.get('error') or '').splitlines()[0]))
        return a.get('value')

    def screenshot(self, path, full_page=False, selector=None):
        return self.cmd('screenshot', path=path, fullPage=full_page, selector=selector)

    def info(self):
        return self.cmd('info')

    def reset(self):
        return self.cmd('reset')

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"cmd":"close"}\n')
                self.proc.stdin.flush()
                self.proc.stdin.close()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
