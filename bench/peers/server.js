'use strict';
/*
 * bench/peers/server.js - the Node `ws` peer for mcpgw-bench.
 *
 * A minimal server written for the benchmark, following the TypeScript
 * reference plan (docs: /work/shared/spec/typescript-reference-plan.md) and
 * speaking the mcpgw protocol: JWT HS256 in ?token= (verified here with
 * node:crypto, no jsonwebtoken), 401 "Unauthorized: Missing token" /
 * "Unauthorized: Invalid token", 429 "Too Many Connections" per user,
 * connection_established welcome, ping -> pong, batch that really dispatches
 * its ping sub-messages, agent_status broadcast to every client + ack, and the
 * unknown-type / failed-to-process errors. No per-message logging.
 *
 *   PORT=18081 JWT_SECRET=... MAX_CONNECTIONS_PER_USER=5 DEFLATE=0 node server.js
 *
 * permessage-deflate is off unless DEFLATE=1 or --deflate (alias
 * --per-message-deflate) asks for it; then ws negotiates it with the
 * reference plan's settings: zlib level 6, threshold 1024 bytes,
 * serverMaxWindowBits 10, client and server no context takeover,
 * concurrencyLimit 10.
 *
 * TLS (wss://) when TLS_CERT and TLS_KEY name PEM files (or --tls-cert FILE
 * --tls-key FILE): the same server on https.createServer with Node's
 * defaults (TLS 1.2 minimum, OpenSSL's default ciphers, ALPN http/1.1);
 * nothing else changes. Without them it is plain http, as before.
 */
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const crypto = require('node:crypto');
const { WebSocketServer } = require('ws');

const PORT = Number(process.env.PORT || 18081);
const HOST = process.env.HOST || '127.0.0.1';
const PATH = process.env.WS_PATH || '/ws';
const SECRET = process.env.JWT_SECRET || 'bench-secret-not-for-production';
const MAX_PER_USER = Number(process.env.MAX_CONNECTIONS_PER_USER || 5);
const DEFLATE = process.env.DEFLATE === '1' || process.env.DEFLATE === 'true' ||
  process.argv.slice(2).some((a) => a === '--deflate' || a === '--per-message-deflate');
const HEARTBEAT_MS = Number(process.env.HEARTBEAT_MS || 30000);

function argValue(name) {
  const i = process.argv.indexOf(name);
  return i > 1 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}
const TLS_CERT = argValue('--tls-cert') || process.env.TLS_CERT || '';
const TLS_KEY = argValue('--tls-key') || process.env.TLS_KEY || '';
if (!TLS_CERT !== !TLS_KEY) {
  process.stderr.write('server.js: TLS needs both TLS_CERT and TLS_KEY (or --tls-cert and --tls-key)\n');
  process.exit(2);
}
const TLS = TLS_CERT !== '';

function b64urlToBuf(s) {
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/* HS256 verification: returns the claims or throws. */
function verifyHS256(token) {
  if (token.length > 16384) throw new Error('too long');
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('malformed');
  const header = JSON.parse(b64urlToBuf(parts[0]).toString('utf8'));
  if (header.alg !== 'HS256') throw new Error('alg_not_allowed');
  const mac = crypto.createHmac('sha256', SECRET).update(parts[0] + '.' + parts[1]).digest();
  const sig = b64urlToBuf(parts[2]);
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) throw new Error('bad_signature');
  const claims = JSON.parse(b64urlToBuf(parts[1]).toString('utf8'));
  const now = Date.now() / 1000;
  if (typeof claims.exp === 'number' && now > claims.exp + 30) throw new Error('expired');
  if (typeof claims.nbf === 'number' && now + 30 < claims.nbf) throw new Error('not_yet_valid');
  const id = claims.id !== undefined ? claims.id : claims.sub;
  if (id === undefined || id === null) throw new Error('no_user');
  return { claims, user: String(id) };
}

const perUser = new Map();

function reject(socket, status, text) {
  const body = text || '';
  socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
    'Connection: close\r\nContent-Type: text/plain\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  socket.destroy();
}

function notFound(req, res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('Not Found');
}
const server = TLS
  ? https.createServer({ cert: fs.readFileSync(TLS_CERT), key: fs.readFileSync(TLS_KEY) }, notFound)
  : http.createServer(notFound);

