/**
 * Scenario 5: the terminal power-cycled with an unacknowledged event in its non-volatile
 * memory (a file, as flash would keep it):
 * - pressed while the cable is out, so nothing can acknowledge it; the power cut; a new
 *   boot over the same memory (boot counter +1); the cable back: the event goes again
 *   under its number and reaches the console once;
 * - the power cut right after a press, while the gateway stores it: the event may be on
 *   the gateway's disk already; the replay must then be taken as a duplicate ('event
 *   already stored') and the console must not see it twice after deduplication.
 * Scenario 8: two terminals on one line (addresses 1 and 2) pressing at once, in
 * interleaved bursts, also with noise 1e-4: each terminal's alarms all delivered, in
 * order per terminal, each attributed to its own terminal.
 * Issue 12: a second device on the line claims terminal 1's id from address 2, cancels
 * and presses: terminal 1's alarms are not cancelled and its next ones delivered; the
 * claimant's are delivered apart, under its own identity; the platform hears of it once.
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fileMemory, type NvState } from '../../device-sim/terminal.js'
import type { EventKind } from '../../protocol/messages.js'
import { seededRandom } from '../../protocol/random.js'
import type { LogLine } from '../helpers/gateway-process.js'
import { waitUntil } from '../helpers/system.js'
import { GATEWAY, logs, requestGatewayStatus, sleep, useLoop, type Loop, type Terminal } from './loop.js'

const KINDS: EventKind[] = ['emergency', 'fire', 'medical', 'panic']
const STORED = 'ALARM stored'
const ALREADY_STORED = 'event already stored (retransmitted or replayed)'
const SESSION_OPEN = 'terminal session open'

/** Index of the first gateway log line matching, or -1. */
const logIndex = (l: Loop, pred: (x: LogLine) => boolean): number => l.gateway.logs.findIndex(pred)

/**
 * Moves terminal 1 of the loop onto NV memory in a file (a power cycle: boot +1), keeping
 * what its memory held. Returns the file's path.
 */
async function onFileMemory(l: Loop): Promise<{ path: string; read: () => NvState }> {
  const path = join(l.dir, 'terminal-1-nv.json')
  const old = l.terminals[0]!
  await old.running.stop()
  fileMemory(path).save(old.memory.load()!)
  const t = l.addTerminal(1, fileMemory(path))
  await waitUntil(() => t.device.link.status.state === 'open', { timeoutMs: 15_000, what: 'the session of the terminal on file memory' })
  return { path, read: () => JSON.parse(readFileSync(path, 'utf8')) as NvState }
}

/**
 * Cuts the terminal's power: its runner stops at once (timers, port; bytes still waiting
 * for the line are lost), nothing more is said or saved. Then it boots again over the same
 * NV memory. Returns the new terminal.
 */
async function powerCycle(l: Loop, path: string): Promise<Terminal> {
  await l.terminals[0]!.running.stop()
  return l.addTerminal(1, fileMemory(path))
}

