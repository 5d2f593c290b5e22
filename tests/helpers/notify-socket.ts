/**
 * A fake systemd notify socket for tests (issue 14): a unix datagram socket in a temporary
 * directory, received by a small python3 script, since Node can neither bind nor send on
 * a unix datagram socket.
 *
 * Why not `socat UNIX-RECVFROM`: systemd-notify (systemd 246 and later) sends BARRIER=1
 * with a pipe and waits until the receiver has closed it, as PID 1 does. socat keeps the
 * descriptor, so every systemd-notify then fails after its 5 s timeout. The script closes
 * every descriptor it receives, and prints each message as one JSON list of its lines.
 */

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitUntil } from '../../device-sim/wait.js'

const RECEIVER = `
import json, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print(json.dumps(["LISTENING"]), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(payload) - len(payload) % 4, 4):
                os.close(int.from_bytes(payload[i:i + 4], sys.byteorder))
    lines = [l for l in data.decode("utf-8", "replace").split("\\n") if l]
    if lines != ["BARRIER=1"]:
        print(json.dumps(lines), flush=True)
`

export interface NotifySocket {
  /** The socket's path: NOTIFY_SOCKET. */
  path: string
  /** Every message received but the barriers, each as its lines ('READY=1', 'STATUS=...'). */
  messages: string[][]
  /** Waits until a message has a line that `pred` accepts; returns that message. */
  waitFor(pred: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string[]>
  close(): Promise<void>
}

export async function openNotifySocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-notify-'))
  const path = join(dir, 'notify')
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'pipe'] })
  const messages: string[][] = []
  let listening = false
  let stderr = ''
  let partial = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c
  })
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk
    const lines = partial.split('\n')
    partial = lines.pop()!
    for (const l of lines) {
      const m = JSON.parse(l) as string[]
      if (m[0] === 'LISTENING') listening = true
      else messages.push(m)
    }
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await waitUntil(() => listening || child.exitCode !== null, { timeoutMs: 10_000, what: 'the notify socket receiver (python3)' })
  if (!listening) throw new Error(`the notify socket receiver did not start: ${stderr}`)
  return {
    path,
    messages,
    async waitFor(pred, what, timeoutMs = 15_000) {
      await waitUntil(() => messages.some((m) => m.some(pred)), { timeoutMs, what: `notify message: ${what}; got ${JSON.stringify(messages)}` })
      return messages.find((m) => m.some(pred))!
    },
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
