/**
 * Which zstd the gateway compresses its batches with, found once at start. [MQTT-4.2]
 *
 * Why: @mongodb-js/zstd is a native binding with prebuilt binaries for some platforms
 * only. On 32-bit ARM (armv7 boards, a Raspberry Pi on a 32-bit OS) there is none and its
 * import throws; every batch then failed, logged at debug only, and a backlog of two or
 * more items never drained. So the gateway takes the first of:
 *
 *   1. @mongodb-js/zstd, if it loads;
 *   2. Node's own zstd (`node:zlib`), on a runtime that has it (Node.js >= 22.15 / 23.8;
 *      Node 20 has none);
 *   3. none: each batch goes as the bare encoded Batch map, which the contract allows and
 *      every receiver reads ([MQTT-4.2]).
 *
 * A candidate counts only if a probe batch it compresses comes back through decodeBatch,
 * the decoder the platform runs. Without zstd the gateway says so where someone will see
 * it: one error line at start, and `compression` in its status ([MQTT-3.7]). A compressor
 * that throws on one batch costs that batch its compression, never its delivery.
 *
 * Why here and not in protocol/: loading a native module, logging and the status are
 * this process's business; what a batch may be on the wire, and decoding it, stay in
 * protocol/mqtt.ts for everyone.
 */

import { isDeepStrictEqual, promisify } from 'node:util'
import zlib from 'node:zlib'
import { ZSTD_LEVEL, ZSTD_MAGIC, decodeBatch, encodeBatch, type Batch, type Encoding, type ZstdCompress } from '../protocol/mqtt.js'
import type { Log } from './gateway.js'
import { ReplyBudget } from './reply-budget.js'

export type ZstdVia = '@mongodb-js/zstd' | 'node:zlib'

/** How this gateway compresses its batches. */
export type BatchCompression = { codec: 'zstd'; via: ZstdVia; compress: ZstdCompress } | { codec: 'none'; error: string }

/** `compression` in the gateway status ([MQTT-3.7]); `pending` only until the finding settles, milliseconds after start. */
export type CompressionStatus = { codec: 'zstd'; via: ZstdVia; failures?: number; error?: string } | { codec: 'none'; error: string } | { codec: 'pending' }

/** Where zstd may come from, in order. Injectable, so that a test can make zstd unloadable. */
export interface ZstdLoaders {
  /** The native binding. Default: `import('@mongodb-js/zstd')`, which throws where it has no binary. */
  binding(): Promise<ZstdCompress>
  /** Node's built-in zstd, or null on a runtime without it. Default: `node:zlib`'s zstdCompress. */
  builtIn(): ZstdCompress | null
}

// @types/node 20 does not know zstd; Node.js 22.15 and 23.8 have it.
interface ZlibWithZstd {
  zstdCompress?: (data: Buffer, options: { params: Record<number, number> }, callback: (err: Error | null, out: Buffer) => void) => void
  constants: Record<string, number | undefined>
}

export const DEFAULT_ZSTD_LOADERS: ZstdLoaders = {
  async binding() {
    const { compress } = await import('@mongodb-js/zstd')
    return (encoded) => compress(encoded, ZSTD_LEVEL)
  },
  builtIn() {
    const z = zlib as unknown as ZlibWithZstd
    if (typeof z.zstdCompress !== 'function') return null
    const compress = promisify(z.zstdCompress)
    // ZSTD_c_compressionLevel is 100 in zstd.h, whatever Node calls it.
    const level = z.constants.ZSTD_c_compressionLevel ?? 100
    return (encoded) => compress(encoded, { params: { [level]: ZSTD_LEVEL } })
  },
}

const PROBE: Batch = { v: 1, id: 'probe:b0', gateway: 'probe', items: [] }

