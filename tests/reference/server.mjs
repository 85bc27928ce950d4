/*
 * tests/reference/server.mjs - the reference server of the differential test
 * (tests/integration/test_differential.py): a Node program we wrote to behave
 * as the TypeScript reference plan's server does on the wire
 * (/work/shared/spec/typescript-reference-plan.md: WebSocketServer,
 * websocket-auth and the Express entry point), on the npm packages it names
 * (ws, jsonwebtoken) at the versions in package-lock.json.
 *
 * What it keeps from the plan, error paths included: ws's own handshake
 * checks and close handling; verifyClient with ?token= only, jwt.verify()
 * with no options, 401 "Unauthorized: Missing token" / "Unauthorized: Invalid
 * token", user `decoded.id || 'anonymous'`, 429 "Too Many Connections" past
 * 5 per user; maxPayload 1 MiB; the plan's permessage-deflate settings; the
 * welcome; JSON.parse of every message (text or binary) with its exceptions
 * answered {"type":"error","message":"Failed to process message","error":
 * e.message}; ping, the placeholder batch ({processed:true} per
 * sub-message), agent_status broadcast to every open client then ack, and
 * "Unknown message type: ${message.type}"; heartbeat; on SIGTERM every
 * socket terminated (no close frame).
 *
 * What it leaves out: logging and metrics (nothing on the wire), and the
 * Express app of the plan's entry point, which is not in the plan: a plain
 * HTTP request gets 404 here, as Express answers a route it does not have.
 *
 * One defect of the plan is not reproduced unless asked: its
 * handleConnectionClose() is never called, so a user's connection count only
 * grows and the sixth connection ever is refused. Here the count is released
 * when a connection closes, as the plan meant; REFERENCE_AS_WRITTEN=1 keeps
 * the plan's leak (the differential test runs that once to show the
 * difference).
 *
 *   PORT=0 JWT_SECRET=... node server.mjs   (prints {"listening":PORT})
 */
import http from 'node:http';
import jwt from 'jsonwebtoken';
import WebSocket, { WebSocketServer } from 'ws';

const PORT = Number(process.env.PORT || 0);
const SECRET = process.env.JWT_SECRET || '';
const PATH = process.env.WS_PATH || '/ws';
const HEARTBEAT_INTERVAL = Number(process.env.HEARTBEAT_MS || 30000);
const AS_WRITTEN = process.env.REFERENCE_AS_WRITTEN === '1';
const MAX_CONNECTIONS_PER_USER = 5;

if (!SECRET) {
  process.stderr.write('server.mjs: JWT_SECRET is required\n');
  process.exit(2);
}

const now = () => new Date().toISOString();

/* ------------------------------------------------------------ websocket-auth */

const connectionCounter = {};

function authenticate(info, callback) {
  try {
    const url = new URL(`ws://${info.req.headers.host}${info.req.url}`);
    const token = url.searchParams.get('token');
    if (!token) {
      callback(false, 401, 'Unauthorized: Missing token');
      return;
    }
    const decoded = jwt.verify(token, SECRET);
    info.req.user = decoded;
    const userId = decoded.id || 'anonymous';
    connectionCounter[userId] = (connectionCounter[userId] || 0) + 1;
    if (connectionCounter[userId] > MAX_CONNECTIONS_PER_USER) {
      connectionCounter[userId]--;
      callback(false, 429, 'Too Many Connections');
      return;
    }
    callback(true);
  } catch (error) {
    callback(false, 401, 'Unauthorized: Invalid token');
  }
}

function handleConnectionClose(userId) {
  if (userId && connectionCounter[userId]) {
    connectionCounter[userId]--;
    if (connectionCounter[userId] <= 0) delete connectionCounter[userId];
  }
}

/* ------------------------------------------------------------ the server */

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('Not Found');
});

const wss = new WebSocketServer({
  server,
  path: PATH,
  verifyClient: authenticate,
  clientTracking: true,
  maxPayload: 1024 * 1024,
  perMessageDeflate: {
    zlibDeflateOptions: { level: 6 },
    zlibInflateOptions: { chunkSize: 10 * 1024 },
    clientNoContextTakeover: true,
    serverNoContextTakeover: true,
    serverMaxWindowBits: 10,
    concurrencyLimit: 10,
    threshold: 1024,
  },
});

function sendToClient(socket, data) {
  try {
    socket.send(JSON.stringify(data));
  } catch (error) {
    /* the plan logs and goes on */
  }
}

function broadcast(data, excludeSocket) {
  try {
    const message = JSON.stringify(data);
    wss.clients.forEach((client) => {
      if (client !== excludeSocket && client.readyState === WebSocket.OPEN) client.send(message);
    });
  } catch (error) {
    /* the plan logs and goes on */
  }
}

function parseMessage(data) {
  if (typeof data === 'string') return JSON.parse(data);
  if (data instanceof Buffer) return JSON.parse(data.toString());
  if (Array.isArray(data)) return JSON.parse(Buffer.concat(data).toString());
  throw new Error('Unsupported message format');
}

function processMessage(message) {
  return { processed: true };       /* the plan's placeholder */
}

function handlePing(socket, message) {
  sendToClient(socket, { type: 'pong', id: message.id, timestamp: now() });
}

function handleBatch(socket, message) {
  if (!Array.isArray(message.messages)) throw new Error('Invalid batch message format');
  const responses = message.messages.map((msg) => {
    try {
      return { id: msg.id, type: 'response', status: 'success', result: processMessage(msg) };
    } catch (error) {
      return { id: msg.id, type: 'response', status: 'error', error: error.message };
    }
  });
  sendToClient(socket, { type: 'batch_response', id: message.id, responses, timestamp: now() });
}

function handleAgentStatus(socket, message) {
  broadcast({ type: 'agent_status_update', agentId: message.agentId, status: message.status,
              timestamp: now() });
  sendToClient(socket, { type: 'agent_status_ack', id: message.id, agentId: message.agentId,
                         timestamp: now() });
}

function handleUnknownMessage(socket, message) {
  sendToClient(socket, { type: 'error', id: message.id,
                         message: `Unknown message type: ${message.type}`, timestamp: now() });
}

function handleMessage(data, socket) {
  try {
    const message = parseMessage(data);
    switch (message.type) {
      case 'ping': handlePing(socket, message); break;
      case 'batch': handleBatch(socket, message); break;
      case 'agent_status': handleAgentStatus(socket, message); break;
      default: handleUnknownMessage(socket, message); break;
    }
  } catch (error) {
    sendToClient(socket, { type: 'error', message: 'Failed to process message',
                           error: error.message, timestamp: now() });
  }
}

wss.on('connection', (socket, request) => {
  socket.isAlive = true;
  socket.on('pong', () => { socket.isAlive = true; });
  socket.user = request.user;
  socket.on('message', (data) => handleMessage(data, socket));
  socket.on('close', () => {
    if (!AS_WRITTEN) handleConnectionClose(socket.user?.id || 'anonymous');
  });
  socket.on('error', () => {});
  sendToClient(socket, { type: 'connection_established', message: 'Connected to MCP Server',
                         timestamp: now() });
});
wss.on('error', () => {});

const heartbeat = setInterval(() => {
  wss.clients.forEach((socket) => {
    if (socket.isAlive === false) return socket.terminate();
    socket.isAlive = false;
    socket.ping(() => {});
  });
}, HEARTBEAT_INTERVAL);

function shutdown() {
  clearInterval(heartbeat);
  wss.clients.forEach((socket) => socket.terminate());
  wss.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(1), 10000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