describe('fault: terminal power-cycled with an unacknowledged event (scenario 5)', () => {
  const loops = useLoop('power')

  it('pressed while unplugged, power cut (twice), cable back: sent again under their numbers and delivered once', async () => {
    const started = Date.now()
    const loop = await loops.start({ broker: 'aedes', serial: { backoff: { initialMs: 100, maxMs: 1_000 } } })
    const l = loop
    const nv = await onFileMemory(l)
    l.press(0, 'medical')
    await l.waitForAll()
    // The platform has it, so the gateway ACKed it; the ACK may still be on its way to the
    // terminal on a loaded machine. The scenario starts with #1 forgotten by the terminal.
    await waitUntil(() => nv.read().pending.length === 0, { timeoutMs: 10_000, what: "the terminal to take the gateway's ACK of #1" })

    await l.pty.kill()
    const lostBefore = l.terminals[0]!.running.stats().bytesLost
    const unacked = [l.press(0, 'fire'), l.press(0, 'emergency')]
    // The terminal tries to send them, into a pulled cable: they are in NV memory, and only there.
    await waitUntil(() => l.terminals[0]!.running.stats().bytesLost > lostBefore, { timeoutMs: 10_000, what: 'the terminal to send into the pulled cable' })
    expect(
      nv.read().pending.map((e) => e.number),
      'events in NV memory before the power cut',
    ).toEqual(unacked)
    const bootBefore = l.terminals[0]!.device.boot
    let t = await powerCycle(l, nv.path)
    expect(t.device.boot, 'boot counter after the power cut').toBe(bootBefore + 1)
    expect(
      t.device.pending.map((e) => e.number),
      'events the new boot found in NV memory',
    ).toEqual(unacked)
    // Another press and another power cut, the cable still out: three events of two boots wait.
    unacked.push(l.press(0, 'panic'))
    t = await powerCycle(l, nv.path)
    expect(t.device.boot, 'boot counter after the second power cut').toBe(bootBefore + 2)
    expect(
      t.device.pending.map((e) => e.number),
      'events the third boot found in NV memory',
    ).toEqual(unacked)
    expect(nv.read().lastEvent, 'last event number kept across the power cuts').toBe(unacked.at(-1))
    await l.pty.replug()

    const duplicates = await l.expectEveryAlarmDelivered()
    // The new boot's session, and the events sent again in it under their own numbers.
    const session = logIndex(l, (x) => x.msg === SESSION_OPEN && x.terminal === t.id && x.boot === t.device.boot)
    expect(session, `a session of boot ${t.device.boot} at the gateway`).toBeGreaterThanOrEqual(0)
    expect(l.gateway.logs[session], 'the gateway saw the terminal restart, with its last event number').toMatchObject({ restarted: true, lastEvent: unacked.at(-1) })
    for (const n of unacked) {
      const id = `${t.id}:${n}`
      const stored = l.gateway.logs.flatMap((x, i) => (x.msg === STORED && x.id === id ? [i] : []))
      expect(stored, `${id} stored once`).toHaveLength(1)
      expect(stored[0]!, `${id} stored after the restart`).toBeGreaterThan(session)
      const copies = l.events.filter((e) => e.type === 'alert' && e.id === id)
      expect(copies.length, `${id} at the console`).toBeGreaterThan(0)
      for (const c of copies) expect(c.type === 'alert' && c.number, `${id}: its number at the console`).toBe(n)
    }
    // Numbers go on from where the memory left them.
    const next = l.press(0)
    expect(next, 'the first event number after the restart').toBe(unacked.at(-1)! + 1)
    const more = await l.expectEveryAlarmDelivered()
    console.log(
      `[power cut, unplugged] ${l.terminals[0]!.pressed.length} alarms (${unacked.length} left in NV memory over 2 power cuts, sent again by boot ${t.device.boot}): ` +
        `all delivered once after dedup, in order, in ${Date.now() - started} ms; ${duplicates} duplicate copies reached the wire (${more} at the end)`,
    )
  })

  it('power cut just after a press, while the gateway stores it: a replay is a duplicate, never a second alarm', async () => {
    const started = Date.now()
    // Paced at 9600 baud, so a cut can fall in the middle of a frame, while the gateway
    // writes to disk, or while its ACK is on the way.
    const loop = await loops.start({ broker: 'aedes', serial: { pace: true, backoff: { initialMs: 100, maxMs: 1_000 } } })
    const l = loop
    const nv = await onFileMemory(l)

    // 1. Deterministic: the gateway has the event on disk and has answered, but the ACK
    //    never reaches the firmware (it stops hearing, as a dying supply browns out its
    //    UART): the event is still in NV memory when the power goes.
    let t = l.terminals[0]!
    t.device.receive = () => {}
    const deafNumber = l.press(0, 'fire')
    const deafId = `${t.id}:${deafNumber}`
    await waitUntil(() => logs(l, STORED).some((x) => x.id === deafId), { timeoutMs: 15_000, what: `the gateway to store ${deafId}` })
    t = await powerCycle(l, nv.path)
    expect(
      t.device.pending.map((e) => e.number),
      "the stored event is still in the terminal's NV memory",
    ).toContain(deafNumber)
    const cuts: { boot: number; pending: number[] }[] = [{ boot: t.device.boot, pending: [deafNumber] }]
    await waitUntil(() => logs(l, ALREADY_STORED).some((x) => x.id === deafId), {
      timeoutMs: 15_000,
      what: () => `the gateway to take the replay of ${deafId} as a duplicate; its last logs: ${JSON.stringify(l.gateway.logs.slice(-4))}`,
    })

    // 2. Cuts at random moments 0-60 ms after a press (before the frame is out, in the
    //    middle of it, while the gateway stores it, after the ACK), and cuts the moment
    //    the gateway's log says it has stored the press (its ACK races the power cut).
    //    Events left over from earlier cuts go again each time.
    const random = seededRandom(55)
    for (let i = 0; i < 10; i++) {
      const id = `${t.id}:${l.press(0, KINDS[i % KINDS.length]!)}`
      if (i % 2 === 0) await sleep(random() * 60)
      else await waitUntil(() => logs(l, STORED).some((x) => x.id === id), { timeoutMs: 15_000, what: `the gateway to store ${id}` })
      t = await powerCycle(l, nv.path)
      cuts.push({ boot: t.device.boot, pending: t.device.pending.map((e) => e.number) })
      await waitUntil(() => t.device.link.status.state === 'open', { timeoutMs: 15_000, what: `the session of boot ${t.device.boot}` })
    }
    l.press(0)
    const duplicates = await l.expectEveryAlarmDelivered()

    // The gateway stored each alarm once, whatever the cuts did.
    const stored = logs(l, STORED).map((x) => x.id as string)
    expect(new Set(stored).size, 'no alarm stored twice').toBe(stored.length)
    expect(stored.sort(), 'alarms stored').toEqual(t.pressed.map((n) => `${t.id}:${n}`).sort())
    // Each event the power cut left in NV memory went again after the new boot. If the
    // gateway had stored it before that boot's session, it must have said so: a duplicate.
    let replayedAsDuplicate = 0
    let replayedNew = 0
    for (const cut of cuts) {
      const session = logIndex(l, (x) => x.msg === SESSION_OPEN && x.terminal === t.id && x.boot === cut.boot)
      expect(session, `a session of boot ${cut.boot}`).toBeGreaterThanOrEqual(0)
      expect(l.gateway.logs[session], `boot ${cut.boot} seen as a restart`).toMatchObject({ restarted: true })
      for (const n of cut.pending) {
        const id = `${t.id}:${n}`
        const storedAt = logIndex(l, (x) => x.msg === STORED && x.id === id)
        if (storedAt < session) {
          replayedAsDuplicate++
          const dup = l.gateway.logs.findIndex((x, i) => i > session && x.msg === ALREADY_STORED && x.id === id)
          expect(dup, `${id} was stored before boot ${cut.boot}: its replay must be logged as a duplicate`).toBeGreaterThan(session)
        } else {
          replayedNew++
        }
      }
    }
    expect(replayedAsDuplicate, 'replays of events the gateway had already stored').toBeGreaterThan(0)
    const alreadyStored = logs(l, ALREADY_STORED).length
    console.log(
      `[power cut, race] ${cuts.length} power cuts, ${t.pressed.length} alarms: all delivered once after dedup, in order, in ${Date.now() - started} ms; ` +
        `${duplicates} duplicate copies reached the wire; events a cut left in NV memory, sent again after the boot: ${replayedNew} not yet at the gateway, ` +
        `${replayedAsDuplicate} already stored there (gateway logged '${ALREADY_STORED}' ${alreadyStored} times)`,
    )
  })
})

