/**
 * Scenario 4, the serial side.
 * (a) Line noise at bit error rates 1e-4 and 1e-3 on the terminal's line, both directions,
 *     during a burst of presses: every alarm delivered, and no corrupted frame accepted:
 *     the gateway counts what it rejects (LINK_BAD_CRC, LINK_BAD_COBS ... in the `serial`
 *     counters of its status), no frame ever gets past the CRC wrong (no error code that
 *     can only come after a good CRC), and the console sees only the alarms pressed, with
 *     the kinds pressed.
 * (b) The serial device unplugged and replugged (socat killed and started again at the same
 *     paths) several times while the herder presses: every alarm delivered; the gateway
 *     logs each loss and reopens the port by itself.
 */

import { describe, expect, it } from 'vitest'
import { BitNoise } from '../../device-sim/serial-runner.js'
import type { EventKind } from '../../protocol/messages.js'
import { seededRandom } from '../../protocol/random.js'
import { waitUntil } from '../helpers/system.js'
import { logs, requestGatewayStatus, sleep, useLoop } from './loop.js'

const KINDS: EventKind[] = ['emergency', 'fire', 'medical', 'panic']
/** Wire errors a receiver counts before or at the CRC: what bit errors on the line make. */
const WIRE_ERRORS = ['LINK_BAD_CRC', 'LINK_BAD_COBS', 'LINK_TOO_SHORT', 'LINK_OVERSIZE'] as const
/**
 * Codes (and counters) only a frame whose CRC passed can produce: a corrupted frame that
 * slipped through the CRC would show up here (or, worse, be accepted). Our own ends never
 * send such frames, so each must stay at 0.
 */
const PAST_THE_CRC = ['LINK_BAD_VERSION', 'LINK_UNKNOWN_TYPE', 'LINK_BAD_CBOR', 'LINK_BAD_SCHEMA', 'LINK_BAD_HEADER', 'wrongDirection', 'refused'] as const

type Counters = Partial<Record<string, number>>
const sum = (c: Counters, keys: readonly string[]) => keys.reduce((n, k) => n + (c[k] ?? 0), 0)

/**
 * A seed whose first bit error on the terminal's output falls between `fromBit` and
 * `toBit`: after the start-up HELLOs (which may go out before the gateway has opened its
 * end, and be lost there), well within the burst. So even at 1e-4 at least one frame from
 * the terminal is corrupted on its way to the gateway in every run. (The runner draws the
 * output noise's first gap first; if it drew otherwise the test would still flip bits, only
 * perhaps not that early.)
 */
function seedForFirstFlip(ber: number, fromBit: number, toBit: number): number {
  for (let seed = 1; ; seed++) {
    const noise = new BitNoise(ber, seededRandom(seed))
    noise.apply(new Uint8Array(fromBit >> 3))
    if (noise.flipped > 0) continue
    noise.apply(new Uint8Array((toBit - fromBit) >> 3))
    if (noise.flipped > 0) return seed
  }
}

describe('fault: noise on the serial line (scenario 4a)', () => {
  const loops = useLoop('noise')

  it.each([
    { ber: 1e-4, presses: 16 },
    { ber: 1e-3, presses: 10 },
  ])('bit error rate $ber both ways, a burst of $presses presses: all delivered, nothing corrupted accepted', async ({ ber, presses }) => {
    const started = Date.now()
    const seed = seedForFirstFlip(ber, 2_400, 4_800)
    const loop = await loops.start({ broker: 'aedes', serial: { noise: ber, random: seededRandom(seed) } })
    const t = loop.terminals[0]!
    const atStart = { runner: t.running.stats(), gateway: (await requestGatewayStatus(loop)).serial as Counters }

    // The burst: a press every 0-120 ms, the kinds mixed.
    const random = seededRandom(seed + 1000)
    const kindOf = new Map<string, EventKind>()
    for (let i = 0; i < presses; i++) {
      const kind = KINDS[i % KINDS.length]!
      kindOf.set(`${t.id}:${loop.press(0, kind)}`, kind)
      await sleep(random() * 120)
    }
    const duplicates = await loop.expectEveryAlarmDelivered()

    // The console saw only the alarms pressed, each with the kind pressed: no phantom id,
    // no wrong kind, not even among the duplicate copies.
    const alerts = loop.events.filter((e) => e.type === 'alert')
    for (const a of alerts) {
      expect(kindOf.has(a.id), `alert ${a.id} was pressed`).toBe(true)
      expect(a.kind, `kind of ${a.id}`).toBe(kindOf.get(a.id))
      expect(a.terminal, `terminal of ${a.id}`).toBe(t.id)
      expect(`${a.terminal}:${a.number}`, `number of ${a.id}`).toBe(a.id)
    }
    expect(
      loop.events.filter((e) => e.type === 'error'),
      'payloads the console could not read',
    ).toEqual([])
    // The gateway stored each alarm once, with the kind pressed.
    const stored = logs(loop, 'ALARM stored')
    expect(stored.map((s) => s.id).sort(), 'alarms the gateway stored').toEqual([...kindOf.keys()].sort())
    for (const s of stored) expect(s.kind, `kind stored for ${String(s.id)}`).toBe(kindOf.get(s.id as string))

    // The counters: bit errors were made on the line and caught at the CRC (or before),
    // never past it.
    const gw = (await requestGatewayStatus(loop)).serial as Counters
    const term = t.device.link.stats() as Counters
    const runner = t.running.stats()
    const flippedOut = runner.bitsFlippedOut - atStart.runner.bitsFlippedOut
    const caught = sum(gw, WIRE_ERRORS) - sum(atStart.gateway, WIRE_ERRORS)
    console.log(
      `[noise ${ber}] ${presses} alarms delivered once after dedup, in order, in ${Date.now() - started} ms; ${duplicates} duplicate copies reached the wire; ` +
        `bits flipped terminal->gateway ${runner.bitsFlippedOut}, gateway->terminal ${runner.bitsFlippedIn}; ` +
        `gateway counted ${JSON.stringify(Object.fromEntries(WIRE_ERRORS.map((k) => [k, gw[k] ?? 0])))}, retransmissions ${gw.retransmissions ?? 0}, duplicates ${gw.duplicates ?? 0}; ` +
        `terminal counted ${JSON.stringify(Object.fromEntries(WIRE_ERRORS.map((k) => [k, term[k] ?? 0])))}, retransmissions ${term.retransmissions ?? 0}`,
    )
    expect(flippedOut, "bits flipped on the terminal's output during the burst (seeded)").toBeGreaterThan(0)
    expect(caught, 'frames the gateway rejected at the CRC or the framing during the burst').toBeGreaterThan(0)
    // Each flipped bit spoils at most two frames (a 0x00 made inside a frame splits it in
    // two): the frames rejected all come from the noise, not from the line or the harness.
    expect(caught, "the gateway's wire errors during the burst, at most 2 per flipped bit").toBeLessThanOrEqual(2 * flippedOut)
    if (runner.bitsFlippedIn > 0) expect(sum(term, WIRE_ERRORS), 'frames the terminal rejected').toBeGreaterThan(0)
    expect(sum(term, WIRE_ERRORS), "the terminal's wire errors, at most 2 per flipped bit").toBeLessThanOrEqual(2 * runner.bitsFlippedIn)
    for (const k of PAST_THE_CRC) {
      expect(gw[k] ?? 0, `gateway ${k}: a corrupted frame got past the CRC`).toBe(0)
      expect(term[k] ?? 0, `terminal ${k}: a corrupted frame got past the CRC`).toBe(0)
    }
  })
})

