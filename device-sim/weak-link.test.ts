/**
 * The weak link, measured on the bytes: real sockets on 127.0.0.1, an echo or sink server
 * as the target, real time. Bounds are generous (this is the simulator's own behaviour,
 * not a benchmark); everything else waits on conditions with deadlines.
 */

import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { afterEach, describe, expect, it } from 'vitest'
import { seededRandom } from '../protocol/random.js'
import { simLinkCommand, simLinkHelp } from '../cli/sim-link-command.js'
import {
  LinkSchedule,
  PROFILES,
  SEGMENT_BYTES,
  WeakLinkArgumentError,
  describeEvent,
  parseBlackout,
  parseDropEvery,
  parseHostPort,
  parseKbps,
  parseProfile,
  shapeOf,
  startWeakLink,
  streamClock,
  type WeakLink,
  type WeakLinkEvent,
  type WeakLinkOptions,
} from './weak-link.js'

// --- helpers ---------------------------------------------------------------------------

interface Peer {
  socket: net.Socket
  /** Chunks as they arrived: performance.now() and Date.now() at arrival. */
  chunks: { at: number; wall: number; bytes: Buffer }[]
  text(): string
  ended: boolean
  closed: boolean
  error: string | null
}

function track(socket: net.Socket): Peer {
  socket.setNoDelay(true)
  const peer: Peer = {
    socket,
    chunks: [],
    text: () => Buffer.concat(peer.chunks.map((c) => c.bytes)).toString('latin1'),
    ended: false,
    closed: false,
    error: null,
  }
  socket.on('data', (bytes: Buffer) => peer.chunks.push({ at: performance.now(), wall: Date.now(), bytes }))
  socket.on('end', () => (peer.ended = true))
  socket.on('close', () => (peer.closed = true))
  socket.on('error', (e: NodeJS.ErrnoException) => (peer.error = e.code ?? e.message))
  return peer
}

interface TestServer {
  port: number
  peers: Peer[]
  close(): Promise<void>
}

