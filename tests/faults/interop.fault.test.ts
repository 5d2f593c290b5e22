/**
 * Interop: a platform written against protocol/MQTT.md alone, without our code. It is the
 * platform of MQTT.md section 8 ("A platform in a few lines"): `mosquitto_sub` prints each
 * alert as its topic and its payload in hex (`-F '%t %x'`), a small CBOR decoder written
 * here from RFC 8949 (not cbor-x, not protocol/) reads it, and `mosquitto_pub` sends the
 * receipt as JSON. Run against the real gateway process (loop/loop.ts) on mosquitto
 * and on aedes, with the operator console of the loop closed, so that every receipt and
 * every answer the terminal sees comes from the shell platform.
 *
 * Needs `mosquitto_sub` and `mosquitto_pub` (Debian package mosquitto-clients).
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, expect, it } from 'vitest'
import { checkDelivery } from '../../loop/delivery.js'
import { reached } from '../../protocol/lifecycle.js'
import { waitUntil } from '../helpers/system.js'
import { useLoop, type BrokerKind, type Loop } from './loop.js'

// ---------------------------------------------------------------------------------------
// An independent CBOR decoder (RFC 8949) for the subset MQTT.md [MQTT-4.3] describes: maps,
// arrays, text, integers of any width (8-byte 0x1b/0x3b included), true/false/null, and
// floats (half, single, double). No tags, no indefinite lengths: those are errors.

function decodeCbor(bytes: Uint8Array): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  let pos = 0
  const take = (n: number): number => {
    if (pos + n > bytes.length) throw new Error(`CBOR: truncated at byte ${pos} (need ${n} more)`)
    pos += n
    return pos - n
  }
  const argument = (info: number): number => {
    if (info < 24) return info
    const width = [1, 2, 4, 8][info - 24]
    if (width === undefined) throw new Error(`CBOR: additional information ${info} is outside the subset`)
    let value = 0
    for (let at = take(width), i = 0; i < width; i++) value = value * 256 + bytes[at + i]!
    if (!Number.isSafeInteger(value)) throw new Error(`CBOR: integer beyond 2^53 at byte ${pos - width}`)
    return value
  }
  const half = (h: number): number => {
    const e = (h >> 10) & 31
    const f = h & 1023
    const magnitude = e === 0 ? f * 2 ** -24 : e === 31 ? (f ? NaN : Infinity) : (f + 1024) * 2 ** (e - 25)
    return h & 0x8000 ? -magnitude : magnitude
  }
  const item = (): unknown => {
    const head = bytes[take(1)]!
    const major = head >> 5
    const info = head & 31
    if (major === 7) {
      const simple: Record<number, unknown> = { 20: false, 21: true, 22: null, 23: undefined }
      if (info in simple) return simple[info]
      if (info === 25) return half(view.getUint16(take(2)))
      if (info === 26) return view.getFloat32(take(4))
      if (info === 27) return view.getFloat64(take(8))
      throw new Error(`CBOR: simple value ${info} is outside the subset`)
    }
    const n = argument(info)
    if (major === 0) return n
    if (major === 1) return -1 - n
    if (major === 2) return bytes.slice(take(n), pos)
    if (major === 3) return utf8.decode(bytes.subarray(take(n), pos))
    if (major === 4) return Array.from({ length: n }, () => item())
    if (major === 5) {
      const map: Record<string, unknown> = {}
      for (let i = 0; i < n; i++) {
        const key = item()
        if (typeof key !== 'string') throw new Error(`CBOR: map key ${String(key)} is not text`)
        map[key] = item()
      }
      return map
    }
    throw new Error(`CBOR: tag (major type 6) at byte ${pos - 1} is outside the subset`)
  }
  const value = item()
  if (pos !== bytes.length) throw new Error(`CBOR: ${bytes.length - pos} bytes after the item`)
  return value
}

/** [MQTT-4.3]: a CBOR map starts with a0-bf; anything else is JSON. */
function decodePayload(raw: Uint8Array): Record<string, unknown> {
  const first = raw[0] ?? 0
  return (first >= 0xa0 && first <= 0xbf ? decodeCbor(raw) : JSON.parse(Buffer.from(raw).toString('utf8'))) as Record<string, unknown>
}

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))

// ---------------------------------------------------------------------------------------
// The shell platform of MQTT.md section 8, driven from here.

const MOSQUITTO_CLIENTS_INSTALL = 'apt-get update && apt-get install -y mosquitto-clients'

