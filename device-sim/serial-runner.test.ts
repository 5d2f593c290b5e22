import { constants, openSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import tty from 'node:tty'
import { afterEach, describe, expect, it } from 'vitest'
import type { SerialEvent } from '../io/serial-line.js'
import { seededRandom } from '../protocol/random.js'
import { openPtyPair, type PtyPair } from '../tests/helpers/pty.js'
import { requireTool, waitUntil } from '../tests/helpers/system.js'
import { BitNoise, runOnSerial, type SerialDevice } from './serial-runner.js'

requireTool('socat')

/** A device that sends what it is given with send(), and records what it receives. */
function fakeDevice() {
  let pending: Uint8Array | null = null
  const received: Uint8Array[] = []
  const d = {
    /** performance.now() when the runner took the bytes. */
    takenAt: null as number | null,
    received: () => new Uint8Array(Buffer.concat(received)),
    send(bytes: Uint8Array) {
      pending = bytes
    },
    receive: (bytes: Uint8Array) => void received.push(Buffer.from(bytes)),
    transmit() {
      const p = pending
      pending = null
      if (p) d.takenAt = performance.now()
      return p
    },
    tick: () => null,
  } satisfies SerialDevice & Record<string, unknown>
  return d
}

/** The other end of the cable: every chunk read, with the time it arrived. */
function listen(path: string) {
  const fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY)
  const stream = new tty.ReadStream(fd)
  stream.setRawMode(true)
  const chunks: { at: number; bytes: Buffer }[] = []
  stream.on('data', (b: Buffer) => chunks.push({ at: performance.now(), bytes: b }))
  stream.on('error', () => {})
  return {
    chunks,
    bytes: () => new Uint8Array(Buffer.concat(chunks.map((c) => c.bytes))),
    write: (bytes: Uint8Array) => new Promise<void>((resolve, reject) => stream.write(Buffer.from(bytes), (err) => (err ? reject(err) : resolve()))),
    close: () =>
      new Promise<void>((resolve) => {
        if (stream.closed) return resolve()
        stream.once('close', () => resolve())
        stream.destroy()
      }),
  }
}

function bitsDiffering(a: Uint8Array, b: Uint8Array): number {
  let n = 0
  for (let i = 0; i < a.length; i++) for (let x = a[i]! ^ b[i]!; x; x &= x - 1) n++
  return n
}

const randomBytes = (n: number, seed: number) => {
  const r = seededRandom(seed)
  return new Uint8Array(Array.from({ length: n }, () => Math.floor(r() * 256)))
}