describe('fault: serial device unplugged and replugged (scenario 4b)', () => {
  const loops = useLoop('unplug')

  it('socat killed and restarted 5 times while pressing: all delivered, the gateway reopens by itself', async () => {
    const started = Date.now()
    // The terminal's own port reopens quickly (a firmware has no port to reopen at all);
    // the gateway keeps its defaults (0.5 s to 30 s), as deployed.
    const loop = await loops.start({ broker: 'aedes', serial: { backoff: { initialMs: 100, maxMs: 1_000 } } })
    const l = loop
    const random = seededRandom(4242)
    const closedLogs = () => logs(l, 'serial port closed (cable unplugged?); reopening').length
    const openLogs = () => logs(l, 'serial port open').length
    // How long the cable stays out each time, ms: 0 is a replug at once (faster than the
    // gateway's 2 s presence check); the last is long enough for several failed reopens.
    const outages = [600, 0, 1_200, 300, 3_000]
    let kind = 0
    for (const [cycle, outMs] of outages.entries()) {
      const closedBefore = closedLogs()
      const openBefore = openLogs()
      l.press(0, KINDS[kind++ % KINDS.length]!)
      await sleep(random() * 100) // unplug while that press is on its way, or just after
      await l.pty.kill()
      l.press(0, KINDS[kind++ % KINDS.length]!)
      if (outMs > 0) {
        // The gateway sees the device go (the pty hangs up) and says so.
        await waitUntil(() => closedLogs() > closedBefore, { timeoutMs: 10_000, what: `the gateway to log the port loss (cycle ${cycle})` })
        l.press(0, KINDS[kind++ % KINDS.length]!)
        await sleep(outMs)
      }
      await l.pty.replug()
      // ... and opens the port again by itself.
      await waitUntil(() => openLogs() > openBefore, {
        timeoutMs: 40_000,
        what: () => `the gateway to reopen the port (cycle ${cycle}); last logs: ${JSON.stringify(l.gateway.logs.slice(-3))}`,
      })
      expect(closedLogs(), `the gateway logged the loss of cycle ${cycle}`).toBeGreaterThan(closedBefore)
    }
    l.press(0)
    const duplicates = await l.expectEveryAlarmDelivered()
    const notFound = l.gateway.logs.filter((x) => x.code === 'SERIAL_NOT_FOUND').length
    console.log(
      `[unplug] ${outages.length} unplugs, ${l.terminals[0]!.pressed.length} alarms: all delivered once after dedup, in order, in ${Date.now() - started} ms; ` +
        `${duplicates} duplicate copies reached the wire; gateway logged ${closedLogs()} losses, ${notFound} failed reopens (SERIAL_NOT_FOUND), ${openLogs()} opens`,
    )
    expect(closedLogs(), 'port losses logged').toBeGreaterThanOrEqual(outages.length)
    expect(openLogs(), 'port opens logged: the first and one after each replug').toBeGreaterThanOrEqual(outages.length + 1)
    expect(notFound, 'failed reopens while the cable was out, said as SERIAL_NOT_FOUND').toBeGreaterThan(0)
    expect(l.gateway.child.exitCode, 'the gateway still runs').toBeNull()
  })
})
