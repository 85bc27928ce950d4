#!/usr/bin/env node
/*
 * tests/browser/driver.js - drives Debian's chromium (/usr/bin/chromium,
 * headless) with playwright-core, one command per line of JSON on stdin, one
 * JSON answer per line on stdout. Used by tests/browser/browser.py (the
 * integration test tests/integration/test_status_page.py and
 * scripts/screenshot-status).
 *
 * Commands ({"cmd": NAME, ...}):
 *   goto {url}                 -> {ok, url, status, headers}
 *   fill {selector, value}     -> {ok}
 *   click {selector}           -> {ok}
 *   wait {expr, timeout}       -> {ok, value}  (waits until the JS expression is truthy)
 *   eval {expr}                -> {ok, value}
 *   screenshot {path, fullPage, selector} -> {ok}
 *   info                       -> {ok, url, requests, websockets, console, errors}
 *   reset                      -> {ok}  (about:blank, and forgets what info lists)
 *   close                      -> {ok}
 * Errors answer {ok: false, error}. The first line printed is {ready: true,
 * version} once the browser runs, or {ready: false, error}.
 *
 * Environment: MCPGW_CHROMIUM (default /usr/bin/chromium), NODE_PATH or the
 * working directory must reach playwright-core.
 */
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

async function main() {
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    out({ ready: false, error: 'cannot load playwright-core: ' + e.message });
    process.exit(3);
  }
  const exe = process.env.MCPGW_CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(exe)) {
    out({ ready: false, error: 'chromium not found at ' + exe + ' (apt-get install chromium)' });
    process.exit(3);
  }
  const width = parseInt(process.env.MCPGW_BROWSER_WIDTH || '1280', 10);
  const height = parseInt(process.env.MCPGW_BROWSER_HEIGHT || '860', 10);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgw-chromium-'));
  let context;
  try {
    // launchPersistentContext is playwright's way to pass a fresh
    // --user-data-dir (it refuses that flag in args).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: exe,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--disable-dev-shm-usage'],
      viewport: { width, height },
      deviceScaleFactor: 1,
      timeout: 30000,
    });
  } catch (e) {
    fs.rmSync(profile, { recursive: true, force: true });
    out({ ready: false, error: 'cannot launch ' + exe + ': ' + e.message.split('\n')[0] });
    process.exit(3);
  }
  const page = context.pages()[0] || await context.newPage();
  const requests = [], websockets = [], consoleLines = [], errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('websocket', (w) => websockets.push(w.url()));
  page.on('console', (m) => consoleLines.push(m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => errors.push(String(e && e.message || e)));

  async function shutdown(code) {
    try { await context.close(); } catch (e) { /* already gone */ }
    fs.rmSync(profile, { recursive: true, force: true });
    process.exit(code);
  }

  const handlers = {
    async goto(c) {
      const resp = await page.goto(c.url, { waitUntil: 'load', timeout: c.timeout || 15000 });
      return { url: page.url(), status: resp ? resp.status() : null,
               headers: resp ? await resp.allHeaders() : {} };
    },
    async fill(c) { await page.fill(c.selector, c.value, { timeout: c.timeout || 5000 }); return {}; },
    async click(c) { await page.click(c.selector, { timeout: c.timeout || 5000 }); return {}; },
    async wait(c) {
      // Polls page.evaluate (CDP evaluation, which the page's CSP allows)
      // rather than waitForFunction (which needs 'unsafe-eval').
      const deadline = Date.now() + (c.timeout || 10000);
      let last;
      for (;;) {
        try { last = await page.evaluate(c.expr); } catch (e) { last = 'error: ' + e.message; }
        if (last && !(typeof last === 'string' && last.startsWith('error: '))) return { value: last };
        if (Date.now() > deadline)
          throw new Error('timed out; last value ' + JSON.stringify(last));
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async eval(c) { return { value: await page.evaluate(c.expr) }; },
    async screenshot(c) {
      if (c.selector) await page.locator(c.selector).screenshot({ path: c.path });
      else await page.screenshot({ path: c.path, fullPage: !!c.fullPage });
      return {};
    },
    async reset() {
      for (const a of [requests, websockets, consoleLines, errors]) a.length = 0;
      await page.goto('about:blank');
      return {};
    },
    async info() {
      return { url: page.url(), requests, websockets, console: consoleLines, errors };
    },
  };

  out({ ready: true, version: context.browser() ? context.browser().version() : null });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let c;
    try { c = JSON.parse(line); } catch (e) { out({ ok: false, error: 'bad command: ' + e.message }); continue; }
    if (c.cmd === 'close') { out({ ok: true }); await shutdown(0); }
    const h = handlers[c.cmd];
    if (!h) { out({ ok: false, error: 'unknown command ' + c.cmd }); continue; }
    try {
      out(Object.assign({ ok: true }, await h(c)));
    } catch (e) {
      out({ ok: false, error: String(e && e.message || e).split('\n').slice(0, 6).join('\n') });
    }
  }
  await shutdown(0);   // stdin closed
}

main().catch((e) => { out({ ready: false, error: String(e && e.stack || e) }); process.exit(3); });