describe.each([0, 1e-4])('fault: two terminals on one line pressing at once, noise %s (scenario 8)', (noise) => {
  const loops = useLoop(`two-${noise}`)

  it("interleaved bursts from addresses 1 and 2: each terminal's alarms all delivered, in order", async () => {
    const started = Date.now()
    const random = seededRandom(noise === 0 ? 81 : 82)
    const loop = await loops.start({ broker: 'aedes', terminals: 2, serial: { noise, random: seededRandom(83) } })
    const l = loop
    expect(l.terminals.map((t) => t.device.options.address)).toEqual([1, 2])
    // Three bursts; in each, both terminals press 4 times, in a random interleaving, a
    // few ms apart or in the same instant.
    for (let burst = 0; burst < 3; burst++) {
      const order = [0, 0, 0, 0, 1, 1, 1, 1].sort(() => random() - 0.5)
      for (const [i, who] of order.entries()) {
        l.press(who, KINDS[(burst + i) % KINDS.length]!)
        if (random() < 0.6) await sleep(random() * 25)
      }
      await sleep(200 + random() * 300)
    }
    const duplicates = await l.expectEveryAlarmDelivered()

    // Each alarm attributed to the terminal that pressed it.
    for (const e of l.events) {
      if (e.type !== 'alert') continue
      const t = l.terminals.find((x) => x.id === e.terminal)
      expect(t, `terminal of ${e.id}`).toBeDefined()
      expect(e.address, `address of ${e.id}`).toBe(t!.device.options.address)
      expect(t!.pressed, `${e.id} pressed on ${t!.id}`).toContain(e.number)
    }
    const stored = logs(l, STORED)
    expect(stored, 'alarms stored').toHaveLength(l.terminals.reduce((n, t) => n + t.pressed.length, 0))
    for (const s of stored) expect(`SL-T-F${String(s.address)}`, `address of ${String(s.id)} at the gateway`).toBe(s.terminal)
    expect(logs(l, 'a different terminal answers at this address'), 'terminals mixed up').toEqual([])
    const status = await requestGatewayStatus(l)
    const terminals = status.terminals as { address: number; terminal: string; session: string }[]
    expect(terminals.map((x) => [x.address, x.terminal, x.session]).sort()).toEqual([
      [1, 'SL-T-F1', 'open'],
      [2, 'SL-T-F2', 'open'],
    ])
    const gw = status.serial as Partial<Record<string, number>>
    console.log(
      `[two terminals, noise ${noise}] ${l.terminals.map((t) => `${t.id}: ${t.pressed.length}`).join(', ')} alarms: all delivered once after dedup, in order per terminal, in ${Date.now() - started} ms; ` +
        `${duplicates} duplicate copies reached the wire; gateway LINK_BAD_CRC ${gw.LINK_BAD_CRC ?? 0}, LINK_BAD_COBS ${gw.LINK_BAD_COBS ?? 0}, retransmissions ${gw.retransmissions ?? 0}; ` +
        `bits flipped ${l.terminals.map((t) => t.running.stats().bitsFlippedOut + t.running.stats().bitsFlippedIn).join('+')}`,
    )
  })
})

