#!/usr/bin/python3
"""
run.py - runs the mcpgw integration tests.

Imports every tests/integration/test_*.py (in name order) and runs each of
its functions named test_* in file order. Arguments filter tests by
substring of "module.test"; --list only lists them. Each test has a time limit (MCPGW_TEST_TIMEOUT
seconds, default 60). Prints "ok   module.test" or "FAIL module.test:
reason" with a traceback, and ends with "N passed, M failed"; exits 1 if
any failed.

Run with Debian's interpreter: /usr/bin/python3 tests/integration/run.py
"""
import glob
import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

TEST_TIMEOUT = float(os.environ.get('MCPGW_TEST_TIMEOUT', '60'))


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout('test exceeded %ss' % TEST_TIMEOUT)


def _tail(gw, since=0, n=25):
    lines = gw.lines[since:][-n:]
    return '\n'.join('      | ' + l[:400] for l in lines)


def collect(filters):
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, 'test_*.py'))):
        name = os.path.splitext(os.path.basename(path))[0]
        mod = importlib.import_module(name)
        fns = [f for n, f in vars(mod).items()
               if n.startswith('test_') and inspect.isfunction(f) and f.__module__ == name]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in fns:
            full = '%s.%s' % (name, f.__name__)
            if filters and not any(s in full for s in filters):
                continue
            tests.append((name, full, f))
    return tests


def main(argv):
    filters = [a for a in argv[1:] if a != '--list']
    if '--list' in argv[1:]:
        for _, full, _ in collect(filters):
            print(full)
        return 0
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if not os.path.exists(harness.MCPGW):
        print('FAIL setup: gateway binary not found at %s (set MCPGW_BUILDDIR)' % harness.MCPGW)
        print('0 passed, 1 failed')
        return 1
    try:
        tests = collect(filters)
    except Exception:
        traceback.print_exc()
        print('FAIL setup: cannot import the test modules')
        print('0 passed, 1 failed')
        return 1

    passed = failed = 0
    started = time.monotonic()
    current_module = None
    for module, full, fn in tests:
        if module != current_module:
            harness.close_shared()
            current_module = module
        harness.take_created()
        shared_marks = {id(g): len(g.lines) for g in harness._shared.values()}
        t0 = time.monotonic()
        error = None
        tb = ''
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
        try:
            fn()
        except BaseException as e:  # noqa: B902 - report everything, even timeouts
            if isinstance(e, KeyboardInterrupt):
                signal.setitimer(signal.ITIMER_REAL, 0)
                harness.close_unshared()
                harness.close_shared()
                raise
            error = e
            tb = traceback.format_exc()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        dead = harness.dead_shared_gateways()
        if error is None and dead:
            error = AssertionError('shared gateway died during the test: ' +
                                   ', '.join('%s (exit %r)' % (k, g.returncode) for k, g in dead))
        created = harness.take_created()
        harness.close_unshared()
        dt = time.monotonic() - t0
        if error is None:
            passed += 1
            print('ok   %s (%.2fs)' % (full, dt))
        else:
            failed += 1
            reason = str(error).strip().splitlines()
            reason = reason[0] if reason else type(error).__name__
            print('FAIL %s: %s: %s' % (full, type(error).__name__, reason[:300]))
            if tb:
                print('    ' + tb.rstrip().replace('\n', '\n    '))
            shown = [(g, 0) for g in created + [g for _, g in dead]]
            shown += [(g, shared_marks.get(id(g), 0)) for g in harness._shared.values()
                      if g not in created]
            for g, since in shown:
                if len(g.lines) > since:
                    print('    stderr of %s (last lines):' % g.name)
                    print(_tail(g, since))
        sys.stdout.flush()
    harness.close_shared()
    harness.close_unshared()
    harness.cleanup_temp_dirs()
    print('# %d tests in %.1fs' % (passed + failed, time.monotonic() - started))
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