function requireMosquittoClients(): void {
  for (const tool of ['mosquitto_sub', 'mosquitto_pub']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) throw new Error(`${tool} is missing: ${MOSQUITTO_CLIENTS_INSTALL}`)
  }
}

/** Contact ID codes of the alarm kinds, from the table of [MQTT-3.3]. */
const MQTT_MD_CODES: Record<string, number> = { medical: 100, emergency: 101, fire: 110, panic: 120, cancel: 406 }

interface Copy {
  topic: string
  encoding: 'cbor' | 'json'
  alert: Record<string, unknown>
  at: number
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

class ShellPlatform {
  /** Every copy of every alert, in arrival order. */
  readonly copies: Copy[] = []
  /** Ids in order of first arrival. */
  readonly order: string[] = []
  /** mosquitto_pub runs for receipts: exit code and command. */
  readonly receipts: { code: number | null; stderr: string; command: Record<string, unknown> }[] = []
  readonly undecodable: string[] = []
  #sub: ChildProcess | null = null
  #stderr = ''
  #publishing: Promise<unknown> = Promise.resolve()

  constructor(
    readonly port: number,
    /** `-u USER -P PASSWORD`: the platform's account on the broker [MQTT-2.7]. */
    readonly auth: readonly string[],
    readonly clientId = 'platform-110',
  ) {}

  /** `mosquitto_pub -h broker -q 1 -t TOPIC -m JSON`, as in MQTT.md section 8. */
  async pub(topic: string, command: Record<string, unknown>): Promise<Run> {
    return run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(this.port), ...this.auth, '-q', '1', '-t', topic, '-m', JSON.stringify(command)])
  }

  get #args(): string[] {
    return ['-h', '127.0.0.1', '-p', String(this.port), ...this.auth, '-q', '1', '-c', '-i', this.clientId, '-t', 'steppelink/v1/gw/+/alert']
  }

  /**
   * Makes the persistent session and its subscription (`-E`: exit once subscribed), so
   * that alerts published before `read()` connects are kept for it by the broker.
   */
  async makeSession(): Promise<this> {
    const made = await run('mosquitto_sub', [...this.#args, '-E'])
    if (made.code !== 0) throw new Error(`mosquitto_sub -E failed (${made.code}): ${made.stderr}`)
    return this
  }

  async start(): Promise<this> {
    await this.makeSession()
    return this.read()
  }

  /** The platform of section 8: `mosquitto_sub ... -c -i ID -t ... -F '%t %x'`, a line per alert. */
  read(): this {
    const sub = spawn('mosquitto_sub', [...this.#args, '-F', '%t %x'], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#sub = sub
    sub.stderr!.setEncoding('utf8').on('data', (s: string) => (this.#stderr = (this.#stderr + s).slice(-4000)))
    createInterface({ input: sub.stdout! }).on('line', (line) => this.#line(line))
    return this
  }

  #line(line: string): void {
    const [topic, hexPayload] = line.trim().split(' ', 2)
    if (!topic || !hexPayload) return
    const raw = hex(hexPayload)
    let alert: Record<string, unknown>
    try {
      alert = decodePayload(raw)
    } catch (e) {
      this.undecodable.push(`${line}: ${(e as Error).message}`)
      return
    }
    const id = String(alert.id)
    if (!this.copies.some((c) => c.alert.id === id)) this.order.push(id)
    this.copies.push({ topic, encoding: raw[0]! >= 0xa0 && raw[0]! <= 0xbf ? 'cbor' : 'json', alert, at: Date.now() })
    // A receipt for every copy, each with a new command id [MQTT-4.10] [MQTT-4.12], one at a time as the Python loop does.
    const command = { v: 1, id: randomUUID(), type: 'receipt', ids: [id] }
    const cmdTopic = `${topic.slice(0, topic.lastIndexOf('/'))}/cmd`
    this.#publishing = this.#publishing.then(async () => {
      const r = await this.pub(cmdTopic, command)
      this.receipts.push({ code: r.code, stderr: r.stderr, command })
    })
  }

  firstCopy(id: string): Copy | undefined {
    return this.copies.find((c) => c.alert.id === id)
  }

  describe(): string {
    return `shell platform: ${this.order.length} alerts, ${this.copies.length} copies, ${this.receipts.length} receipts; mosquitto_sub stderr: ${this.#stderr.trim() || '(none)'}`
  }

  /** Stops reading (every line printed so far is handled), then waits for the receipts in flight. */
  async stop(): Promise<void> {
    const sub = this.#sub
    this.#sub = null
    if (sub && sub.exitCode === null && sub.signalCode === null) {
      const closed = new Promise((resolve) => sub.once('close', resolve))
      sub.kill('SIGTERM')
      await closed
    }
    await this.#publishing.catch(() => {})
  }
}

/** The platform's user name and password as mosquitto_sub and mosquitto_pub take them (`-u`, `-P`) [MQTT-2.7]. */
const authArgs = (loop: Loop): string[] => ['-u', loop.platformCredentials.username, '-P', loop.platformCredentials.password]

/** One retained or next message on `topic`, decoded (`-C 1 -W` seconds). */
async function subscribeOnce(port: number, auth: readonly string[], topic: string, timeoutS: number): Promise<{ topic: string; payload: Record<string, unknown> } | null> {
  const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), ...auth, '-q', '1', '-t', topic, '-F', '%t %x', '-C', '1', '-W', String(timeoutS)], (timeoutS + 5) * 1000)
  const [t, h] = r.stdout.trim().split(' ', 2)
  if (!t || !h) return null
  return { topic: t, payload: decodePayload(hex(h)) }
}

