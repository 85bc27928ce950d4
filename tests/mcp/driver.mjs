#!/usr/bin/env node
// MCP test driver for mcpgw's MCP endpoint, built on the OFFICIAL client
// (@modelcontextprotocol/sdk Client + WebSocketClientTransport, subprotocol
// "mcp"), with @modelcontextprotocol/server-everything as the server behind
// the gateway.
//
// Usage:
//   node driver.mjs URL [--token T] [--token-in query|header]
//                       [--scenario NAME ...] [--timeout S]
//                       [--concurrent N] [--expect-env-keys K1,K2] [--forbid-env KEY ...]
//   node driver.mjs URL --cycles N
//   node driver.mjs URL --bench SECONDS [--concurrency C] [--connections K] [--warmup S]
//   node driver.mjs URL --bench SECONDS --rate R [--warmup S]
//   node driver.mjs URL --bench SECONDS --phases c8,c1,r1000 [--warmup S]
//   node driver.mjs URL --hold N [--hold-seconds S]
//   node driver.mjs --stdio [...same options]  (spawns server-everything directly,
//                                               no gateway: proves the scenarios)
//   [--stdio-cpu LIST]   with --stdio: start the server under taskset -c LIST
//   [--cpu-pid NAME=PID ...]  bench/rate: report PID's CPU seconds (utime +
//                        stime from /proc) over the measured window as NAME
//   [--cpu-tree NAME=PID ...]  the same for PID's descendants, looked up when
//                        each phase starts (children spawned by the session)
//   [--transport ws|http]  http: Streamable HTTP (StreamableHTTPClientTransport)
//   [--http-fetch fetch|node]  http: POSTs through Node's fetch (the default)
//                        or node:http (cheaper; see nodeHttpPost)
//
// --bench: closed loop, C workers each with one tools/call echo in flight;
//   calls/s, latency p50/p99. --warmup S first runs S seconds unrecorded.
//   --connections K spreads the C workers over K sessions (default 1).
// --phases c8,c1,r1000 (with --bench): several measurements of SECONDS each
//   on the same sessions (and, with --stdio, the same server process), one
//   JSON line each; cN = closed loop at concurrency N, rR = open loop at R
//   calls/s. The --warmup runs the first phase unrecorded.
// --rate R (with --bench): open loop at R calls/s. A timer
//   wakes on the schedule (Node timers: ~1 ms granularity) and sends every
//   call that is due (call i is due at start + i/R), without waiting for
//   answers (at most 10,000 outstanding); latency is measured from the
//   actual send to the answer (lag_* says how late sends were against the
//   schedule: a generator that keeps up has lag well under the interval).
// --hold N: opens N initialised sessions (8 handshakes at a time), prints
//   {"mode":"hold","ready":true,...} and keeps them open, idle, until
//   SIGTERM/SIGINT or --hold-seconds (default 120) pass; then closes them.
// bench, rate and hold report the driver's own CPU seconds (client_cpu_s)
// and, in --stdio mode, the spawned server's (cpu_s.server).
//
// Output: one JSON line per scenario on stdout,
//   {"scenario":NAME,"ok":true|false,"ms":N,"detail":...}
// (cycles/bench print one JSON line with "mode"). A "N passed, N failed"
// summary goes to stderr. Exit status: 0 all ok, 1 a scenario failed,
// 2 usage error, 3 global watchdog fired.
//
// Scenarios (default: all, in this order): initialize tools-list echo sum
// progress structured resources prompts logging cancel env concurrent
// ("concurrent:N" sets N inline).
//
// Tool names are those of @modelcontextprotocol/server-everything 2026.8.31:
// echo, get-sum, trigger-long-running-operation, get-structured-content,
// get-env, toggle-simulated-logging (older releases used add,
// longRunningOperation, printEnv, ...).