const wss = new WebSocketServer({
  noServer: true,
  clientTracking: true,
  maxPayload: 1024 * 1024,
  perMessageDeflate: DEFLATE ? {
    zlibDeflateOptions: { level: 6 },
    zlibInflateOptions: { chunkSize: 10 * 1024 },
    clientNoContextTakeover: true,
    serverNoContextTakeover: true,
    serverMaxWindowBits: 10,
    concurrencyLimit: 10,
    threshold: 1024,
  } : false,
});

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  const q = req.url.indexOf('?');
  const path = q < 0 ? req.url : req.url.slice(0, q);
  if (path !== PATH) return reject(socket, 404, 'Not Found');
  const token = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1)).get('token');
  if (!token) return reject(socket, 401, 'Unauthorized: Missing token');
  let auth;
  try {
    auth = verifyHS256(token);
  } catch (e) {
    return reject(socket, 401, 'Unauthorized: Invalid token');
  }
  const n = perUser.get(auth.user) || 0;
  if (n >= MAX_PER_USER) return reject(socket, 429, 'Too Many Connections');
  perUser.set(auth.user, n + 1);
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.user = auth.user;
    wss.emit('connection', ws, req);
  });
});

function now() { return new Date().toISOString(); }

function send(ws, obj) {
  if (ws.readyState === 1) ws.send(JSON.stringify(obj));
}

function handlePing(msg) {
  return { type: 'pong', id: msg.id, timestamp: now() };
}

function dispatch(ws, msg, nested) {
  switch (msg.type) {
    case 'ping': return handlePing(msg);
    case 'batch':
      if (nested) throw new Error('nested batch');
      return handleBatch(ws, msg);
    case 'agent_status': return handleAgentStatus(ws, msg);
    default:
      if (nested) throw new Error(`Unknown message type: ${msg.type}`);
      return { type: 'error', id: msg.id, message: `Unknown message type: ${msg.type}`, timestamp: now() };
  }
}

function handleBatch(ws, msg) {
  if (!Array.isArray(msg.messages)) throw new Error('Invalid batch message format');
  if (msg.messages.length > 100) throw new Error('batch too large');
  const responses = msg.messages.map((m) => {
    try {
      return { id: m.id, type: 'response', status: 'success', result: dispatch(ws, m, true) };
    } catch (e) {
      return { id: m.id, type: 'response', status: 'error', error: e.message };
    }
  });
  return { type: 'batch_response', id: msg.id, responses, timestamp: now() };
}

function handleAgentStatus(ws, msg) {
  const ts = now();
  /* serialised once, sent to every open client (sender included) */
  const update = JSON.stringify({ type: 'agent_status_update', agentId: msg.agentId, status: msg.status, timestamp: ts });
  for (const client of wss.clients) if (client.readyState === 1) client.send(update);
  return { type: 'agent_status_ack', id: msg.id, agentId: msg.agentId, timestamp: ts };
}

wss.on('connection', (ws) => {
  ws.isAlive = true;
  ws.on('pong', () => { ws.isAlive = true; });
  ws.on('error', () => {});
  ws.on('close', () => {
    const n = (perUser.get(ws.user) || 1) - 1;
    if (n <= 0) perUser.delete(ws.user); else perUser.set(ws.user, n);
  });
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.type !== 'string') {
        throw new Error('invalid message');
      }
      const reply = dispatch(ws, msg, false);
      if (reply) send(ws, reply);
    } catch (e) {
      const err = { type: 'error', message: 'Failed to process message', error: e.message, timestamp: now() };
      if (msg && typeof msg === 'object' && msg.id !== undefined) err.id = msg.id;
      send(ws, err);
    }
  });
  send(ws, { type: 'connection_established', message: 'Connected to MCP Server', timestamp: now() });
});

const hb = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) { ws.terminate(); continue; }
    ws.isAlive = false;
    ws.ping();
  }
}, HEARTBEAT_MS);

function shutdown() {
  clearInterval(hb);
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(PORT, HOST, 4096, () => {
  process.stderr.write(JSON.stringify({ event: 'server_listening', port: PORT, deflate: DEFLATE, tls: TLS }) + '\n');
});