// ---------------------------------------------------------------------------------------

describe('interop: the decoder of this file reads MQTT.md', () => {
  it('decodes every CBOR example of MQTT.md section 7 to its JSON line', () => {
    const md = readFileSync(join(import.meta.dirname, '..', '..', 'protocol', 'MQTT.md'), 'utf8').split('\n')
    let checked = 0
    for (let i = 0; i < md.length; i++) {
      if (!md[i]!.startsWith('json  ') || !md[i + 1]?.startsWith('cbor  ')) continue
      // A signed command's two lines are two payloads, each with a body of its own encoding [MQTT-5.12].
      if (md[i - 1]?.startsWith('SignedCommand ')) continue
      const json = JSON.parse(md[i]!.slice(6)) as unknown
      let h = md[i + 1]!.slice(6)
      for (let j = i + 2; j < md.length && /^\s+[0-9a-f]{2}( [0-9a-f]{2})*\s*$/.test(md[j]!); j++) h += ` ${md[j]}`
      expect(decodeCbor(hex(h)), `example at MQTT.md line ${i + 1}`).toEqual(json)
      checked++
    }
    expect(checked, 'MQTT.md section 7 has CBOR examples').toBeGreaterThanOrEqual(15)
  })

  it('reads the encodings [MQTT-4.3] says a receiver must accept, and refuses the rest', () => {
    expect(decodeCbor(hex('b9 00 02 61 61 01 61 62 f6'))).toEqual({ a: 1, b: null }) // two-byte map head
    expect(decodeCbor(hex('1b 00 00 01 9b 78 76 a4 c0'))).toBe(1767252600000)
    expect(decodeCbor(hex('3b 00 00 00 00 00 00 00 00'))).toBe(-1)
    expect(decodeCbor(hex('fb 42 79 b7 87 6a 4c 00 00'))).toBe(1767252600000) // a time written as a double
    expect(decodeCbor(hex('f9 3c 00'))).toBe(1)
    expect(decodeCbor(hex('f9 c4 00'))).toBe(-4)
    expect(decodeCbor(hex('fa 47 c3 50 00'))).toBe(100000)
    expect(decodeCbor(hex('83 f5 f4 20'))).toEqual([true, false, -1])
    expect(decodeCbor(hex('a1 63 e6 9a b4 62 c3 a9'))).toEqual({ 暴: 'é' })
    expect(() => decodeCbor(hex('a1 61 76 01 00'))).toThrow(/after the item/)
    expect(() => decodeCbor(hex('b9 00 02 61 76'))).toThrow(/truncated/)
    expect(() => decodeCbor(hex('d9 d9 f7 a0'))).toThrow(/tag/)
    expect(() => decodeCbor(hex('1b 00 20 00 00 00 00 00 01'))).toThrow(/2\^53/)
  })
})

