#!/usr/bin/python3
"""A minimal stdio MCP server for the gateway's edge cases (what
server-everything cannot be made to do): newline-delimited JSON-RPC on
stdin/stdout. Tools:
  flood {count, size}    writes `count` notifications/message of `size`
                         bytes each as fast as the pipe takes them, then
                         answers {"sent": count}
  stderr {lines}         writes that many lines to stderr, then answers
  crash {}               exits at once with status 3 (no answer)
  spawn {}               starts `sleep 300` in its own process group (a helper
                         that would outlive it) and answers its pid
  flood_exit {count, size}  like flood, answers, then exits 0 at once
  sample {}              asks the client sampling/createMessage (id "s1"),
                         waits for the answer and returns it as text
Anything else: initialize answers, notifications are ignored, other
requests get -32601.
"""
import json
import subprocess
import sys


def send(obj):
    sys.stdout.write(json.dumps(obj, separators=(',', ':')) + '\n')
    sys.stdout.flush()


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    msg = json.loads(line)
    mid, method = msg.get('id'), msg.get('method')
    if method is None or mid is None:
        continue
    if method == 'initialize':
        send({'jsonrpc': '2.0', 'id': mid, 'result': {
            'protocolVersion': msg['params'].get('protocolVersion', '2025-06-18'),
            'capabilities': {'tools': {}, 'logging': {}},
            'serverInfo': {'name': 'fake', 'version': '1'}}})
    elif method == 'tools/call':
        name = msg['params']['name']
        args = msg['params'].get('arguments') or {}
        if name in ('flood', 'flood_exit'):
            blob = 'x' * int(args.get('size', 65536))
            for i in range(int(args.get('count', 100))):
                send({'jsonrpc': '2.0', 'method': 'notifications/message',
                      'params': {'level': 'info', 'data': {'i': i, 'blob': blob}}})
            send({'jsonrpc': '2.0', 'id': mid,
                  'result': {'content': [{'type': 'text', 'text': 'sent'}]}})
            if name == 'flood_exit':
                sys.exit(0)
        elif name == 'stderr':
            for i in range(int(args.get('lines', 100))):
                sys.stderr.write('line %d\n' % i)
            sys.stderr.flush()
            send({'jsonrpc': '2.0', 'id': mid, 'result': {'content': []}})
        elif name == 'crash':
            sys.exit(3)
        elif name == 'spawn':
            p = subprocess.Popen(['sleep', '300'], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            send({'jsonrpc': '2.0', 'id': mid,
                  'result': {'content': [{'type': 'text', 'text': str(p.pid)}]}})
        elif name == 'sample':
            send({'jsonrpc': '2.0', 'id': 's1', 'method': 'sampling/createMessage',
                  'params': {'messages': [], 'maxTokens': 1}})
            for reply in sys.stdin:
                r = json.loads(reply)
                if r.get('id') == 's1' and 'method' not in r:
                    break
            send({'jsonrpc': '2.0', 'id': mid,
                  'result': {'content': [{'type': 'text', 'text': json.dumps(r)}]}})
        else:
            send({'jsonrpc': '2.0', 'id': mid, 'error': {'code': -32602, 'message': 'no tool'}})
    else:
        send({'jsonrpc': '2.0', 'id': mid, 'error': {'code': -32601, 'message': 'no method'}})
