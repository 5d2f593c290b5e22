/**
 * Fuzz properties of the decoder and the link ends, shared by the test run (100,000
 * cases, protocol/fuzz.test.ts) and the long run: `npm run fuzz -- --runs 1000000`.
 *
 * What must hold for any bytes whatsoever: no throw, no hang, memory bounded by
 * MAX_ENCODED, and no corrupted frame accepted (every frame decoded from a mutated
 * stream is one of the frames that were sent).
 */

import fc from 'fast-check'
import { fileURLToPath } from 'node:url'
import { FrameDecoder, MAX_ENCODED, encodeWire, type Frame } from '../protocol/codec.js'
import { GatewayLink, TerminalLink } from '../protocol/link.js'
import { gatewayMessages, linkControl, terminalMessages } from './vectors-gen.js'

const FRAMES: Frame[] = [...linkControl(), ...terminalMessages(), ...gatewayMessages()].map((v) => v.message!)

/** Splits `bytes` at the given cut points (chunking must never matter). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let prev = 0
  for (const p of points) {
    out.push(bytes.subarray(prev, p))
    prev = p
  }
  out.push(bytes.subarray(prev))
  return out
}

function decodeChunks(chunks: Uint8Array[]): Frame[] {
  const d = new FrameDecoder()
  const frames: Frame[] = []
  for (const c of chunks) {
    d.push(c)
    if (d.buffered > MAX_ENCODED) throw new Error(`decoder holds ${d.buffered} bytes, over ${MAX_ENCODED}`)
    for (let r = d.next(); r; r = d.next()) if (r.kind === 'frame') frames.push(r.frame)
  }
  return frames
}

const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ op: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
)
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never

function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  const b = [...input]
  for (const m of mutations) {
    if (b.length === 0) break
    const at = m.at % b.length
    switch (m.op) {
      case 'flip':
        b[at]! ^= 1 << m.bit
        break
      case 'set':
        b[at] = m.value
        break
      case 'insert':
        b.splice(at, 0, ...m.bytes)
        break
      case 'delete':
        b.splice(at, m.n)
        break
      case 'duplicate':
        b.splice(at, 0, ...b.slice(at, at + m.n))
        break
      case 'swap': {
        const w = m.with % b.length
        ;[b[at], b[w]] = [b[w]!, b[at]!]
        break
      }
    }
  }
  return new Uint8Array(b)
}

const frameArb = fc.record({
  index: fc.nat({ max: FRAMES.length - 1 }),
  seq: fc.integer({ min: 0, max: 255 }),
})

/** Random bytes, randomly chunked: no throw, bounded memory. */
export const randomBytesProperty = fc.property(fc.uint8Array({ maxLength: 1024 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
  decodeChunks(chunk(bytes, cuts))
})

/**
 * Valid frames, mutated on the way: every frame that comes out is byte for byte one that
 * went in. A corrupted frame accepted would show as a frame that was never sent.
 */
export const mutatedStreamProperty = fc.property(
  fc.array(frameArb, { minLength: 1, maxLength: 6 }),
  fc.array(mutation, { minLength: 1, maxLength: 6 }),
  fc.array(fc.nat(), { maxLength: 6 }),
  (picks, mutations, cuts) => {
    const sent = picks.map(({ index, seq }) => ({ ...FRAMES[index]!, seq }))
    const sentHex = new Set(sent.map((f) => Buffer.from(encodeWire(f)).toString('hex')))
    const stream = new Uint8Array(sent.flatMap((f) => [...encodeWire(f)]))
    for (const f of decodeChunks(chunk(mutate(stream, mutations), cuts))) {
      const hex = Buffer.from(encodeWire(f)).toString('hex')
      if (!sentHex.has(hex)) throw new Error(`accepted a frame that was never sent: ${JSON.stringify(f)}`)
    }
  },
)

/** Both link ends fed mutated traffic and random bytes: never throw, whatever arrives. */
export const linkEndsProperty = fc.property(
  fc.array(frameArb, { maxLength: 6 }),
  fc.array(mutation, { maxLength: 4 }),
  fc.uint8Array({ maxLength: 64 }),
  fc.integer({ min: 1, max: 254 }),
  (picks, mutations, noise, address) => {
    const gateway = new GatewayLink({ gateway: 'gw', boot: 1 })
    const terminal = new TerminalLink({ address, hello: () => ({ terminal: 'T', firmware: '1', capabilities: [], boot: 1, lastEvent: 0 }) })
    const frames = picks.map(({ index, seq }) => ({ ...FRAMES[index]!, seq, src: FRAMES[index]!.dst === 0 ? address : 0 }))
    const stream = mutate(new Uint8Array(frames.flatMap((f) => [...encodeWire(f)])), mutations)
    let now = 0
    for (const end of [gateway, terminal]) {
      now += 10
      end.receive(stream, now)
      now += 10
      end.receive(noise, now)
      now += 100_000
      end.tick(now)
      while (end.nextEvent()) {
        /* drain */
      }
      end.transmit()
    }
  },
)

export function runFuzz(runs: number, seed?: number): void {
  const share = Math.ceil(runs / 3)
  const opts = seed === undefined ? { numRuns: share } : { numRuns: share, seed }
  fc.assert(randomBytesProperty, opts)
  fc.assert(mutatedStreamProperty, opts)
  fc.assert(linkEndsProperty, opts)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2)
  const runsAt = args.indexOf('--runs')
  const seedAt = args.indexOf('--seed')
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 1_000_000
  const seed = seedAt >= 0 ? Number(args[seedAt + 1]) : Date.now() % 2 ** 31
  if (!Number.isInteger(runs) || runs < 1) {
    console.error(`--runs must be a positive whole number, got ${args[runsAt + 1]}`)
    process.exit(2)
  }
  const started = performance.now()
  console.log(`fuzzing the decoder and both link ends: ${runs} cases, seed ${seed}`)
  try {
    runFuzz(runs, seed)
  } catch (e) {
    console.error((e as Error).message)
    process.exit(1)
  }
  const s = (performance.now() - started) / 1000
  console.log(`ok: ${runs} cases in ${s.toFixed(1)} s (${Math.round(runs / s)} cases/s), no throw, memory bounded, no corrupted frame accepted`)
}