describe.each<[BrokerKind, 'cbor' | 'json']>([
  ['mosquitto', 'cbor'],
  ['aedes', 'cbor'],
  ['mosquitto', 'json'],
])('interop: the shell platform of MQTT.md section 8 against the gateway (%s, %s payloads)', (broker, encoding) => {
  let platform: ShellPlatform | null = null
  const loops = useLoop(`interop-${broker}-${encoding}`, async () => {
    await platform?.stop()
    platform = null
  })

  it('reads every alarm id, kind and code, and its receipts move the terminal to received', async () => {
    requireMosquittoClients()
    // Unsigned: the shell platform sends plain commands, as a platform without a key does.
    const loop = await loops.start({ broker, gatewayArgs: encoding === 'json' ? ['--encoding', 'json'] : [], signed: false })
    // From here the only platform is the shell one: no receipt comes from our console.
    await loop.console.close()
    platform = await new ShellPlatform(loop.broker.port, authArgs(loop)).makeSession()
    const t = loop.terminals[0]!

    // Control: with no platform reading, the first alarm stops at `sent`; the broker keeps
    // it in the platform's persistent session (-c -i), and the receipt comes when it reads.
    const first = loop.press(0, 'emergency')
    await waitUntil(() => t.device.stages.get(first) === 'sent', { timeoutMs: 10_000, what: () => `terminal showing sent, shows ${t.device.stages.get(first)}` })
    await new Promise((r) => setTimeout(r, 500))
    expect(t.device.stages.get(first), 'no receipt without the shell platform').toBe('sent')
    platform.read()

    const kinds = ['emergency', 'emergency', 'fire', 'medical', 'panic', 'emergency', 'cancel', 'fire', 'emergency'] as const
    let callback = 0
    for (const [i, kind] of kinds.entries()) {
      if (i === 0) continue // pressed above
      loop.press(0, kind)
      if (i === 4) {
        // A call-back request between the alarms: class request, never on `alert`.
        callback = t.device.press('callback').number
        t.running.wake()
      }
      await new Promise((r) => setTimeout(r, 30))
    }
    const expected = t.pressed.map((n) => `${t.id}:${n}`)
    await waitUntil(() => expected.every((id) => platform!.order.includes(id)) && t.pressed.every((n) => reached(t.device.stages.get(n), 'received')), {
      timeoutMs: 60_000,
      what: () => `every alarm at the shell platform and received at the terminal; ${platform!.describe()}; terminal: ${t.pressed.map((n) => `${n}=${t.device.stages.get(n)}`).join(' ')}`,
    })
    await platform.stop()

    expect(platform.undecodable, 'every payload decodes').toEqual([])
    expect(checkDelivery([t], platform.order), 'the delivery promise, at the shell platform').toEqual([])
    expect(platform.order).not.toContain(`${t.id}:${callback}`)
    for (const [i, n] of t.pressed.entries()) {
      const { alert, topic, encoding: seen } = platform.firstCopy(`${t.id}:${n}`)!
      expect(topic).toBe('steppelink/v1/gw/gw-fault/alert')
      expect(seen, `payload encoding of ${alert.id}`).toBe(encoding)
      expect(alert).toMatchObject({ v: 1, id: `${t.id}:${n}`, class: 'alarm', kind: kinds[i], code: MQTT_MD_CODES[kinds[i]!], restore: false })
      expect(alert).toMatchObject({ gateway: 'gw-fault', terminal: t.id, address: 1, number: n })
      expect(alert.attempt).toBeGreaterThanOrEqual(1)
      expect(['stored', 'sent', 'unconfirmed']).toContain(alert.stage)
      expect(typeof (alert.time as { at: unknown }).at).toBe('number')
      expect((alert.time as { at: number }).at, 'UNIX ms: an 8-byte integer in CBOR').toBeGreaterThan(2 ** 32)
      expect(t.device.stages.get(n), `terminal shows ${alert.id}`).toBe('received')
    }
    expect(platform.receipts.length, 'a receipt for every copy').toBe(platform.copies.length)
    expect(
      platform.receipts.filter((r) => r.code !== 0),
      'every mosquitto_pub succeeded',
    ).toEqual([])
    console.log(
      `[interop ${broker}/${encoding}] ${expected.length} alarms read by mosquitto_sub + an independent decoder, ` +
        `${platform.copies.length} copies, ${platform.receipts.length} receipts by mosquitto_pub; terminal: all received`,
    )
  })
})

