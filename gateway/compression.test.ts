import { describe, expect, it } from 'vitest'
import { ZSTD_MAGIC, decodeBatch, encodePayload, referenceZstd, type Batch } from '../protocol/mqtt.js'
import { BatchEncoder, DEFAULT_ZSTD_LOADERS, findCompression, type BatchCompression } from './compression.js'
import type { Log } from './gateway.js'

const batch: Batch = {
  v: 1,
  id: 'gw-1:b7',
  gateway: 'gw-1',
  items: [
    {
      v: 1,
      id: 'SL-T-5:3',
      class: 'request',
      kind: 'callback',
      code: null,
      restore: false,
      gateway: 'gw-1',
      terminal: 'SL-T-5',
      address: 5,
      number: 3,
      time: { at: 1767252600000, estimated: false },
      received: 1767252600000,
      attempt: 1,
    },
  ],
}
const isZstd = (b: Buffer) => ZSTD_MAGIC.every((x, i) => b[i] === x)
const noBinding = () => Promise.reject(new Error("Cannot find module '@mongodb-js/zstd-linux-arm-gnueabihf'"))

function logger() {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = []
  const log = Object.fromEntries(
    (['debug', 'info', 'warn', 'error'] as const).map((level) => [level, (fields: Record<string, unknown>, msg: string) => lines.push({ level, msg, fields })]),
  ) as unknown as Log
  return { log, lines }
}

describe('findCompression: @mongodb-js/zstd, else node:zlib, else none [MQTT-4.2]', () => {
  it('takes @mongodb-js/zstd where it loads', async () => {
    const c = await findCompression()
    expect(c).toMatchObject({ codec: 'zstd', via: '@mongodb-js/zstd' })
    if (c.codec === 'zstd') expect(await decodeBatch(await c.compress(encodePayload(batch, 'cbor')))).toEqual(batch)
  })

  it("takes Node's own zstd when the binding cannot be loaded and the runtime has one", async () => {
    const c = await findCompression({ binding: noBinding, builtIn: () => referenceZstd })
    expect(c).toMatchObject({ codec: 'zstd', via: 'node:zlib' })
  })

  it('is none when neither loads, and says why for each', async () => {
    const c = await findCompression({ binding: noBinding, builtIn: () => null })
    expect(c).toEqual({
      codec: 'none',
      error: `@mongodb-js/zstd: Cannot find module '@mongodb-js/zstd-linux-arm-gnueabihf'; node:zlib: Node.js ${process.version} has no zstd (it has from 22.15 and 23.8)`,
    })
  })

  it('passes over a compressor that loads but does not write zstd frames the platform can read', async () => {
    const notZstd = async (b: Buffer) => b
    const broken = async (b: Buffer) => Buffer.concat([Buffer.from(ZSTD_MAGIC), b])
    const c = await findCompression({ binding: async () => notZstd, builtIn: () => broken })
    expect(c.codec).toBe('none')
    expect(c.codec === 'none' && c.error).toMatch(/^@mongodb-js\/zstd: wrote b9000461\.\.\., not a zstd frame; node:zlib: batch of \d+ bytes: damaged zstd frame/)
  })

  it("finds node:zlib's zstd exactly where the runtime has it (Node.js >= 22.15 / 23.8), and it writes frames decodeBatch reads", async () => {
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
    const has = major > 23 || (major === 23 && minor >= 8) || (major === 22 && minor >= 15)
    const builtIn = DEFAULT_ZSTD_LOADERS.builtIn()
    expect(builtIn !== null).toBe(has)
    if (builtIn) expect(await decodeBatch(await builtIn(encodePayload(batch, 'json')))).toEqual(batch)
  })
})

describe('BatchEncoder', () => {
  it('compresses with what it found, and says which in the status', async () => {
    const { log, lines } = logger()
    const e = new BatchEncoder({ compression: await findCompression(), log, now: () => 0 })
    const payload = await e.encode(batch, 'cbor')
    expect(isZstd(payload)).toBe(true)
    expect(await decodeBatch(payload)).toEqual(batch)
    expect(e.status()).toEqual({ codec: 'zstd', via: '@mongodb-js/zstd' })
    expect(lines.map((l) => [l.level, l.msg])).toEqual([['info', 'batches compressed with zstd (@mongodb-js/zstd)']])
  })

  it('without zstd, sends the bare encoded map, and logs one error at start that says what it costs and what to do', async () => {
    const { log, lines } = logger()
    let settle: (c: BatchCompression) => void = () => {}
    const e = new BatchEncoder({ compression: new Promise((resolve) => (settle = resolve)), log, now: () => 0 })
    expect(e.status()).toEqual({ codec: 'pending' })
    const encoding = e.encode(batch, 'json') // waits for the finding
    settle({ codec: 'none', error: '@mongodb-js/zstd: no binary' })
    expect((await encoding).toString()).toBe(encodePayload(batch, 'json').toString())
    expect(await e.encode(batch, 'cbor')).toEqual(encodePayload(batch, 'cbor'))
    expect(e.status()).toEqual({ codec: 'none', error: '@mongodb-js/zstd: no binary' })
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'error', fields: { compression: { codec: 'none', error: '@mongodb-js/zstd: no binary' } } })
    expect(lines[0]!.msg).toMatch(/batches go uncompressed: a full batch is about 10 times larger .*Node\.js 22\.15 or later .*@mongodb-js\/zstd for this platform/)
  })

  it('sends a batch whose compression throws uncompressed, and logs it at most once a minute with the count held back', async () => {
    const { log, lines } = logger()
    let now = 0
    let fail = true
    const compress = async (b: Buffer) => {
      if (fail) throw new Error('ZSTD_error_memory_allocation')
      return referenceZstd(b)
    }
    const e = new BatchEncoder({ compression: { codec: 'zstd', via: 'node:zlib', compress }, log, now: () => now })
    for (const at of [0, 10_000, 50_000, 61_000]) {
      now = at
      const payload = await e.encode(batch, 'cbor')
      expect(payload).toEqual(encodePayload(batch, 'cbor'))
    }
    const errors = lines.filter((l) => l.level === 'error')
    expect(errors.map((l) => l.fields)).toEqual([
      { via: 'node:zlib', err: 'ZSTD_error_memory_allocation', batch: 'gw-1:b7', failures: 1 },
      { via: 'node:zlib', err: 'ZSTD_error_memory_allocation', batch: 'gw-1:b7', failures: 4, suppressed: 2 },
    ])
    expect(e.status()).toEqual({ codec: 'zstd', via: 'node:zlib', failures: 4, error: 'ZSTD_error_memory_allocation' })
    fail = false
    expect(isZstd(await e.encode(batch, 'cbor'))).toBe(true)
  })
})