describe('runOnSerial on a socat pair', () => {
  let pty: PtyPair
  const cleanup: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c()
    await pty?.close()
  })

  async function start(device: SerialDevice, options: Parameters<typeof runOnSerial>[1] extends infer O ? Omit<O, 'path'> : never = {}) {
    pty = await openPtyPair()
    const far = listen(pty.a)
    cleanup.push(() => far.close())
    const events: SerialEvent[] = []
    const running = runOnSerial(device, { path: pty.b, onSerialEvent: (e) => events.push(e), ...options })
    cleanup.push(() => running.stop())
    await waitUntil(() => running.line.state === 'open', { what: 'the port to open' })
    return { far, running, events }
  }

  it('without pacing, writes what the device has at once (the default: existing callers unchanged)', async () => {
    const bytes = randomBytes(300, 1)
    const device = fakeDevice()
    const { far, running } = await start(device)
    device.send(bytes)
    running.wake()
    await waitUntil(() => far.bytes().length >= bytes.length, { what: 'all bytes' })
    expect(far.bytes()).toEqual(bytes)
    expect(running.stats()).toMatchObject({ bytesOut: 300, bitsFlippedOut: 0, queuedOut: 0 })
  })

  it.each([
    { baud: 9600, bytes: 240 },
    { baud: 2400, bytes: 30 },
  ])('paces at the line rate, 10 bits a byte, in small chunks: $bytes bytes at $baud baud', async ({ baud, bytes: n }) => {
    const byteMs = 10_000 / baud
    const bytes = randomBytes(n, 2)
    const device = fakeDevice()
    const { far, running } = await start(device, { baud, pace: true })
    device.send(bytes)
    running.wake()
    await waitUntil(() => far.bytes().length >= n, { what: 'all bytes', timeoutMs: 10_000 })
    expect(far.bytes()).toEqual(bytes)
    const t0 = device.takenAt!
    // Never ahead of the line: by each arrival, at most the bytes the line could have sent.
    let total = 0
    for (const c of far.chunks) {
      total += c.bytes.length
      expect(total, `${total} bytes by ${(c.at - t0).toFixed(1)} ms`).toBeLessThanOrEqual((c.at - t0) / byteMs + 1e-6)
    }
    const last = far.chunks.at(-1)!.at - t0
    expect(last).toBeGreaterThanOrEqual(n * byteMs - 1e-6)
    // Generous: a loaded machine delays timers, it must not make the line 3 times slower.
    expect(last).toBeLessThan(n * byteMs * 3 + 500)
    expect(far.chunks.length).toBeGreaterThan(1)
  })

  it('flips bits at the given bit error rate in both directions, and counts them', async () => {
    const ber = 1e-3
    const n = 20_000 // 160,000 bits each way: about 160 flips, standard deviation about 12.6
    const out = randomBytes(n, 3)
    const device = fakeDevice()
    const { far, running } = await start(device, { noise: ber, random: seededRandom(4) })
    device.send(out)
    running.wake()
    await waitUntil(() => far.bytes().length >= n, { what: 'bytes out', timeoutMs: 10_000 })
    const input = randomBytes(n, 5)
    await far.write(input)
    await waitUntil(() => device.received().length >= n, { what: 'bytes in', timeoutMs: 10_000 })

    const stats = running.stats()
    const flippedOut = bitsDiffering(out, far.bytes())
    const flippedIn = bitsDiffering(input, device.received())
    expect(stats).toMatchObject({ bytesOut: n, bytesIn: n, bitsFlippedOut: flippedOut, bitsFlippedIn: flippedIn })
    const expected = n * 8 * ber
    const bound = 5 * Math.sqrt(expected) // 5 standard deviations
    for (const f of [flippedOut, flippedIn]) expect(Math.abs(f - expected), `${f} flips, expected ${expected}`).toBeLessThan(bound)
  })

  it('unplug(ms): closes the port, cannot reopen it for ms, then SerialLine reopens it by itself', async () => {
    const device = fakeDevice()
    const { far, running, events } = await start(device, { backoff: { initialMs: 20, maxMs: 100 } })
    const pulled = performance.now()
    running.unplug(300)
    expect(running.unplugged).toBe(true)
    expect(running.line.state).not.toBe('open')
    device.send(new Uint8Array([1, 2, 3]))
    running.wake()
    expect(running.stats().bytesLost).toBe(3)
    await waitUntil(() => running.line.state === 'open', { what: 'the port to reopen', timeoutMs: 5000 })
    expect(performance.now() - pulled).toBeGreaterThanOrEqual(300 - 5)
    expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(['open', 'closed', 'error', 'open']))
    expect(events.find((e) => e.kind === 'closed')).toMatchObject({ reason: expect.stringContaining('cable pulled') })
    expect(events.find((e) => e.kind === 'error')).toMatchObject({ code: 'SERIAL_NOT_FOUND' })
    device.send(new Uint8Array([4, 5, 6]))
    running.wake()
    await waitUntil(() => far.bytes().length >= 3, { what: 'bytes after the replug' })
    expect(far.bytes()).toEqual(new Uint8Array([4, 5, 6]))
  })

  it('a real unplug (socat stopped and started again at the same path): the port is reopened by itself', async () => {
    const device = fakeDevice()
    const { far, running, events } = await start(device, { backoff: { initialMs: 20, maxMs: 100 } })
    await far.close()
    await pty.kill()
    await waitUntil(() => running.line.state !== 'open', { what: 'the loss to be seen', timeoutMs: 5000 })
    await pty.replug()
    await waitUntil(() => running.line.state === 'open', { what: 'the port to reopen', timeoutMs: 5000 })
    const again = listen(pty.a)
    cleanup.push(() => again.close())
    device.send(new Uint8Array([7, 8, 9]))
    running.wake()
    await waitUntil(() => again.bytes().length >= 3, { what: 'bytes after the replug' })
    expect(again.bytes()).toEqual(new Uint8Array([7, 8, 9]))
    expect(events.filter((e) => e.kind === 'open').length).toBeGreaterThanOrEqual(2)
  })
})

describe('BitNoise', () => {
  it.each([1, 2, 3])('flips about BER x bits at 1e-3 (1,000,000 bits, seed %i), exactly the bits it counts', (seed) => {
    const noise = new BitNoise(1e-3, seededRandom(seed))
    const input = randomBytes(125_000, seed + 10)
    let flipped = 0
    // In chunks of frame size: the error rate belongs to the bit stream, not to each chunk.
    for (let i = 0; i < input.length; i += 25) {
      const chunk = input.subarray(i, i + 25)
      flipped += bitsDiffering(chunk, noise.apply(chunk))
    }
    expect(noise.bits).toBe(1_000_000)
    expect(noise.flipped).toBe(flipped)
    expect(Math.abs(flipped - 1000)).toBeLessThan(5 * Math.sqrt(1000))
  })

  it('never flips at 0, always at 1, and leaves its input alone', () => {
    const input = randomBytes(1000, 7)
    const copy = input.slice()
    expect(new BitNoise(0).apply(input)).toBe(input)
    const all = new BitNoise(1).apply(input)
    expect(all).toEqual(input.map((b) => b ^ 0xff))
    expect(input).toEqual(copy)
    expect(() => new BitNoise(1.5)).toThrow(RangeError)
  })
})