describe.each<BrokerKind>(['mosquitto', 'aedes'])('interop: the demo happy path by hand with mosquitto_pub (%s)', (broker) => {
  let platform: ShellPlatform | null = null
  const loops = useLoop(`interop-pub-${broker}`, async () => {
    await platform?.stop()
    platform = null
  })

  it('press, receipt, acknowledged, dispatched, resolved; a bad command gets a Reply', async () => {
    requireMosquittoClients()
    const loop = await loops.start({ broker, signed: false })
    await loop.console.close()
    const port = loop.broker.port
    const auth = authArgs(loop)
    platform = await new ShellPlatform(port, auth).start()
    const t = loop.terminals[0]!
    const cmd = 'steppelink/v1/gw/gw-fault/cmd'

    // Liveness from the retained state ([MQTT-2.3]; section 8's second script).
    const state = await subscribeOnce(port, auth, 'steppelink/v1/gw/+/state', 5)
    expect(state?.topic).toBe('steppelink/v1/gw/gw-fault/state')
    expect(state?.payload).toMatchObject({ v: 1, type: 'birth', gateway: 'gw-fault', online: true, encoding: 'cbor' })
    expect(typeof state?.payload.session).toBe('number')

    // Rejected commands come back on `reply`: watch it for the whole run.
    // A persistent session made first (-E), so nothing published before the reader connects is lost.
    const replyArgs = ['-h', '127.0.0.1', '-p', String(port), ...auth, '-q', '1', '-c', '-i', 'platform-110-replies', '-t', 'steppelink/v1/gw/+/reply']
    expect((await run('mosquitto_sub', [...replyArgs, '-E'])).code).toBe(0)
    const replies = spawn('mosquitto_sub', [...replyArgs, '-F', '%t %x'], { stdio: ['ignore', 'pipe', 'ignore'] })
    const replyPayloads: Record<string, unknown>[] = []
    createInterface({ input: replies.stdout }).on('line', (l) => replyPayloads.push(decodePayload(hex(l.split(' ')[1] ?? ''))))
    try {
      const started = Date.now()
      const timeline: string[] = []
      const reach = async (stage: string, n: number) => {
        await waitUntil(() => t.device.stages.get(n) === stage, { timeoutMs: 20_000, what: () => `terminal showing ${stage}, shows ${t.device.stages.get(n)}; ${platform!.describe()}` })
        timeline.push(`${String(Date.now() - started).padStart(5)} ms ${stage}`)
      }

      const n = loop.press(0, 'emergency')
      const id = `${t.id}:${n}`
      await reach('received', n)
      expect(platform.firstCopy(id)?.alert).toMatchObject({ kind: 'emergency', code: 101 })

      const pub = async (command: Record<string, unknown>) => {
        const r = await platform!.pub(cmd, { v: 1, id: `c-${randomUUID()}`, ...command })
        expect(r.code, `mosquitto_pub ${JSON.stringify(command)}: ${r.stderr}`).toBe(0)
      }
      await pub({ type: 'acknowledged', alert: id, by: '110 centre: Officer Bao' })
      await reach('acknowledged', n)
      expect(t.device.alerts.get(n)?.text).toBe('110 centre: Officer Bao')
      await pub({ type: 'dispatched', alert: id, unit: 'Patrol car 3, Abag', eta: 95 })
      await reach('dispatched', n)
      expect(t.device.alerts.get(n)).toMatchObject({ text: 'Patrol car 3, Abag', eta: 95 })
      await pub({ type: 'resolved', alert: id, text: 'Taken to the banner hospital' })
      await reach('resolved', n)
      expect(t.device.alerts.get(n)?.text).toBe('Taken to the banner hospital')
      expect(replyPayloads, 'no command of the happy path was rejected').toEqual([])

      // A command the gateway does not know: rejected with a Reply, as [MQTT-5.2] shows.
      await platform.pub(cmd, { v: 1, id: 'c-interop-bad', type: 'reboot' })
      await waitUntil(() => replyPayloads.length > 0, { timeoutMs: 10_000, what: 'a Reply on steppelink/v1/gw/gw-fault/reply' })
      expect(replyPayloads[0]).toMatchObject({ v: 1, type: 'error', gateway: 'gw-fault', command: 'c-interop-bad', code: 'CMD_UNKNOWN_TYPE', topic: cmd })
      expect(t.device.stages.get(n)).toBe('resolved')
      console.log(`[interop happy path ${broker}] ${timeline.join(', ')}`)
    } finally {
      if (replies.exitCode === null && replies.signalCode === null) {
        const exited = new Promise((resolve) => replies.once('exit', resolve))
        replies.kill('SIGTERM')
        await exited
      }
    }
  })
})
