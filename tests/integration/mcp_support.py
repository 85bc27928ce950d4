"""
mcp_support.py - what the MCP endpoint tests need besides the harness: the
npm packages of tests/mcp (the official @modelcontextprotocol/sdk client,
@modelcontextprotocol/server-everything, ws) installed once into the build
tree, the SDK driver and the python3-websockets raw client run as
subprocesses, and the gateway configuration of an MCP endpoint.
"""
import json
import os
import shutil
import subprocess

from harness import BUILDDIR, SRCDIR

MCP_SRC = os.path.join(SRCDIR, 'tests', 'mcp')


class McpUnavailable(AssertionError):
    pass


def install_dir():
    return os.path.join(BUILDDIR, 'tests', 'mcp-run')


def ensure_packages(timeout=300):
    """scripts/install-mcp-packages: npm ci of tests/mcp into install_dir()
    (once per lock file), the driver copied beside its node_modules (ES
    modules resolve packages from their own directory)."""
    for tool in ('node', 'npm'):
        if not shutil.which(tool):
            raise McpUnavailable('%s is not installed: scripts/install-deps' % tool)
    cmd = [os.path.join(SRCDIR, 'scripts', 'install-mcp-packages'), BUILDDIR]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise McpUnavailable('%s took over %ss' % (' '.join(cmd), timeout))
    out = p.stdout.decode('utf-8', 'replace')
    if p.returncode != 0:
        raise McpUnavailable('%s failed (exit %d):\n%s' % (' '.join(cmd), p.returncode,
                                                            out[-2000:]))
    return install_dir()


def server_everything():
    return os.path.join(ensure_packages(), 'node_modules', '@modelcontextprotocol',
                        'server-everything', 'dist', 'index.js')


def endpoint(sessions='per-connection', path='/mcp/everything', env='FOO=bar', **extra):
    """The sections of an [endpoint.everything] fronting server-everything."""
    sec = {
        'path': path,
        'protocol': 'jsonrpc',
        'plugin': 'mcp_stdio',
        'command': '%s %s stdio' % (shutil.which('node'), server_everything()),
        'sessions': sessions,
    }
    if env is not None:
        sec['env'] = env
    sec.update(extra)
    return sec


def driver(url, token, *args, timeout=120):
    """Runs the SDK driver; returns (exit code, [result dicts], stderr)."""
    d = ensure_packages()
    cmd = ['node', os.path.join(d, 'driver.mjs'), url, '--token', token] + list(args)
    p = subprocess.run(cmd, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    results = []
    for line in p.stdout.decode('utf-8', 'replace').splitlines():
        line = line.strip()
        if line.startswith('{'):
            try:
                results.append(json.loads(line))
            except ValueError:
                pass
    return p.returncode, results, p.stderr.decode('utf-8', 'replace')


def raw_client(url, token, *args, timeout=60):
    cmd = ['/usr/bin/python3', os.path.join(MCP_SRC, 'raw_client.py'), url, '--token', token]
    cmd += list(args)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def descendants(pids):
    """Every live process whose ancestry includes one of pids (from /proc)."""
    parent = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        if fields[0] == 'Z':
            continue
        parent[int(name)] = int(fields[1])
    roots, out = set(pids), set()
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent.items():
            if pid not in out and (ppid in roots or ppid in out):
                out.add(pid)
                changed = True
    return out - roots
