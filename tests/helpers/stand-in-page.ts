/**
 * A stand-in for the household page, of the same shape in a few dozen lines: a PIN that
 * opens a session cookie, a server-rendered page in Chinese with a stylesheet and a script
 * of its own, a form (POST, 303, GET), and a stage shown live by server-sent events
 * carrying snapshots. It proves the browser harness (tests/browser-smoke.e2e.test.ts) and
 * the page benchmark (bench/household-page.ts) without the gateway.
 *
 * Node's http on 127.0.0.1, an ephemeral port. Not the page: nothing here is a model for
 * gateway/household/web/ beyond its shape (no CSRF token, no rate limit).
 */

import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface StandInPage {
  /** http://127.0.0.1:PORT */
  url: string
  pin: string
  /** The notes posted with the form, oldest first. */
  readonly notes: readonly string[]
  /** Pages open on /events. */
  readonly listeners: number
  /** Shows `text` as the stage on every open page (a snapshot to each); returns Date.now() when it was written to them. */
  setStage(text: string): number
  close(): Promise<void>
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const CSS = `body{font:16px/1.5 "Noto Sans CJK SC",sans-serif;margin:0;padding:12px;background:#fafaf7;color:#222}
h1{font-size:20px;margin:0 0 8px}.stage{padding:8px;border-radius:6px;background:#e6f2e6}
form{margin:12px 0}textarea,input{width:100%;box-sizing:border-box;font-size:16px;padding:6px}
button{font-size:16px;padding:8px 16px;margin-top:6px}.saved{color:#176317}`

// The live part: each event is the whole state the page shows (a snapshot), so a page that
// slept or missed events is right again at the next one.
const JS = `const stage = document.querySelector('[data-test="stage"]')
const events = new EventSource('/events')
events.onmessage = (e) => { stage.textContent = JSON.parse(e.data).stage }
events.onopen = () => { document.body.dataset.live = 'yes' }`

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><link rel="stylesheet" href="/style.css"></head>
<body>${body}</body></html>`
}

async function formBody(req: IncomingMessage): Promise<URLSearchParams> {
  let s = ''
  for await (const chunk of req) {
    s += chunk
    if (s.length > 64 * 1024) throw new Error('form too large')
  }
  return new URLSearchParams(s)
}

/** Starts the stand-in on 127.0.0.1 (an ephemeral port unless `port`); `pin` default: random 6 digits. */
export async function startStandInPage(opts: { pin?: string; port?: number } = {}): Promise<StandInPage> {
  const pin = opts.pin ?? String(100000 + (randomBytes(4).readUInt32BE() % 900000))
  const sessions = new Set<string>()
  const notes: string[] = []
  const streams = new Set<ServerResponse>()
  let stage = '已存储'

  const snapshot = () => `data: ${JSON.stringify({ stage })}\n\n`
  const session = (req: IncomingMessage) => /(?:^|; )sid=([0-9a-f]+)/.exec(req.headers.cookie ?? '')?.[1]
  const send = (res: ServerResponse, type: string, body: string) => {
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }
  const redirect = (res: ServerResponse, to: string, headers: Record<string, string> = {}) => {
    res.writeHead(303, { location: to, ...headers })
    res.end()
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const key = `${req.method} ${url.pathname}`
    if (key === 'GET /style.css') return send(res, 'text/css; charset=utf-8', CSS)
    if (key === 'GET /app.js') return send(res, 'text/javascript; charset=utf-8', JS)
    if (key === 'GET /login') {
      const wrong = url.searchParams.has('wrong') ? '<p class="error" data-test="error">PIN 不对，请再试一次。</p>' : ''
      return send(
        res,
        'text/html; charset=utf-8',
        page('登录', `<h1>中心户 · 登录</h1>${wrong}<form method="post" action="/login"><label>PIN <input name="pin" inputmode="numeric" autocomplete="off"></label><button>登录</button></form>`),
      )
    }
    if (key === 'POST /login') {
      if ((await formBody(req)).get('pin') !== pin) return redirect(res, '/login?wrong=1')
      const sid = randomBytes(16).toString('hex')
      sessions.add(sid)
      return redirect(res, '/', { 'set-cookie': `sid=${sid}; HttpOnly; SameSite=Strict; Path=/` })
    }
    const sid = session(req)
    if (sid === undefined || !sessions.has(sid)) return redirect(res, '/login')
    if (key === 'GET /') {
      const saved = url.searchParams.get('saved')
      const note = saved !== null && notes[Number(saved)] !== undefined ? `<p class="saved" data-test="saved">已保存：${esc(notes[Number(saved)]!)}</p>` : ''
      return send(
        res,
        'text/html; charset=utf-8',
        page(
          '中心户',
          `<h1>中心户 · 状态</h1><p>现在按下报警按钮，报警能送到 110。</p>
<p class="stage">报警 T4-00123：<b data-test="stage">${esc(stage)}</b></p>${note}
<form method="post" action="/note"><label>给邻居的留言<textarea name="text" rows="3"></textarea></label><button>保存</button></form>
<script src="/app.js" defer></script>`,
        ),
      )
    }
    if (key === 'POST /note') {
      notes.push((await formBody(req)).get('text') ?? '')
      return redirect(res, `/?saved=${notes.length - 1}`)
    }
    if (key === 'GET /events') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' })
      res.write(snapshot())
      streams.add(res)
      res.once('close', () => streams.delete(res))
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
    res.end('not found')
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(400)
      res.end()
    })
  })
  // Each stage event is small and must leave at once, not wait for an ACK (Nagle).
  server.on('connection', (socket) => socket.setNoDelay(true))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    pin,
    notes,
    get listeners() {
      return streams.size
    },
    setStage(text) {
      stage = text
      const event = snapshot()
      for (const res of streams) res.write(event)
      return Date.now()
    },
    async close() {
      for (const res of streams) res.end()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