import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import WS from 'ws';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const SERVER_EVERYTHING = fileURLToPath(new URL(
    './node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url));

const TOOLS = {
    echo: 'echo',
    sum: 'get-sum',
    longOp: 'trigger-long-running-operation',
    structured: 'get-structured-content',
    env: 'get-env',
    logging: 'toggle-simulated-logging',
};
const SIMPLE_PROMPT = 'simple-prompt';
const ALL_SCENARIOS = ['initialize', 'tools-list', 'echo', 'sum', 'progress', 'structured',
    'resources', 'prompts', 'logging', 'cancel', 'env', 'concurrent'];

// ---------------------------------------------------------------- arguments
function usage(msg) {
    if (msg) process.stderr.write(`driver: ${msg}\n`);
    process.stderr.write('usage: node driver.mjs (URL | --stdio) [--token T] [--token-in query|header]\n' +
        '  [--scenario NAME ...] [--timeout S] [--concurrent N] [--expect-env-keys K1,K2]\n' +
        '  [--forbid-env KEY ...] [--stdio-env K=V ...] [--cycles N]\n' +
        '  [--bench SECONDS [--concurrency C | --rate R | --phases cN,rR,...] [--connections K] [--warmup S]] [--hold N [--hold-seconds S]]\n' +
        '  [--stdio-cpu LIST] [--cpu-pid NAME=PID ...] [--cpu-tree NAME=PID ...] [--verbose]\n' +
        '  [--transport ws|http] [--http-fetch fetch|node]\n' +
        `  scenarios: ${ALL_SCENARIOS.join(' ')}\n`);
    process.exit(2);
}

let args;
try {
    args = parseArgs({
        allowPositionals: true,
        options: {
            token: { type: 'string' },
            'token-in': { type: 'string', default: 'query' },
            transport: { type: 'string', default: 'ws' },
            'http-fetch': { type: 'string', default: 'fetch' },
            scenario: { type: 'string', multiple: true },
            timeout: { type: 'string', default: '20' },
            concurrent: { type: 'string', default: '20' },
            'expect-env-keys': { type: 'string' },
            'forbid-env': { type: 'string', multiple: true },
            'stdio-env': { type: 'string', multiple: true },
            stdio: { type: 'boolean', default: false },
            cycles: { type: 'string' },
            bench: { type: 'string' },
            concurrency: { type: 'string', default: '8' },
            warmup: { type: 'string', default: '0' },
            connections: { type: 'string', default: '1' },
            rate: { type: 'string' },
            phases: { type: 'string' },
            hold: { type: 'string' },
            'hold-seconds': { type: 'string', default: '120' },
            'stdio-cpu': { type: 'string' },
            'cpu-pid': { type: 'string', multiple: true },
            'cpu-tree': { type: 'string', multiple: true },
            verbose: { type: 'boolean', default: false },
            help: { type: 'boolean', default: false },
        },
    });
} catch (e) {
    usage(e.message);
}
const opt = args.values;
if (opt.help) usage();
const url0 = args.positionals[0];
if (!opt.stdio && !url0) usage('URL or --stdio required');
if (opt.stdio && url0) usage('give either URL or --stdio, not both');
if (args.positionals.length > 1) usage(`unexpected argument ${args.positionals[1]}`);
if (!['query', 'header'].includes(opt['token-in'])) usage('--token-in must be query or header');
if (!['ws', 'http'].includes(opt.transport)) usage('--transport must be ws or http');
if (!['fetch', 'node'].includes(opt['http-fetch'])) usage('--http-fetch must be fetch or node');
const HTTP = opt.transport === 'http';
const posInt = (s, name) => {
    const n = Number(s);
    if (!Number.isFinite(n) || n <= 0) usage(`${name} must be a positive number`);
    return n;
};
const TIMEOUT_MS = posInt(opt.timeout, '--timeout') * 1000;
const verbose = opt.verbose;
const vlog = (...a) => { if (verbose) process.stderr.write(`[driver] ${a.join(' ')}\n`); };

// URL with ?token=... appended (the SDK transport cannot send headers).
let url = null;
const headers = {};
if (url0) {
    try {
        url = new URL(url0);
    } catch {
        usage(`bad URL ${url0}`);
    }
    if (opt.token) {
        if (opt['token-in'] === 'query') url.searchParams.set('token', opt.token);
        else headers.Authorization = `Bearer ${opt.token}`;
    }
}

// Node 20 has no global WebSocket: use npm ws. A subclass is also needed to
// send an Authorization header (--token-in header), which the SDK cannot do.
class DriverWebSocket extends WS {
    constructor(u, protocols, options) {
        super(u, protocols, { ...options, headers: { ...headers, ...(options?.headers ?? {}) } });
    }
}
if (typeof globalThis.WebSocket === 'undefined' || Object.keys(headers).length) {
    globalThis.WebSocket = DriverWebSocket;
}

// ---------------------------------------------------------------- helpers
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(promise, ms, what) {
    let t;
    return Promise.race([
        promise,
        new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: timeout after ${ms} ms`)), ms); }),
    ]).finally(() => clearTimeout(t));
}
const errMsg = (e) => (e && e.message) ? e.message : String(e);
const rand = () => Math.random().toString(36).slice(2, 10);
const textOf = (res) => (res?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');
function pct(sorted, p) {
    if (!sorted.length) return null;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return Math.round(sorted[i] * 1000) / 1000;
}

// Wraps the real transport to see every raw JSON-RPC message in both
// directions (ids, unsolicited notifications, late responses).
class TapTransport {
    constructor(inner, tap) {
        this.inner = inner;
        this.tap = tap;
        inner.onmessage = (m, extra) => { tap.push({ dir: 'in', t: performance.now(), m }); this.onmessage?.(m, extra); };
        inner.onclose = () => this.onclose?.();
        inner.onerror = (e) => this.onerror?.(e);
    }
    start() { return this.inner.start(); }
    send(m, o) { this.tap.push({ dir: 'out', t: performance.now(), m }); return this.inner.send(m, o); }
    close() { return this.inner.close(); }
    get sessionId() { return this.inner.sessionId; }
    setProtocolVersion(v) { this.inner.setProtocolVersion?.(v); }
}

class Conn {
    constructor() {
        this.tap = [];
        this.errors = [];
        this.closed = false;
        this.client = null;
        this.inner = null;
    }

    async open() {
        this.client = new Client({ name: 'mcpgw-mcp-driver', version: '1.0.0' }, { capabilities: {} });
        this.client.onerror = (e) => { this.errors.push({ t: performance.now(), msg: errMsg(e) }); vlog('client error:', errMsg(e)); };
        this.client.onclose = () => { this.closed = true; vlog('connection closed'); };
        this.client.fallbackNotificationHandler = async (n) => { vlog('notification', JSON.stringify(n).slice(0, 200)); };
        if (opt.stdio) {
            const env = {};
            for (const kv of opt['stdio-env'] ?? []) {
                const i = kv.indexOf('=');
                if (i <= 0) usage(`--stdio-env wants K=V, got ${kv}`);
                env[kv.slice(0, i)] = kv.slice(i + 1);
            }
            // StdioClientTransport merges getDefaultEnvironment() (HOME LOGNAME
            // PATH SHELL TERM USER) with env.
            // taskset execs the server: the child's pid is the server's.
            const cmd = opt['stdio-cpu']
                ? { command: 'taskset', args: ['-c', opt['stdio-cpu'], process.execPath, SERVER_EVERYTHING, 'stdio'] }
                : { command: process.execPath, args: [SERVER_EVERYTHING, 'stdio'] };
            this.inner = new StdioClientTransport({ ...cmd, env, stderr: 'pipe' });
            this.inner.stderr?.on('data', (d) => vlog('server stderr:', String(d).trim()));
        } else {
            this.inner = HTTP ? httpTransport() : new WebSocketClientTransport(url);
        }
        const transport = new TapTransport(this.inner, this.tap);
        try {
            await withTimeout(this.client.connect(transport, { timeout: TIMEOUT_MS }), TIMEOUT_MS, 'connect/initialize');
        } catch (e) {
            await this.close();
            throw e;
        }
        return this;
    }

    get subprotocol() { return HTTP ? 'mcp' : this.inner?._socket?.protocol; }
    get pid() { return this.inner?.pid; }

    async close() {
        // StdioClientTransport.close() waits up to 2 s + 2 s for the child.
        try { await withTimeout(this.client?.close() ?? Promise.resolve(), 6000, 'close'); } catch (e) { vlog('close:', errMsg(e)); }
        this.closed = true;
    }
}

// --transport http: Streamable HTTP on the same endpoint (ws:// becomes
// http://), the token always as an Authorization header.
function httpTransport() {
    const u = new URL(url0);
    u.protocol = u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:';
    const h = opt.token ? { Authorization: `Bearer ${opt.token}` } : {};
    const f = opt['http-fetch'] === 'node' ? nodeHttpPost : opt.bench !== undefined ? signalPerPost : undefined;
    return new StreamableHTTPClientTransport(u, { requestInit: { headers: h }, ...(f ? { fetch: f } : {}) });
}
// --bench: the SDK gives every fetch the transport's one AbortSignal. Node
// 20's fetch (undici) adds an abort listener to it per request, removed only
// once the request is garbage-collected, and resets the signal's listener
// limit (1,500) and its warned flag on every request: past 1,500 live
// listeners each call prints a MaxListenersExceededWarning, and the client,
// not the server, sets the pace (~4 ms of client CPU per call). Each POST
// gets its own signal, tied to the transport's while the fetch is pending.
function signalPerPost(u, init = {}) {
    const shared = init.signal;
    if (!shared || init.method !== 'POST') return fetch(u, init);
    const ac = new AbortController();
    const abort = () => ac.abort(shared.reason);
    shared.addEventListener('abort', abort, { once: true });
    return fetch(u, { ...init, signal: ac.signal }).finally(() => shared.removeEventListener('abort', abort));
}
// --http-fetch node: POSTs through node:http (a keep-alive agent), the
// answer read whole, then handed to the SDK as a Response (an SSE answer
// stream ends with its last answer); GETs (the long-lived stream) through
// fetch. Node 20's fetch costs ~1 ms of client CPU per request here, so with
// it the client, not the server, sets the pace of a closed loop.
const keepAlive = new http.Agent({ keepAlive: true });
function nodeHttpPost(u, init = {}) {
    if (init.method !== 'POST') return fetch(u, init);
    const sig = init.signal;
    let req;
    const abort = () => req.destroy(new Error('aborted'));
    return new Promise((resolve, reject) => {
        req = http.request(new URL(u), { method: 'POST', agent: keepAlive,
            headers: Object.fromEntries(new Headers(init.headers)) }, (res) => {
            const chunks = [];
            res.on('data', (d) => chunks.push(d));
            res.on('error', reject);
            res.on('end', () => {
                const body = Buffer.concat(chunks);
                const headers = new Headers();
                for (const [k, v] of Object.entries(res.headers)) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
                resolve(new Response(body.length && ![204, 304].includes(res.statusCode) ? body : null,
                    { status: res.statusCode, statusText: res.statusMessage, headers }));
            });
        });
        req.on('error', reject);
        sig?.addEventListener('abort', abort, { once: true });
        req.end(init.body);
    }).finally(() => sig?.removeEventListener('abort', abort));
}

let conn = null;
async function getConn() {
    if (conn && !conn.closed) return conn;
    if (conn) vlog('reconnecting');
    conn = await new Conn().open();
    return conn;
}
const call = async (name, a = {}, options = {}) =>
    (await getConn()).client.callTool({ name, arguments: a }, undefined, { timeout: TIMEOUT_MS, ...options });
async function listAll(fn, key) {
    const c = await getConn();
    const out = [];
    let cursor;
    for (let page = 0; page < 50; page++) {
        const r = await c.client[fn](cursor ? { cursor } : undefined, { timeout: TIMEOUT_MS });
        out.push(...r[key]);
        cursor = r.nextCursor;
        if (!cursor) break;
    }
    return out;
}
async function echoCheck(msg) {
    const r = await call(TOOLS.echo, { message: msg });
    const got = textOf(r);
    if (got !== `Echo: ${msg}`) throw new Error(`echo mismatch: sent ${JSON.stringify(msg)} got ${JSON.stringify(got)}`);
    return got;
}
function waitFor(pred, ms) {
    return new Promise((resolve) => {
        const t0 = performance.now();
        const tick = () => {
            const v = pred();
            if (v) return resolve(v);
            if (performance.now() - t0 >= ms) return resolve(null);
            setTimeout(tick, 25);
        };
        tick();
    });
}

// ---------------------------------------------------------------- scenarios
class Fail extends Error {
    constructor(msg, detail) { super(msg); this.detail = detail; }
}

const scenarios = {
    async initialize() {
        // Always a fresh connection so the handshake itself is what is measured.
        if (conn) await conn.close();
        conn = null;
        const t0 = performance.now();
        const c = await getConn();
        const connectMs = Math.round(performance.now() - t0);
        // server-everything sends notifications/tools/list_changed on its own
        // right after notifications/initialized (it registers conditional tools).
        await sleep(500);
        const unsolicited = c.tap.filter((x) => x.dir === 'in' && x.m.method).map((x) => x.m.method);
        const info = c.client.getServerVersion();
        const caps = c.client.getServerCapabilities();
        const initRes = c.tap.find((x) => x.dir === 'in' && x.m.id === 0 && x.m.result)?.m.result;
        const detail = {
            serverInfo: info, protocolVersion: initRes?.protocolVersion,
            capabilities: caps ? Object.keys(caps) : null,
            instructionsChars: c.client.getInstructions()?.length ?? 0,
            transport: opt.stdio ? 'stdio' : HTTP ? 'streamable-http' : 'websocket', subprotocol: c.subprotocol ?? null,
            connectMs, unsolicitedNotifications: unsolicited,
        };
        if (!info?.name || !info?.version) throw new Fail('no serverInfo', detail);
        if (!caps?.tools || !caps?.resources || !caps?.prompts || !caps?.logging) throw new Fail('capabilities missing tools/resources/prompts/logging', detail);
        if (!opt.stdio && c.subprotocol !== 'mcp') throw new Fail(`negotiated subprotocol ${JSON.stringify(c.subprotocol)}, want "mcp"`, detail);
        return detail;
    },

    async 'tools-list'() {
        const tools = await listAll('listTools', 'tools');
        const names = tools.map((t) => t.name);
        const missing = Object.values(TOOLS).filter((n) => !names.includes(n));
        const detail = { count: names.length, tools: names, missing };
        if (missing.length) throw new Fail(`missing tools: ${missing.join(', ')}`, detail);
        return detail;
    },

    async echo() {
        const msg = `hello ${rand()} \u00fcn\u00efc\u00f8d\u00e9 \u2713 \ud83d\ude80 "quoted" \\ back\nslash`;
        const got = await echoCheck(msg);
        return { sent: msg, got };
    },

    async sum() {
        const r = await call(TOOLS.sum, { a: 17, b: 25.5 });
        const text = textOf(r);
        if (!/\b42\.5\b/.test(text)) throw new Fail('sum text lacks 42.5', { text });
        return { text };
    },

    async progress() {
        const progress = [];
        await getConn();
        const t0 = performance.now();
        const r = await call(TOOLS.longOp, { duration: 2, steps: 4 }, {
            onprogress: (p) => progress.push({ ...p, atMs: Math.round(performance.now() - t0) }),
        });
        const text = textOf(r);
        const detail = { progress, text };
        if (!/completed/i.test(text)) throw new Fail('no completion text', detail);
        if (progress.length < 2) throw new Fail(`only ${progress.length} progress notifications`, detail);
        for (let i = 1; i < progress.length; i++) {
            if (!(progress[i].progress > progress[i - 1].progress)) throw new Fail('progress not increasing', detail);
        }
        return detail;
    },

    async structured() {
        const r = await call(TOOLS.structured, { location: 'Chicago' });
        const sc = r.structuredContent;
        const detail = { structuredContent: sc ?? null, text: textOf(r) };
        if (!sc || typeof sc !== 'object') throw new Fail('no structuredContent', detail);
        if (sc.temperature !== 36 || typeof sc.conditions !== 'string' || sc.humidity !== 82) throw new Fail('unexpected structuredContent', detail);
        if (JSON.stringify(JSON.parse(detail.text)) !== JSON.stringify(sc)) throw new Fail('text block does not match structuredContent', detail);
        return detail;
    },

    async resources() {
        const c = await getConn();
        const list = await listAll('listResources', 'resources');
        if (!list.length) throw new Fail('resources/list is empty', {});
        const first = list.find((r) => /instructions/.test(r.uri)) ?? list[0];
        const rd = await c.client.readResource({ uri: first.uri }, { timeout: TIMEOUT_MS });
        const content = rd.contents?.[0];
        const detail = { count: list.length, uris: list.map((r) => r.uri), read: first.uri,
            mimeType: content?.mimeType, chars: content?.text?.length ?? content?.blob?.length ?? 0 };
        if (!content || content.uri !== first.uri || !(content.text || content.blob)) throw new Fail('bad resources/read result', detail);
        // A templated (dynamic) resource too.
        const dyn = 'demo://resource/dynamic/text/1';
        const rd2 = await c.client.readResource({ uri: dyn }, { timeout: TIMEOUT_MS });
        detail.template = { uri: dyn, text: rd2.contents?.[0]?.text };
        if (!/^Resource 1:/.test(rd2.contents?.[0]?.text ?? '')) throw new Fail('bad templated resource read', detail);
        return detail;
    },

    async prompts() {
        const c = await getConn();
        const list = await listAll('listPrompts', 'prompts');
        const names = list.map((p) => p.name);
        const detail = { prompts: names };
        if (!names.includes(SIMPLE_PROMPT)) throw new Fail(`no ${SIMPLE_PROMPT}`, detail);
        const g = await c.client.getPrompt({ name: SIMPLE_PROMPT }, { timeout: TIMEOUT_MS });
        detail.message = g.messages?.[0]?.content?.text;
        if (g.messages?.[0]?.role !== 'user' || !/simple prompt/i.test(detail.message ?? '')) throw new Fail('unexpected prompts/get result', detail);
        return detail;
    },

    async logging() {
        // server-everything sends no log messages by itself: the tool
        // toggle-simulated-logging starts one immediately + one every 5 s
        // (random level, filtered by logging/setLevel), toggled per session.
        const c = await getConn();
        await c.client.setLoggingLevel('debug', { timeout: TIMEOUT_MS });
        const mark = c.tap.length;
        const t0 = performance.now();
        let r = await call(TOOLS.logging);
        const toggles = [textOf(r).slice(0, 40)];
        if (/^Stopped/.test(textOf(r))) { // it was left on (e.g. shared server): turn on again
            r = await call(TOOLS.logging);
            toggles.push(textOf(r).slice(0, 40));
        }
        try {
            const got = await waitFor(() => c.tap.slice(mark).find((x) => x.dir === 'in' && x.m.method === 'notifications/message'), 8000);
            const detail = { toggles, waitedMs: Math.round(performance.now() - t0) };
            if (!got) throw new Fail('no notifications/message within 8 s', detail);
            detail.first = got.m.params;
            return detail;
        } finally {
            const off = await call(TOOLS.logging).catch((e) => ({ content: [{ type: 'text', text: `toggle-off failed: ${errMsg(e)}` }] }));
            toggles.push(textOf(off).slice(0, 40));
        }
    },

    async cancel() {
        // The request is aborted after its first progress notification. The
        // client rejects at once and sends notifications/cancelled; the server
        // (SDK) then drops the response. A response arriving for the cancelled
        // id means the cancellation did not reach the server with the right id.
        const c = await getConn();
        const DURATION = 4, STEPS = 8;
        const ac = new AbortController();
        let abortAt = null;
        const mark = c.tap.length;
        const p = call(TOOLS.longOp, { duration: DURATION, steps: STEPS }, {
            signal: ac.signal,
            onprogress: () => { if (abortAt === null) { abortAt = performance.now(); ac.abort('driver cancel test'); } },
        });
        let rejectedAfterMs = null, rejection = null;
        try {
            await p;
        } catch (e) {
            rejection = errMsg(e);
            rejectedAfterMs = abortAt === null ? null : Math.round(performance.now() - abortAt);
        }
        const out = c.tap.slice(mark).filter((x) => x.dir === 'out');
        const req = out.find((x) => x.m.method === 'tools/call' && x.m.params?.name === TOOLS.longOp);
        const cancelled = out.find((x) => x.m.method === 'notifications/cancelled');
        const detail = { requestId: req?.m.id, rejectedAfterMs, rejection, cancelSent: cancelled?.m.params ?? null };
        if (abortAt === null) throw new Fail('request finished without any progress (nothing to abort)', detail);
        if (rejectedAfterMs === null || rejectedAfterMs > 1000) throw new Fail('request did not reject promptly after abort', detail);
        if (!cancelled || cancelled.m.params?.requestId !== req?.m.id) throw new Fail('no notifications/cancelled for the request id', detail);
        // Connection still usable.
        detail.echoAfter = await echoCheck(`after-cancel ${rand()}`);
        // Wait until the operation would have finished, plus grace, then look
        // for a late response / stray progress for the cancelled id.
        const remaining = Math.max(0, DURATION * 1000 - (performance.now() - abortAt)) + 1500;
        await sleep(remaining);
        const inb = c.tap.slice(mark).filter((x) => x.dir === 'in' && x.t > abortAt);
        detail.lateResponse = inb.some((x) => x.m.id === req.m.id && ('result' in x.m || 'error' in x.m));
        detail.strayProgressAfterAbort = inb.filter((x) => x.m.method === 'notifications/progress' && x.m.params?.progressToken === req.m.id).length;
        if (detail.lateResponse) throw new Fail('server still answered the cancelled request (cancellation not delivered)', detail);
        return detail;
    },

    async env() {
        const r = await call(TOOLS.env);
        let env;
        try { env = JSON.parse(textOf(r)); } catch { throw new Fail('get-env output is not JSON', { text: textOf(r).slice(0, 200) }); }
        const keys = Object.keys(env).sort();
        const detail = { keys };
        const problems = [];
        if (opt['expect-env-keys'] !== undefined) {
            const allow = opt['expect-env-keys'].split(',').map((s) => s.trim()).filter(Boolean);
            detail.unexpected = keys.filter((k) => !allow.includes(k));
            detail.absent = allow.filter((k) => !keys.includes(k)); // informational
            if (detail.unexpected.length) problems.push(`unexpected keys: ${detail.unexpected.join(',')}`);
        }
        const forbidden = (opt['forbid-env'] ?? []).filter((k) => keys.includes(k));
        if (forbidden.length) { detail.forbiddenPresent = forbidden; problems.push(`forbidden keys present: ${forbidden.join(',')}`); }
        if (problems.length) throw new Fail(problems.join('; '), detail);
        return detail;
    },

    async concurrent(n) {
        const N = n ?? posInt(opt.concurrent, '--concurrent');
        await getConn();
        const t0 = performance.now();
        const msgs = Array.from({ length: N }, (_, i) => `c${i}-${rand()}`);
        const res = await Promise.allSettled(msgs.map((m) => call(TOOLS.echo, { message: m })));
        const bad = [];
        res.forEach((r, i) => {
            if (r.status === 'rejected') bad.push({ i, error: errMsg(r.reason) });
            else if (textOf(r.value) !== `Echo: ${msgs[i]}`) bad.push({ i, sent: msgs[i], got: textOf(r.value) });
        });
        const detail = { n: N, ms: Math.round(performance.now() - t0), bad: bad.slice(0, 10), badCount: bad.length };
        if (bad.length) throw new Fail(`${bad.length}/${N} calls wrong`, detail);
        return detail;
    },
};

// ---------------------------------------------------------------- modes
function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

async function runScenarios(names) {
    let passed = 0, failed = 0;
    for (const spec of names) {
        const [name, argStr] = spec.split(':');
        const fn = scenarios[name];
        const t0 = performance.now();
        let ok = false, detail;
        try {
            detail = await withTimeout(fn(argStr ? posInt(argStr, spec) : undefined), TIMEOUT_MS, name);
            ok = true;
        } catch (e) {
            detail = { error: errMsg(e), ...(e.detail ?? {}) };
            if (/timeout after/.test(errMsg(e)) && conn) { // isolate the next scenario
                await conn.close();
                conn = null;
            }
        }
        emit({ scenario: spec, ok, ms: Math.round(performance.now() - t0), detail });
        ok ? passed++ : failed++;
    }
    if (conn) {
        const errs = conn.errors.map((e) => e.msg);
        if (errs.length) vlog(`client errors during run (${errs.length}):`, JSON.stringify(errs.slice(0, 5)));
        await conn.close();
    }
    process.stderr.write(`driver: ${passed} passed, ${failed} failed\n`);
    return failed === 0;
}

async function runCycles(n) {
    const times = [], errors = [];
    for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const c = new Conn();
        try {
            await c.open();
            await c.close();
            times.push(performance.now() - t0);
        } catch (e) {
            errors.push({ cycle: i, error: errMsg(e) });
            await c.close();
        }
    }
    times.sort((a, b) => a - b);
    const avg = times.length ? times.reduce((a, b) => a + b, 0) / times.length : null;
    emit({ mode: 'cycles', ok: errors.length === 0, n, succeeded: times.length, failed: errors.length,
        avg_ms: avg && Math.round(avg * 10) / 10, p50_ms: pct(times, 50), max_ms: pct(times, 100), errors: errors.slice(0, 5) });
    return errors.length === 0;
}

// CPU seconds (user + system) of a process so far, from /proc/PID/stat.
const CLK_TCK = 100;
function procCpuS(pid) {
    try {
        const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14, 15: utime stime
    } catch {
        return null;
    }
}
// the descendants of pid, from /proc/PID/task/*/children
function descendants(pid) {
    const out = [];
    let tasks = [];
    try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return out; }
    for (const t of tasks) {
        let kids = '';
        try { kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8'); } catch { continue; }
        for (const k of kids.split(' ').filter(Boolean).map(Number)) out.push(k, ...descendants(k));
    }
    return out;
}
// NAME -> [pid, ...] (a NAME given twice sums its processes)
function cpuPids(conns) {
    const out = {};
    for (const o of ['cpu-pid', 'cpu-tree']) {
        for (const kv of opt[o] ?? []) {
            const i = kv.indexOf('=');
            const pid = Number(kv.slice(i + 1));
            if (i <= 0 || !(pid > 0)) usage(`--${o} wants NAME=PID, got ${kv}`);
            (out[kv.slice(0, i)] ??= []).push(...(o === 'cpu-pid' ? [pid] : descendants(pid)));
        }
    }
    if (opt.stdio) out.server = conns.map((c) => c.pid).filter(Boolean);
    return out;
}
const sumCpuS = (pids) => pids.reduce((a, p) => { const v = procCpuS(p); return a === null || v === null ? null : a + v; }, 0);
class CpuWindow {
    constructor(pids) {
        this.pids = pids;
        this.u0 = process.cpuUsage();
        this.p0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, sumCpuS(p)]));
    }
    end() {
        const u = process.cpuUsage(this.u0);
        const r3 = (x) => Math.round(x * 1000) / 1000;
        const cpu = {};
        for (const [k, p] of Object.entries(this.pids)) {
            const a = this.p0[k], b = sumCpuS(p);
            cpu[k] = a === null || b === null ? null : r3(b - a);
        }
        return { client_cpu_s: r3((u.user + u.system) / 1e6), cpu_s: cpu };
    }
}

async function echoOnce(c, msg) {
    const r = await c.client.callTool({ name: TOOLS.echo, arguments: { message: msg } }, undefined, { timeout: TIMEOUT_MS });
    if (textOf(r) !== `Echo: ${msg}`) throw new Error(`mismatch for ${msg}: ${textOf(r)}`);
}

// Closed loop: `concurrency` workers over the connections, each with one
// call in flight, for `seconds`.
async function closedLoop(conns, seconds, concurrency, record) {
    const lat = [];
    const st = { lat, errors: 0, firstError: null };
    const deadline = performance.now() + seconds * 1000;
    const worker = async (w) => {
        const c = conns[w % conns.length];
        let k = 0;
        while (performance.now() < deadline && !c.closed) {
            const msg = `b${w}-${k++}`;
            const t0 = performance.now();
            try {
                await echoOnce(c, msg);
                if (record) lat.push(performance.now() - t0);
            } catch (e) {
                st.errors++;
                st.firstError ??= errMsg(e);
                if (st.errors > 1000) break;
            }
        }
    };
    await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
    return st;
}

// Open loop at `rate` calls/s over the connections (round robin), see the
// header comment.
function openLoop(conns, seconds, rate, record) {
    const MAX_OUT = 10000;
    return new Promise((resolve) => {
        const lat = [], lags = [];
        const st = { lat, lags, errors: 0, firstError: null, sent: 0, skipped: 0, outstanding: 0 };
        const n = Math.round(seconds * rate);
        const start = performance.now() + 1;
        let finished = false;
        const done = () => {
            if (!finished && st.sent + st.skipped >= n && st.outstanding === 0) { finished = true; resolve(st); }
        };
        const send = (i, due) => {
            const c = conns[i % conns.length];
            const t0 = performance.now();
            if (record) lags.push(t0 - due);
            st.outstanding++;
            echoOnce(c, `r${i}`).then(() => { if (record) lat.push(performance.now() - t0); },
                (e) => { st.errors++; st.firstError ??= errMsg(e); })
                .finally(() => { st.outstanding--; done(); });
        };
        const tick = () => {
            const now = performance.now();
            while (st.sent + st.skipped < n) {
                const i = st.sent + st.skipped;
                const due = start + (i * 1000) / rate;
                if (due > now) break;
                if (st.outstanding >= MAX_OUT || conns[i % conns.length].closed) st.skipped++;
                else { send(i, due); st.sent++; }
            }
            if (st.sent + st.skipped < n) {
                const next = start + ((st.sent + st.skipped) * 1000) / rate;
                setTimeout(tick, Math.max(0, next - performance.now()));
            } else {
                done();
            }
        };
        setTimeout(tick, 1);
    });
}

// phases: [{ kind: 'c', n: concurrency } | { kind: 'r', n: rate }]; the
// warm-up runs the first phase unrecorded; one JSON line per phase.
async function runBench(seconds, phases, warmup, nconns) {
    const conns = [];
    for (let i = 0; i < nconns; i++) conns.push(await new Conn().open());
    const run = (ph, secs, record) => (ph.kind === 'c' ? closedLoop(conns, secs, ph.n, record)
        : openLoop(conns, secs, ph.n, record));
    if (warmup > 0) await run(phases[0], warmup, false);
    let allOk = true;
    for (const ph of phases) {
        const cw = new CpuWindow(cpuPids(conns));
        const t0 = performance.now();
        const st = await run(ph, seconds, true);
        const elapsed = (performance.now() - t0) / 1000;
        const cpu = cw.end();
        st.lat.sort((a, b) => a - b);
        const ok = st.errors === 0 && !st.skipped && st.lat.length > 0;
        allOk &&= ok;
        const head = { mode: ph.kind === 'c' ? 'bench' : 'rate', phase: `${ph.kind}${ph.n}`, ok,
            seconds: Math.round(elapsed * 1000) / 1000, connections: nconns, warmup_s: warmup };
        if (ph.kind === 'c') head.concurrency = ph.n;
        else Object.assign(head, { rate: ph.n, skipped: st.skipped });
        const lags = ph.kind === 'r' ? st.lags.sort((a, b) => a - b) : null;
        emit({ ...head, calls: st.lat.length, errors: st.errors,
            calls_per_s: Math.round((st.lat.length / elapsed) * 10) / 10,
            p50_ms: pct(st.lat, 50), p90_ms: pct(st.lat, 90), p99_ms: pct(st.lat, 99), p999_ms: pct(st.lat, 99.9),
            max_ms: pct(st.lat, 100),
            ...(lags ? { lag_p50_ms: pct(lags, 50), lag_p99_ms: pct(lags, 99) } : {}),
            ...cpu, first_error: st.firstError });
    }
    await Promise.all(conns.map((c) => c.close()));
    return allOk;
}

// N idle initialised sessions, held until a signal or --hold-seconds.
async function runHold(n, holdSeconds) {
    const conns = [];
    const errors = [];
    const t0 = performance.now();
    let next = 0;
    const opener = async () => {
        while (next < n) {
            next++;
            try {
                conns.push(await new Conn().open());
            } catch (e) {
                errors.push(errMsg(e));
                if (errors.length > 20) return;
            }
        }
    };
    await Promise.all(Array.from({ length: Math.min(8, n) }, opener));
    const ok = conns.length === n;
    const mem = process.memoryUsage();
    emit({ mode: 'hold', ok, ready: true, n, open: conns.length, failed: errors.length,
        open_ms: Math.round(performance.now() - t0), client_rss_kb: Math.round(mem.rss / 1024),
        pids: conns.map((c) => c.pid).filter(Boolean), errors: errors.slice(0, 5) });
    await new Promise((resolve) => {
        const t = setTimeout(resolve, holdSeconds * 1000);
        const stop = () => { clearTimeout(t); resolve(); };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
    });
    const closed = conns.filter((c) => c.closed).length;
    await Promise.all(conns.map((c) => c.close()));
    emit({ mode: 'hold', ok: ok && closed === 0, done: true, n, closed_by_server: closed });
    return ok && closed === 0;
}

// ---------------------------------------------------------------- main
async function main() {
    let budgetMs, run;
    if (opt.cycles !== undefined) {
        const n = posInt(opt.cycles, '--cycles');
        budgetMs = n * (TIMEOUT_MS + 7000) + 10000;
        run = () => runCycles(n);
    } else if (opt.bench !== undefined) {
        const s = posInt(opt.bench, '--bench');
        const cc = posInt(opt.concurrency, '--concurrency');
        const w = Number(opt.warmup);
        if (!Number.isFinite(w) || w < 0) usage('--warmup must be a number >= 0');
        const k = posInt(opt.connections, '--connections');
        let phases;
        if (opt.phases !== undefined) {
            phases = opt.phases.split(',').map((p) => {
                const m = /^([cr])([0-9.]+)$/.exec(p.trim());
                if (!m) usage(`--phases: bad phase ${p} (want cN or rR)`);
                return { kind: m[1], n: posInt(m[2], `--phases ${p}`) };
            });
        } else if (opt.rate !== undefined) {
            phases = [{ kind: 'r', n: posInt(opt.rate, '--rate') }];
        } else {
            phases = [{ kind: 'c', n: cc }];
        }
        budgetMs = (s * phases.length + w) * 1000 + 2 * TIMEOUT_MS + 15000;
        run = () => runBench(s, phases, w, k);
    } else if (opt.hold !== undefined) {
        const n = posInt(opt.hold, '--hold');
        const hs = posInt(opt['hold-seconds'], '--hold-seconds');
        budgetMs = hs * 1000 + n * 2000 + 2 * TIMEOUT_MS + 15000;
        run = () => runHold(n, hs);
    } else {
        const names = (opt.scenario ?? ALL_SCENARIOS).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
        for (const s of names) if (!scenarios[s.split(':')[0]]) usage(`unknown scenario ${s}`);
        budgetMs = names.length * (TIMEOUT_MS + 7000) + 10000;
        run = () => runScenarios(names);
    }
    const watchdog = setTimeout(() => {
        process.stderr.write(`driver: global watchdog (${budgetMs} ms) fired\n`);
        process.exit(3);
    }, budgetMs);
    watchdog.unref();
    let ok;
    try {
        ok = await run();
    } catch (e) {
        emit({ mode: 'error', ok: false, detail: { error: errMsg(e) } });
        ok = false;
    }
    process.exit(ok ? 0 : 1);
}

main();