/** echo: writes back what it reads (and ends when the client ends); sink: only reads. */
async function startServer(mode: 'echo' | 'sink'): Promise<TestServer> {
  const peers: Peer[] = []
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const peer = track(socket)
    peers.push(peer)
    if (mode === 'echo') {
      socket.on('data', (b: Buffer) => socket.write(b))
      socket.on('end', () => socket.end())
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    peers,
    close: async () => {
      for (const p of peers) p.socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

async function connect(port: number): Promise<Peer> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  const peer = track(socket)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return peer
}

/** Waits until `cond()` holds, checking every few ms; fails with `what` after the deadline. */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** Watches for `ms` and answers whether anything happened; for asserting that nothing does. */
async function quietFor(ms: number, somethingHappened: () => boolean): Promise<boolean> {
  const deadline = performance.now() + ms
  while (performance.now() < deadline) {
    if (somethingHappened()) return false
    await new Promise((r) => setTimeout(r, 5))
  }
  return !somethingHappened()
}

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function setup(mode: 'echo' | 'sink', options: Omit<WeakLinkOptions, 'target'> = {}): Promise<{ server: TestServer; link: WeakLink }> {
  const server = await startServer(mode)
  cleanups.push(() => server.close())
  const link = await startWeakLink({ target: { port: server.port }, ...options })
  cleanups.push(() => link.stop())
  return { server, link }
}

async function client(link: WeakLink): Promise<Peer> {
  const peer = await connect(link.port)
  cleanups.push(() => void peer.socket.destroy())
  return peer
}

const received = (p: Peer) => p.chunks.reduce((n, c) => n + c.bytes.length, 0)

// --- timing without I/O ------------------------------------------------------------------

describe('LinkSchedule (fake times)', () => {
  it('keeps the latency within ± jitter and never reorders a stream', () => {
    const schedule = new LinkSchedule({ latencyMs: 100, jitterMs: 60, upKbps: null, downKbps: null }, seededRandom(7))
    const stream = streamClock()
    let last = -Infinity
    const delays: number[] = []
    for (let i = 0; i < 10_000; i++) {
      const sent = i * 3 // much closer together than the jitter: reordering would be easy
      const [seg] = schedule.plan('up', stream, sent, 10)
      expect(seg!.at).toBeGreaterThanOrEqual(last)
      last = seg!.at
      delays.push(seg!.at - sent)
    }
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(40)
    expect(Math.max(...delays)).toBeLessThanOrEqual(160)
    // The jitter is really there: delays spread over most of the range.
    expect(Math.min(...delays)).toBeLessThan(60)
    expect(Math.max(...delays)).toBeGreaterThan(150)
  })

  it('clamps the delay at zero when the jitter exceeds the latency', () => {
    const schedule = new LinkSchedule({ latencyMs: 10, jitterMs: 50, upKbps: null, downKbps: null }, seededRandom(3))
    for (let i = 0; i < 1000; i++) {
      const [seg] = schedule.plan('down', streamClock(), 1000, 1)
      expect(seg!.at).toBeGreaterThanOrEqual(1000)
      expect(seg!.at).toBeLessThanOrEqual(1060)
    }
  })

  it('serialises at the bandwidth: 20 kB at 80 kbit/s arrive over 2 s, in MSS segments', () => {
    const schedule = new LinkSchedule({ latencyMs: 0, jitterMs: 0, upKbps: 80, downKbps: null }, () => 0.5)
    const segs = schedule.plan('up', streamClock(), 0, 20_000)
    expect(segs.reduce((n, s) => n + s.length, 0)).toBe(20_000)
    expect(Math.max(...segs.map((s) => s.length))).toBe(SEGMENT_BYTES)
    expect(segs.at(-1)!.at).toBeCloseTo(2000, 6)
    expect(segs[0]!.at).toBeCloseTo((SEGMENT_BYTES * 8) / 80, 6)
    // The other direction has no cap.
    expect(schedule.plan('down', streamClock(), 0, 20_000)).toEqual([{ at: 0, length: 20_000 }])
  })

  it('shares the bandwidth of a direction among connections and adds the latency after it', () => {
    const schedule = new LinkSchedule({ latencyMs: 300, jitterMs: 0, upKbps: 40, downKbps: 40 }, () => 0.5)
    const a = schedule.plan('up', streamClock(), 0, 1000) // 200 ms on the link
    const b = schedule.plan('up', streamClock(), 0, 1000) // waits for a
    const c = schedule.plan('down', streamClock(), 0, 1000) // the other direction is free
    expect(a[0]!.at).toBeCloseTo(500, 6)
    expect(b[0]!.at).toBeCloseTo(700, 6)
    expect(c[0]!.at).toBeCloseTo(500, 6)
    schedule.reset()
    expect(schedule.plan('up', streamClock(), 1000, 1000)[0]!.at).toBeCloseTo(1500, 6)
  })

  it('sends a FIN (length 0) after the data ahead of it, without serialisation time', () => {
    const schedule = new LinkSchedule({ latencyMs: 50, jitterMs: 40, upKbps: 8, downKbps: null }, seededRandom(1))
    const stream = streamClock()
    const data = schedule.plan('up', stream, 0, 100) // 100 ms on the link
    const [fin] = schedule.plan('up', stream, 1, 0)
    expect(fin!.length).toBe(0)
    expect(fin!.at).toBeGreaterThanOrEqual(data.at(-1)!.at)
  })
})

// --- parsing and profiles ------------------------------------------------------------------

describe('parse helpers', () => {
  it.each([
    ['60@30', { durationMs: 60_000, atMs: 30_000 }],
    ['3600@600', { durationMs: 3_600_000, atMs: 600_000 }],
    ['0.5@0', { durationMs: 500, atMs: 0 }],
    ['20@90/300', { durationMs: 20_000, atMs: 90_000, everyMs: 300_000 }],
  ])('parseBlackout(%s)', (raw, expected) => {
    expect(parseBlackout(raw)).toEqual(expected)
  })

  it.each([
    ['60', /DURATION@START/],
    ['60@', /DURATION@START/],
    ['@30', /DURATION@START/],
    ['60@30@5', /DURATION@START/],
    ['-5@30', /must be a number like 30 or 2.5, got '-5'/],
    ['ten@30', /got 'ten'/],
    ['0@30', /more than 0 s/],
    ['10@0/5', /longer than its duration/],
  ])('parseBlackout(%s) says what is wrong', (raw, message) => {
    expect(() => parseBlackout(raw)).toThrow(WeakLinkArgumentError)
    expect(() => parseBlackout(raw)).toThrow(message)
  })

  it('parseHostPort takes host:port and [ipv6]:port; port 0 only to listen', () => {
    expect(parseHostPort('127.0.0.1:1883')).toEqual({ host: '127.0.0.1', port: 1883 })
    expect(parseHostPort('localhost:1')).toEqual({ host: 'localhost', port: 1 })
    expect(parseHostPort('[::1]:65535')).toEqual({ host: '::1', port: 65535 })
    expect(parseHostPort('127.0.0.1:0', true)).toEqual({ host: '127.0.0.1', port: 0 })
    expect(() => parseHostPort('127.0.0.1:0')).toThrow(/port must be 1 to 65535, got 0/)
    for (const bad of ['127.0.0.1', ':1883', '127.0.0.1:', '127.0.0.1:http', '::1:1883', 'a b:1', '127.0.0.1:70000']) {
      expect(() => parseHostPort(bad), bad).toThrow(WeakLinkArgumentError)
    }
    expect(() => parseHostPort('127.0.0.1')).toThrow(/expected HOST:PORT such as 127.0.0.1:1883/)
  })

  it('parseKbps takes N or DOWN/UP; 0 is no cap', () => {
    expect(parseKbps('40')).toEqual({ downKbps: 40, upKbps: 40 })
    expect(parseKbps('40/20')).toEqual({ downKbps: 40, upKbps: 20 })
    expect(parseKbps('0')).toEqual({ downKbps: null, upKbps: null })
    expect(parseKbps('1000/0')).toEqual({ downKbps: 1000, upKbps: null })
    for (const bad of ['fast', '40/20/10', '', '-1', '40/']) expect(() => parseKbps(bad), bad).toThrow(WeakLinkArgumentError)
  })

  it('parseDropEvery and parseProfile', () => {
    expect(parseDropEvery('60')).toBe(60_000)
    expect(parseDropEvery('0.5')).toBe(500)
    expect(parseDropEvery('0')).toBeNull()
    expect(() => parseDropEvery('1m')).toThrow(/drop interval/)
    expect(parseProfile('storm')).toBe('storm')
    expect(() => parseProfile('3g')).toThrow("unknown profile '3g'; known profiles: perfect, gprs, edge, satellite, storm")
  })
})

describe('profiles', () => {
  it('have the documented numbers (README table)', () => {
    const row = (name: keyof typeof PROFILES) => {
      const p = PROFILES[name]
      return [p.latencyMs, p.jitterMs, p.downKbps, p.upKbps, p.dropEveryMs, p.blackouts, p.stall]
    }
    expect(row('perfect')).toEqual([0, 0, null, null, null, [], false])
    expect(row('gprs')).toEqual([500, 200, 40, 20, null, [], false])
    expect(row('edge')).toEqual([300, 100, 200, 100, null, [], false])
    expect(row('satellite')).toEqual([300, 50, 1000, 500, null, [], false])
    expect(row('storm')).toEqual([500, 200, 40, 20, 60_000, [{ atMs: 90_000, durationMs: 20_000, everyMs: 300_000 }], false])
  })

  it("storm's drops never fall in its blackouts (over a day)", () => {
    const { dropEveryMs, blackouts } = PROFILES.storm
    const [b] = blackouts
    for (let t = dropEveryMs!; t < 86_400_000; t += dropEveryMs!) {
      const sinceStart = (t - b!.atMs) % b!.everyMs!
      expect(t >= b!.atMs && sinceStart >= 0 && sinceStart <= b!.durationMs, `drop at ${t} ms`).toBe(false)
    }
  })

  it('flags override the profile, the rest stays', () => {
    const s = shapeOf('gprs', { latencyMs: 100, upKbps: null, jitterMs: undefined })
    expect(s).toEqual({ ...PROFILES.gprs, latencyMs: 100, upKbps: null })
    // The table itself is not changed by a copy.
    shapeOf('storm').blackouts.push({ atMs: 1, durationMs: 1 })
    expect(PROFILES.storm.blackouts).toHaveLength(1)
  })

  it('a shape that makes no sense is refused at start', async () => {
    await expect(startWeakLink({ target: { port: 1 }, latencyMs: -1 })).rejects.toThrow(/latencyMs must be a finite number >= 0/)
    await expect(startWeakLink({ target: { port: 1 }, upKbps: 0 })).rejects.toThrow(/upKbps must be null or a finite number > 0/)
  })
})

// --- on real sockets ---------------------------------------------------------------------

describe('weak link on real sockets', () => {
  it('passes bytes both ways and an orderly close (FIN) through, and logs it', async () => {
    const { server, link } = await setup('echo')
    const peer = await client(link)
    peer.socket.write('hello')
    await waitFor(() => peer.text() === 'hello', 'the echo')
    peer.socket.end()
    await waitFor(() => peer.ended && peer.closed, 'the echo server to close in turn')
    expect(server.peers[0]!.ended).toBe(true)
    const close = await link.waitForEvent((e) => e.event === 'close')
    expect(close).toMatchObject({ event: 'close', conn: 1, by: 'client', how: 'fin', up: 5, down: 5 })
    expect(link.events.map((e) => e.event)).toEqual(['listening', 'open', 'close'])
    expect(link.stats).toMatchObject({ bytesUp: 5, bytesDown: 5, connections: 1, open: 0, dropped: 0 })
    expect(describeEvent(close)).toBe('conn 1 closed by the client: FIN; 5 B up, 5 B down')
  })

  it('adds the latency one way in each direction: round trip >= 2 x 150 ms and < 2 x 150 + 120 ms', async () => {
    const { server, link } = await setup('echo', { latencyMs: 150 })
    const peer = await client(link)
    for (let i = 1; i <= 3; i++) {
      const sent = performance.now()
      peer.socket.write(`ping${i}`)
      await waitFor(() => peer.text().endsWith(`ping${i}`), `echo ${i}`)
      const rtt = peer.chunks.at(-1)!.at - sent
      const oneWay = server.peers[0]!.chunks.at(-1)!.at - sent
      expect(oneWay).toBeGreaterThanOrEqual(149)
      expect(oneWay).toBeLessThan(150 + 60)
      expect(rtt).toBeGreaterThanOrEqual(299)
      expect(rtt).toBeLessThan(300 + 120)
    }
  })

  it('caps the bandwidth: 20 kB through 80 kbit/s take about 2 s (±25 %)', async () => {
    const { server, link } = await setup('sink', { upKbps: 80 })
    const peer = await client(link)
    const sent = performance.now()
    peer.socket.write(Buffer.alloc(20_000, 0x55))
    await waitFor(() => received(server.peers[0] ?? peer) === 20_000 && server.peers.length === 1, 'all 20 kB', 5_000)
    const elapsed = server.peers[0]!.chunks.at(-1)!.at - sent
    expect(elapsed).toBeGreaterThan(1500)
    expect(elapsed).toBeLessThan(2500)
    // The bytes trickle in segment by segment rather than all at the end.
    const firstAt = server.peers[0]!.chunks[0]!.at - sent
    expect(firstAt).toBeLessThan(400)
  })

  it('jitters within bounds and never reorders bytes', async () => {
    const { server, link } = await setup('sink', { latencyMs: 60, jitterMs: 40, seed: 42 })
    const peer = await client(link)
    const sentAt: number[] = []
    const messages = 120
    let expected = ''
    for (let i = 0; i < messages; i++) {
      const m = `<${String(i).padStart(3, '0')}>`
      expected += m
      sentAt.push(performance.now())
      peer.socket.write(m)
      await new Promise((r) => setTimeout(r, 2)) // spread the sends over ~0.3 s: load, not a wait
    }
    await waitFor(() => server.peers[0]?.text().length === expected.length, 'all messages')
    const sink = server.peers[0]!
    expect(sink.text()).toBe(expected)
    // Each message's delay: from its send to the chunk that completed it.
    const delays: number[] = []
    let offset = 0
    let i = 0
    for (const chunk of sink.chunks) {
      offset += chunk.bytes.length
      for (; i < messages && (i + 1) * 5 <= offset; i++) delays.push(chunk.at - sentAt[i]!)
    }
    expect(delays).toHaveLength(messages)
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(60 - 40 - 1)
    expect(Math.max(...delays)).toBeLessThan(60 + 40 + 40)
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(30) // the jitter is there
  })

  it('drops every connection at the interval: RST to both ends, logged', async () => {
    const { server, link } = await setup('echo', { dropEveryMs: 600 })
    const first = await client(link)
    first.socket.write('a')
    await waitFor(() => first.text() === 'a', 'the first echo')
    await waitFor(() => first.closed, 'the first drop', 3_000)
    expect(first.error).toBe('ECONNRESET')
    await waitFor(() => server.peers[0]!.closed, 'the server side of the first connection to close')
    expect(server.peers[0]!.error).toBe('ECONNRESET')
    const second = await client(link)
    await waitFor(() => second.closed, 'the second drop', 3_000)
    expect(second.error).toBe('ECONNRESET')
    const drops = link.events.filter((e) => e.event === 'drop')
    expect(drops.map((d) => d.conns)).toEqual([[1], [2]])
    expect(drops[0]!.t).toBeGreaterThanOrEqual(599)
    expect(drops[0]!.t).toBeLessThan(600 + 150)
    expect(drops[1]!.t).toBeGreaterThanOrEqual(1199)
    expect(drops[1]!.t).toBeLessThan(1200 + 150)
    const closes = link.events.filter((e): e is Extract<WeakLinkEvent, { event: 'close' }> => e.event === 'close')
    expect(closes.map((c) => [c.conn, c.by, c.how])).toEqual([
      [1, 'drop', 'rst'],
      [2, 'drop', 'rst'],
    ])
    expect(link.stats.dropped).toBe(2)
  })

  it('blackout (scheduled): no bytes pass during it, they flow after, and nothing closes', async () => {
    const { server, link } = await setup('sink', { blackouts: [{ atMs: 300, durationMs: 600 }] })
    // What the link had delivered when the blackout started and when it ended.
    const deliveredAt: Record<string, number> = {}
    link.on('event', (e) => {
      if (e.event === 'blackout-start' || e.event === 'blackout-end') deliveredAt[e.event] = link.stats.bytesUp
    })
    const peer = await client(link)
    let n = 0
    const writer = setInterval(() => peer.socket.write(String(n++ % 10)), 10)
    cleanups.push(() => clearInterval(writer))
    const start = await link.waitForEvent((e) => e.event === 'blackout-start', 3_000)
    const end = await link.waitForEvent((e) => e.event === 'blackout-end', 3_000)
    const sink = server.peers[0]!
    await waitFor(() => sink.chunks.some((c) => c.wall >= end.time), 'bytes after the blackout')
    clearInterval(writer)
    expect(end.t - start.t).toBeGreaterThanOrEqual(599)
    // Nothing was delivered during it, and nothing arrived at the sink inside it (20 ms of
    // slack at the start: the sink reads, in this same process, what was delivered just before).
    expect(deliveredAt['blackout-end']).toBe(deliveredAt['blackout-start'])
    expect(deliveredAt['blackout-start']).toBeGreaterThan(0)
    const inside = sink.chunks.filter((c) => c.wall > start.time + 20 && c.wall < end.time)
    expect(inside).toEqual([])
    // What was sent during it arrives after it, in order, and the connection is still up.
    await waitFor(() => received(sink) === n, 'every byte written')
    expect(sink.text()).toBe(Array.from({ length: n }, (_, i) => String(i % 10)).join(''))
    expect([peer.ended, peer.closed, sink.ended, sink.closed]).toEqual([false, false, false, false])
    expect(start).toMatchObject({ event: 'blackout-start', durationMs: 600, conns: [1] })
  })

  it('blackout (programmatic): open connections stall; new ones hang until it ends and then go through', async () => {
    const { server, link } = await setup('echo')
    const old = await client(link)
    old.socket.write('a')
    await waitFor(() => old.text() === 'a', 'the echo before the blackout')
    link.blackout(700)
    expect(link.down).toBe(true)
    old.socket.write('b')
    const fresh = await client(link) // accepted by the proxy: connect succeeds ...
    fresh.socket.write('c')
    const quiet = await quietFor(400, () => server.peers.length > 1 || old.text() !== 'a' || fresh.chunks.length > 0 || old.ended || old.closed)
    expect(quiet, 'nothing reaches the echo server or comes back during the blackout').toBe(true)
    expect(link.events.find((e) => e.event === 'open' && e.conn === 2)).toMatchObject({ held: 'blackout' })
    await link.waitForEvent((e) => e.event === 'blackout-end', 2_000)
    await waitFor(() => old.text() === 'ab' && fresh.text() === 'c', 'both echoes after the blackout')
    expect(server.peers).toHaveLength(2) // ... and reaches the target only now
    expect(link.down).toBe(false)
  })

  it('a hung connection whose client gives up during the blackout never reaches the target', async () => {
    const { server, link } = await setup('echo')
    link.blackout(300)
    const peer = await client(link)
    peer.socket.destroy()
    await link.waitForEvent((e) => e.event === 'close' && e.conn === 1, 2_000)
    await link.waitForEvent((e) => e.event === 'blackout-end', 2_000)
    const later = await client(link)
    later.socket.write('x')
    await waitFor(() => later.text() === 'x', 'the echo of a later connection')
    expect(server.peers).toHaveLength(1)
  })

  it('stall (from the start): connected, but bytes stop both ways and no FIN or close reaches either end', async () => {
    const { server, link } = await setup('echo', { stall: true })
    const peer = await client(link)
    await waitFor(() => server.peers.length === 1, 'the target to be connected (TCP is up)')
    const target = server.peers[0]!
    peer.socket.write('lost?')
    target.socket.write('from the broker')
    peer.socket.end() // the client gives up: its FIN must not pass either
    const quiet = await quietFor(500, () => target.chunks.length > 0 || peer.chunks.length > 0 || target.ended || target.closed || peer.ended || peer.closed)
    expect(quiet, 'no bytes, no FIN, no close on either end').toBe(true)
    expect(link.events.map((e) => e.event)).toEqual(['listening', 'stall-start', 'open'])
    // resume() passes on what was held, the FIN after the bytes.
    link.resume()
    await waitFor(() => target.text() === 'lost?' && target.ended, 'the held bytes and FIN at the target')
    await waitFor(() => peer.text() === 'from the brokerlost?' && peer.ended, 'the held bytes and the echo at the client')
  })

  it('stall() and resume() from code; a reset during the stall is held too', async () => {
    const { server, link } = await setup('echo')
    const peer = await client(link)
    peer.socket.write('1')
    await waitFor(() => peer.text() === '1', 'the echo before the stall')
    link.stall()
    peer.socket.write('2')
    server.peers[0]!.socket.resetAndDestroy() // the broker gives up with an RST
    const quiet = await quietFor(400, () => peer.text() !== '1' || peer.closed || peer.error !== null)
    expect(quiet, 'the client sees neither bytes nor the reset during the stall').toBe(true)
    link.resume()
    await waitFor(() => peer.closed, 'the reset to reach the client after the stall')
    expect(peer.error).toBe('ECONNRESET')
    const close = await link.waitForEvent((e) => e.event === 'close')
    expect(close).toMatchObject({ by: 'target', how: 'rst' })
    expect(link.events.filter((e) => e.event.startsWith('stall')).map((e) => e.event)).toEqual(['stall-start', 'stall-end'])
  })

  it('a target that refuses: the client gets a reset, the log says why', async () => {
    const closed = await startServer('sink')
    const port = closed.port
    await closed.close()
    const link = await startWeakLink({ target: { port } })
    cleanups.push(() => link.stop())
    const peer = await client(link)
    await waitFor(() => peer.closed, 'the client to be reset')
    const close = await link.waitForEvent((e) => e.event === 'close')
    expect(close).toMatchObject({ by: 'target', how: 'rst', reason: 'ECONNREFUSED' })
  })

  it('stop() resets open connections, closes the listener and says so', async () => {
    const { link } = await setup('echo', { latencyMs: 1000, dropEveryMs: 60_000 })
    const peer = await client(link)
    peer.socket.write('pending')
    await link.stop()
    await waitFor(() => peer.closed, 'the client to be closed')
    expect(peer.chunks).toEqual([])
    expect(link.events.at(-1)).toMatchObject({ event: 'stopped', up: 0, down: 0 })
    expect(link.events.at(-2)).toMatchObject({ event: 'close', by: 'stop', how: 'rst' })
    await expect(connect(link.port)).rejects.toThrow(/ECONNREFUSED/)
    await link.stop() // idempotent
  })
})

// --- the command -------------------------------------------------------------------------

describe('steppelink sim link', () => {
  async function run(args: string[], until: Promise<unknown> = Promise.resolve()) {
    const out: string[] = []
    const err: string[] = []
    const code = await simLinkCommand(args, { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), until })
    return { code, out, err: err.join('\n') }
  }

  it.each([
    [['--target', '127.0.0.1'], /^steppelink sim link: --target: expected HOST:PORT such as 127\.0\.0\.1:1883 .*got '127\.0\.0\.1'\. See 'steppelink sim link --help'\.$/],
    [['--target', '127.0.0.1:99999'], /--target: port must be 1 to 65535, got 99999/],
    [['--target', '127.0.0.1:1883', '--listen', 'localhost'], /--listen: expected HOST:PORT/],
    [['--target', '127.0.0.1:1883', '--blackout', '60-30'], /--blackout: blackout must be DURATION@START or DURATION@START\/EVERY in seconds, e\.g\. 60@30 .*got '60-30'/],
    [['--target', '127.0.0.1:1883', '--blackout', '60@30', '--blackout', 'x@1'], /--blackout: .*got 'x'/],
    [['--target', '127.0.0.1:1883', '--profile', '3g'], /--profile: unknown profile '3g'; known profiles: perfect, gprs, edge, satellite, storm/],
    [['--target', '127.0.0.1:1883', '--latency=-5'], /--latency: latency \(ms\) must be a number like 30 or 2\.5, got '-5'/],
    [['--target', '127.0.0.1:1883', '--latency'], /Option '--latency <value>' argument missing/],
    [['--target', '127.0.0.1:1883', '--kbps', 'fast'], /--kbps: /],
    [['--target', '127.0.0.1:1883', '--seed', '1.5'], /--seed: must be a whole number, got '1\.5'/],
    [['--listen', '127.0.0.1:1884'], /--target HOST:PORT is required/],
    [['--target', '127.0.0.1:1883', '--lag', '5'], /Unknown option '--lag'/],
    [['--target', '127.0.0.1:1883', 'extra'], /unexpected argument 'extra'/],
  ])('%j: names what is wrong and exits 2', async (args, message) => {
    const r = await run(args)
    expect(r.code).toBe(2)
    expect(r.err).toMatch(message)
    expect(r.err).toMatch(/See 'steppelink sim link --help'\.$/)
    expect(r.out).toEqual([])
  })

  it('--help documents every option with its default and unit, and the profiles', async () => {
    const r = await run(['--help', '--target', 'nonsense'])
    expect(r.code).toBe(0)
    const help = r.out.join('\n')
    expect(help).toBe(simLinkHelp())
    for (const flag of ['--target', '--listen', '--profile', '--latency', '--jitter', '--kbps', '--drop-every', '--blackout', '--stall', '--seed', '--json', '--help']) {
      const line = help.split('\n').findIndex((l) => l.startsWith(`  ${flag}`))
      expect(line, flag).toBeGreaterThan(0)
      // The option's text (it may run over following indented lines) gives a default or says required.
      const text = help
        .split('\n')
        .slice(line, line + 4)
        .join(' ')
      expect(text, flag).toMatch(/\((required|default [^)]*|default: [^)]*)\)|this help/)
    }
    for (const [unit, flag] of [
      ['ms', '--latency'],
      ['ms', '--jitter'],
      ['kbit/s', '--kbps'],
      ['seconds', '--drop-every'],
      ['seconds', '--blackout'],
    ] as const) {
      expect(help.split(flag)[1]!.split('\n  --')[0], flag).toContain(unit)
    }
    for (const name of Object.keys(PROFILES)) expect(help).toMatch(new RegExp(`^  ${name} +`, 'm'))
    expect(help).toContain('gprs       2G data, as in the outer grassland: latency 500 ± 200 ms one way; 40 kbit/s down, 20 kbit/s up; no drops; no blackouts')
  })

  it('runs until told to stop, logging one JSON object per line', async () => {
    const server = await startServer('echo')
    cleanups.push(() => server.close())
    let stop = () => {}
    const until = new Promise<void>((resolve) => (stop = resolve))
    const out: string[] = []
    const running = simLinkCommand(['--target', `127.0.0.1:${server.port}`, '--profile', 'edge', '--latency', '5', '--jitter', '0', '--json'], {
      stdout: (t) => void out.push(t),
      stderr: (t) => void out.push(`stderr: ${t}`),
      until,
    })
    await waitFor(() => out.length > 0, 'the listening line')
    const listening = JSON.parse(out[0]!) as Extract<WeakLinkEvent, { event: 'listening' }>
    expect(listening).toMatchObject({ t: expect.any(Number), time: expect.any(Number), event: 'listening', conn: null, address: '127.0.0.1' })
    expect(listening.shape).toMatchObject({ latencyMs: 5, jitterMs: 0, downKbps: 200, upKbps: 100 })
    const peer = await connect(listening.port)
    peer.socket.write('hi')
    await waitFor(() => peer.text() === 'hi', 'the echo through the command')
    peer.socket.end()
    await waitFor(() => out.some((l) => l.includes('"event":"close"')), 'the close line')
    stop()
    expect(await running).toBe(0)
    const events = out.map((l) => JSON.parse(l) as WeakLinkEvent)
    expect(events.map((e) => e.event)).toEqual(['listening', 'open', 'close', 'stopped'])
    expect(events[1]).toMatchObject({ conn: 1, held: null })
  })

  it('logs text by default, with seconds since start', async () => {
    const server = await startServer('sink')
    cleanups.push(() => server.close())
    const r = await run(['--target', `127.0.0.1:${server.port}`, '--profile', 'storm', '--blackout', '60@30', '--blackout', '3600@600'])
    expect(r.code).toBe(0)
    expect(r.out[0]).toMatch(
      /^ +0\.\d{3} s {2}listening on 127\.0\.0\.1:\d+, forwarding to 127\.0\.0\.1:\d+; latency 500 ± 200 ms one way; 40 kbit\/s down, 20 kbit\/s up; a drop every 60 s; blackouts 60 s at 30 s, 3600 s at 600 s$/,
    )
    expect(r.out.at(-1)).toMatch(/^ +\d+\.\d{3} s {2}stopped; 0 B up, 0 B down in all$/)
  })

  it('cannot listen on a port in use: says so and exits 1', async () => {
    const server = await startServer('sink')
    cleanups.push(() => server.close())
    const r = await run(['--target', '127.0.0.1:1883', '--listen', `127.0.0.1:${server.port}`])
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE \(the port is taken; choose another with --listen\)/)
  })
})