describe('fault: a second device claims terminal 1’s id from address 2 (issue 12)', () => {
  const loops = useLoop('claimant')

  it('terminal 1’s alarms are never cancelled nor taken for replays; the claimant’s are delivered apart; one conflict at the platform', async () => {
    const l = await loops.start({ broker: 'aedes', terminals: 2 })
    await l.waitForSessions()
    const a = () => l.terminals[0]!
    expect(a().id).toBe('SL-T-F1')
    l.press(0, 'emergency')
    l.press(0, 'fire')
    await l.waitForAll()

    // The device at address 2 is replaced by one that says it is SL-T-F1, fresh from the
    // factory (boot 1, nothing assigned), and cancels, presses, and says HELLO again.
    await l.terminals[1]!.running.stop()
    const claimant = l.addClaimant(2, 'SL-T-F1')
    expect(claimant.id).toBe(`SL-T-F1@${GATEWAY}.a2`)
    await waitUntil(() => claimant.device.link.status.state === 'open', { timeoutMs: 15_000, what: "the claimant's session" })
    l.press(1, 'cancel')
    l.press(1, 'emergency')
    l.press(0, 'emergency') // terminal 1's next alarm, under a number the claimant also used
    l.press(1, 'panic')
    l.press(0, 'medical')
    await l.expectEveryAlarmDelivered()

    const alerts = l.events.flatMap((e) => (e.type === 'alert' && e.duplicate === undefined ? [e] : []))
    const own = alerts.filter((e) => e.terminal === 'SL-T-F1')
    expect(own.map((e) => [e.number, e.kind, e.address])).toEqual([
      [1, 'emergency', 1],
      [2, 'fire', 1],
      [3, 'emergency', 1],
      [4, 'medical', 1],
    ])
    const claimed = alerts.filter((e) => e.terminal === claimant.id)
    expect(claimed.map((e) => [e.id, e.kind, e.address])).toEqual([
      [`${claimant.id}:1`, 'cancel', 2],
      [`${claimant.id}:2`, 'emergency', 2],
      [`${claimant.id}:3`, 'panic', 2],
    ])
    for (const e of alerts) expect(e.cancels === undefined || !e.cancels.startsWith('SL-T-F1:'), `${e.id} cancels ${e.cancels}`).toBe(true)
    expect(logs(l, 'event already stored (retransmitted or replayed)'), 'an alarm taken for a replay').toEqual([])
    expect(
      l.gateway.logs.filter((x) => /started its event numbers again/.test(x.msg)),
      'a numbering reset',
    ).toEqual([])
    // Terminal 1 was shown only its own alarms' stages.
    expect([...a().device.stages.keys()].sort()).toEqual([1, 2, 3, 4])

    const conflicts = l.events.filter((e) => e.type === 'event' && e.kind === 'terminal-id-conflict' && e.duplicate === undefined)
    expect(conflicts).toHaveLength(1)
    expect(conflicts[0]).toMatchObject({ terminal: 'SL-T-F1', address: 2, class: 'trouble', code: 380 })
    expect(l.gateway.logs.filter((x) => x.level === 'warn' && /a second device claims it from address 2/.test(x.msg))).toHaveLength(1)
    const status = await requestGatewayStatus(l)
    const terminals = status.terminals as { address: number; terminal: string; claims?: string }[]
    expect(terminals.find((x) => x.address === 2)).toMatchObject({ terminal: claimant.id, claims: 'SL-T-F1' })
    expect(terminals.find((x) => x.address === 1)).toMatchObject({ terminal: 'SL-T-F1' })
  })
})