/** Compresses a probe batch and reads it back as the platform would; throws if that fails. */
async function probe(compress: ZstdCompress): Promise<void> {
  const frame = await encodeBatch(PROBE, 'cbor', compress)
  if (!ZSTD_MAGIC.every((b, i) => frame[i] === b)) throw new Error(`wrote ${frame.subarray(0, 4).toString('hex')}..., not a zstd frame`)
  const back = await decodeBatch(frame)
  if (!isDeepStrictEqual(back, PROBE)) throw new Error('a probe batch did not decompress to itself')
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!

/** The first zstd that loads and passes the probe, or none with what went wrong with each. Never rejects. */
export async function findCompression(loaders: Partial<ZstdLoaders> = {}): Promise<BatchCompression> {
  const { binding, builtIn } = { ...DEFAULT_ZSTD_LOADERS, ...loaders }
  const errors: string[] = []
  try {
    const compress = await binding()
    await probe(compress)
    return { codec: 'zstd', via: '@mongodb-js/zstd', compress }
  } catch (err) {
    errors.push(`@mongodb-js/zstd: ${message(err)}`)
  }
  try {
    const compress = builtIn()
    if (compress === null) throw new Error(`Node.js ${process.version} has no zstd (it has from 22.15 and 23.8)`)
    await probe(compress)
    return { codec: 'zstd', via: 'node:zlib', compress }
  } catch (err) {
    errors.push(`node:zlib: ${message(err)}`)
  }
  return { codec: 'none', error: errors.join('; ') }
}

export interface BatchEncoderOptions {
  /** How batches are compressed, or the finding of it. Default: findCompression() with the real loaders. */
  compression?: BatchCompression | Promise<BatchCompression>
  log: Log
  /** Clock of the rate limit on error lines, ms. */
  now: () => number
}

/**
 * What going without zstd costs, for the log lines. Measured on full batches (64 KiB of
 * items, CBOR): terminal statuses 12.1x, the test reports and relays of the backlog bench
 * 10.7x; a batch of two statuses only 1.8x.
 */
const COST = 'a full batch is about 10 times larger on the metered uplink'

/** Turns a Batch into the payload of the `batch` topic, compressed whenever it can be. [MQTT-4.2] */
export class BatchEncoder {
  readonly #found: Promise<BatchCompression>
  #compression: BatchCompression | null = null
  /** Batches sent uncompressed because the compressor threw, and the last reason. */
  #failures = 0
  #lastError: string | null = null
  // A token bucket as for error reports: the first failure is logged at once, then at
  // most one line a minute, which says how many it stands for.
  readonly #errorLines = new ReplyBudget({ burst: 1, perMinute: 1 })

  constructor(private readonly options: BatchEncoderOptions) {
    const found = (c: BatchCompression) => {
      this.#compression = c
      this.#announce(c)
      return c
    }
    const c = options.compression ?? findCompression()
    // Known already (gateway/main.ts finds it first): the status has it from the start.
    this.#found = c instanceof Promise ? c.then(found) : Promise.resolve(found(c))
  }

  /** The payload of `batch`: one zstd frame, or the bare encoded map where zstd is missing or failed. */
  async encode(batch: Batch, encoding: Encoding): Promise<Buffer> {
    const c = this.#compression ?? (await this.#found)
    if (c.codec === 'none') return encodeBatch(batch, encoding, null)
    return encodeBatch(batch, encoding, async (encoded) => {
      try {
        return await c.compress(encoded)
      } catch (err) {
        this.#failed(c.via, err, batch)
        return encoded
      }
    })
  }

  status(): CompressionStatus {
    const c = this.#compression
    if (c === null) return { codec: 'pending' }
    if (c.codec === 'none') return { codec: 'none', error: c.error }
    return { codec: 'zstd', via: c.via, ...(this.#failures > 0 ? { failures: this.#failures, error: this.#lastError! } : {}) }
  }

  #announce(c: BatchCompression): void {
    if (c.codec === 'zstd') {
      this.options.log.info({ compression: { codec: c.codec, via: c.via } }, `batches compressed with zstd (${c.via})`)
      return
    }
    this.options.log.error(
      { compression: { codec: c.codec, error: c.error } },
      `zstd cannot be loaded on this board, so batches go uncompressed: ${COST}. Alarms are not affected, the backlog still drains, and the platform reads both forms. ` +
        'To compress again, run the gateway on Node.js 22.15 or later (zstd built in), or install a build of @mongodb-js/zstd for this platform.',
    )
  }

  #failed(via: ZstdVia, err: unknown, batch: Batch): void {
    this.#failures += 1
    this.#lastError = message(err)
    const line = this.#errorLines.take(this.options.now())
    if (!line.send) return
    this.options.log.error(
      { via, err: this.#lastError, batch: batch.id, failures: this.#failures, ...(line.suppressed > 0 ? { suppressed: line.suppressed } : {}) },
      `zstd failed on a batch: it goes uncompressed (${COST}); the backlog keeps draining`,
    )
  }
}
