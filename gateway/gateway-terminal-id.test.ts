/**
 * Issue 12, "Seen on the attacker's bench": on the serial line a second device claimed
 * another terminal's id from another address; its fake cancels were filed under that
 * terminal, and the real terminal's next emergency was dropped. The gateway binds a
 * terminal id to the address it was first heard at, files a second claimant's events
 * apart, tells the platform once, and keeps the binding across a restart; a technician
 * moves it with `steppelink terminals rebind`. [LINK-7.4]
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { terminalsCommand } from '../cli/terminals-command.js'
import { encodeWire } from '../protocol/codec.js'
import { OWN, rig, send, warmUpBatches } from './gateway.suite.js'
import { KnownTerminals } from './known-terminals.js'
import { SqliteStore } from './sqlite-store.js'

beforeAll(warmUpBatches)

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
function storeDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'steppelink-serialid-'))
  dirs.push(d)
  return d
}
const onDisk = (dir: string) => new SqliteStore({ path: join(dir, 'gateway.db'), freeSpace: () => 1e12 })

/** A HELLO from `address` claiming `terminal`, as bytes on the line (a new session number each time). */
function hello(address: number, terminal: string, session: number, boot = 1, lastEvent = 0): Uint8Array {
  return encodeWire({ dst: 0, src: address, seq: 0, message: { type: 'HELLO', terminal, firmware: '1.0', capabilities: [], boot, lastEvent, session } })
}

describe('issue 12: a second device claims terminal A’s id from another address', () => {
  it('never acts as A: its cancel cancels nothing of A’s, A’s next emergency is published and shown its own stages, and the platform hears of it once', async () => {
    // Terminal A (SL-T-5) at address 5, in its fifth boot.
    const r = rig({ terminal: { boot: 5 } })
    await r.run(2_000)
    r.press('emergency') // A's #1
    await r.run(5_000, () => r.uplink('/alert').length > 0)
    send(r, OWN, { id: 'rc1', type: 'receipt', ids: ['SL-T-5:1'] })
    send(r, OWN, { id: 'ak1', type: 'acknowledged', alert: 'SL-T-5:1', by: 'Bao' })
    await r.run(2_000)
    expect(r.stageNames(1).at(-1)).toBe('acknowledged')

    // The attacker at address 7 says it is SL-T-5, fresh from the factory (boot 1, nothing
    // assigned: the old way this started a new numbering for A), cancels, and takes A's
    // next number and one far ahead (the old way A's next number fell below the window).
    const claimant = r.addTerminal({ address: 7, terminal: 'SL-T-5', boot: 1, lastEvent: 0 })
    await r.run(3_000, () => claimant.open())
    expect(claimant.open()).toBe(true)
    claimant.press('cancel', 1)
    claimant.press('emergency', 2)
    claimant.press('test', 5_000)
    await r.run(10_000, () => r.uplink('/alert').length >= 3)
    await r.run(2_000)

    // A's alarm is not cancelled: the cancel is the claimant's own, under its own identity.
    const alerts = r.uplink('/alert')
    const fake = alerts.filter((a) => a.terminal !== 'SL-T-5')
    expect(fake.map((a) => [a.id, a.kind, a.claims, a.address])).toEqual([
      ['SL-T-5@gw-1.a7:1', 'cancel', 'SL-T-5', 7],
      ['SL-T-5@gw-1.a7:2', 'emergency', 'SL-T-5', 7],
    ])
    expect(fake[0]!.cancels).toBeUndefined()
    expect(alerts.some((a) => a.cancels === 'SL-T-5:1')).toBe(false)
    expect(r.store.get('SL-T-5:1')?.stage).toBe('acknowledged')
    // A's numbering was not touched: no reset, the same epoch.
    expect((await r.items()).filter((i) => i.kind === 'terminal-reset')).toEqual([])
    expect(r.store.numbering('SL-T-5')?.epoch ?? '').toBe('')

    // A's next emergency (#2, the number the claimant also used) is published and shown its own stages.
    r.press('emergency') // A's #2
    await r.run(5_000, () => r.uplink('/alert').some((a) => a.id === 'SL-T-5:2'))
    send(r, OWN, { id: 'rc2', type: 'receipt', ids: ['SL-T-5:2'] })
    await r.run(2_000)
    expect(r.uplink('/alert').filter((a) => a.id === 'SL-T-5:2')).toHaveLength(1)
    expect(r.stageNames(2)).toEqual(['stored', 'sent', 'received'])
    expect(r.logs.some((l) => /already stored/.test(l.msg))).toBe(false)
    // A was shown nothing of the claimant's; the claimant nothing of A's.
    expect(r.stages().every((i) => i.event === 1 || i.event === 2)).toBe(true)
    expect(r.stageNames(1).at(-1)).toBe('acknowledged')
    expect(claimant.stages().some((i) => i.stage === 'acknowledged')).toBe(false)
    expect(claimant.stageNames(2)).not.toContain('received') // the platform has not confirmed the claimant's alarm

    // The claimant's own alarm is the platform's to judge: confirmed, it is told so, and only then.
    send(r, OWN, { id: 'rc3', type: 'receipt', ids: ['SL-T-5@gw-1.a7:2'] })
    await r.run(2_000)
    expect(claimant.stageNames(2)).toEqual(['stored', 'sent', 'received'])
    expect(r.stageNames(2)).toEqual(['stored', 'sent', 'received'])

    // Reported once to the platform, with both addresses, however often it says HELLO.
    for (let s = 1; s <= 10; s++) {
      r.gateway.serialData(hello(7, 'SL-T-5', s))
      await r.run(1_000)
    }
    const conflicts = (await r.items()).filter((i) => i.kind === 'terminal-id-conflict')
    expect(conflicts).toHaveLength(1)
    expect(conflicts[0]).toMatchObject({
      class: 'trouble',
      code: 380,
      restore: false,
      terminal: 'SL-T-5',
      address: 7,
      conflict: { terminal: 'SL-T-5', boundAddress: 5, address: 7, as: 'SL-T-5@gw-1.a7' },
    })
    const warns = r.logs.filter((l) => l.level === 'warn' && /second device claims it/.test(l.msg))
    expect(warns).toHaveLength(1)
    expect(warns[0]!.msg).toMatch(/steppelink terminals rebind SL-T-5 7/)
    // The log says it again after a minute, with how many HELLOs came meanwhile; the platform does not hear it again.
    await r.run(60_000, undefined, 1_000)
    r.gateway.serialData(hello(7, 'SL-T-5', 11))
    await r.run(1_000)
    expect(r.logs.filter((l) => l.level === 'warn' && /second device claims it/.test(l.msg)).at(-1)!.fields).toMatchObject({ repeatedSinceLast: 10 })
    expect((await r.items()).filter((i) => i.kind === 'terminal-id-conflict')).toHaveLength(1)
    // The status shows the claimant for what it is.
    const status = r.gateway.statusPayload() as { terminals: { address: number; terminal: string; claims?: string }[] }
    expect(status.terminals.find((t) => t.address === 7)).toMatchObject({ terminal: 'SL-T-5@gw-1.a7', claims: 'SL-T-5' })
    expect(status.terminals.find((t) => t.address === 5)).toMatchObject({ terminal: 'SL-T-5' })
    expect(status.terminals.find((t) => t.address === 5)).not.toHaveProperty('claims')
  })

  it('a HELLO at the bound address is A itself: no conflict, and a claimant never frees the binding by taking the address for a moment', async () => {
    const r = rig()
    await r.run(2_000)
    // Something else answers at A's address 5 for a moment (the line cannot tell who speaks there) ...
    r.gateway.serialData(hello(5, 'SL-T-X', 40))
    await r.run(500)
    // ... then claims A's id from address 7: A is still bound to 5.
    r.gateway.serialData(hello(7, 'SL-T-5', 0))
    await r.run(500)
    expect((await r.items()).filter((i) => i.kind === 'terminal-id-conflict')).toHaveLength(1)
    expect(r.logs.some((l) => /a different terminal answers at this address/.test(l.msg))).toBe(true)
  })
})

describe('issue 12: the binding outlives a restart, and a technician moves it', () => {
  it('after a restart (SqliteStore on disk) the id is still bound: a claimant heard first, before A, is still a claimant', async () => {
    const dir = storeDir()
    const first = rig({ store: onDisk(dir) })
    await first.run(2_000)
    first.press('emergency')
    await first.run(5_000, () => first.uplink('/alert').length > 0)
    first.store.close()

    const second = rig({ store: onDisk(dir), boot: 2, terminal: { boot: 2, lastEvent: 1 } }) // A after a power cut, its memory kept
    // The claimant speaks first, before A's HELLO of the new run.
    second.gateway.serialData(hello(7, 'SL-T-5', 0, 9, 100))
    const claimant = second.addTerminal({ address: 7, terminal: 'SL-T-5', boot: 9, lastEvent: 100 })
    await second.run(3_000, () => claimant.open())
    claimant.press('emergency', 101)
    await second.run(5_000, () => second.uplink('/alert').length > 0)
    second.press('emergency') // A's #2
    await second.run(5_000, () => second.uplink('/alert').length > 1)
    await second.run(1_000)
    expect(second.uplink('/alert').map((a) => a.id)).toEqual(['SL-T-5@gw-1.a7:101', 'SL-T-5:2'])
    expect(second.stageNames(2)).toEqual(['stored', 'sent'])
    expect((await second.items()).find((i) => i.kind === 'terminal-id-conflict')).toMatchObject({ conflict: { boundAddress: 5, address: 7 } })
    second.store.close()
  })

  it('a store from before the bindings binds each id where it was known; one known at two addresses (the attack, before the fix) is bound at the first only', () => {
    const store = new SqliteStore({ path: ':memory:', freeSpace: () => 1e12 })
    store.setMeta(
      'terminals',
      JSON.stringify([
        { address: 5, terminal: 'SL-T-5', capabilities: [] },
        { address: 7, terminal: 'SL-T-5', capabilities: [] },
        { address: 9, terminal: 'SL-T-9', capabilities: [] },
      ]),
    )
    const known = new KnownTerminals(store)
    known.load()
    expect(known.bindings().sort()).toEqual([
      ['SL-T-5', 5],
      ['SL-T-9', 9],
    ])
    expect(known.named('SL-T-5')?.address).toBe(5)
    expect(known.at(7)).toBeUndefined()
    store.close()
  })

  it('`steppelink terminals rebind` (gateway stopped) moves A to its new address: its alarms are A’s again, no conflict', async () => {
    const dir = storeDir()
    const first = rig({ store: onDisk(dir) })
    await first.run(2_000)
    first.press('emergency') // A's #1 at address 5
    await first.run(5_000, () => first.uplink('/alert').length > 0)
    // The technician re-wires A to address 7 before stopping the gateway: until the rebind it is a claimant there.
    first.addTerminal({ address: 7, terminal: 'SL-T-5', boot: 2, lastEvent: 1 })
    await first.run(3_000)
    expect((await first.items()).filter((i) => i.kind === 'terminal-id-conflict')).toHaveLength(1)

    // While the gateway runs, the store is locked: the command says to stop it first.
    const out: string[] = []
    const err: string[] = []
    const io = { stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) }
    expect(await terminalsCommand(['rebind', 'SL-T-5', '7', '--data', dir], io)).toBe(1)
    expect(err.join('\n')).toMatch(/stop the gateway first/)
    first.store.close()

    expect(await terminalsCommand(['list', '--data', dir], io)).toBe(0)
    expect(out.join('\n')).toMatch(/SL-T-5\tbound to address 5/)
    expect(out.join('\n')).toMatch(/SL-T-5@gw-1\.a7\tat address 7: a second claimant of SL-T-5 \(bound to 5\)/)
    expect(await terminalsCommand(['rebind', 'SL-T-5', '7', '--data', dir], io)).toBe(0)
    expect(out.at(-1)).toMatch(/SL-T-5 is now bound to address 7 \(was 5\)/)
    expect(await terminalsCommand(['rebind', 'SL-T-5', '255', '--data', dir], io)).toBe(2)
    expect(await terminalsCommand(['rebind', 'SL-T-5', '--data', dir], io)).toBe(2)

    // The gateway again; A answers at 7 now, and nothing at 5.
    const second = rig({ store: onDisk(dir), boot: 2, terminal: { terminal: 'SL-T-NONE' } })
    const a = second.addTerminal({ address: 7, terminal: 'SL-T-5', boot: 3, lastEvent: 1 })
    await second.run(3_000, () => a.open())
    a.press('emergency') // A's #2, from its new address
    await second.run(5_000, () => second.uplink('/alert').some((x) => x.id === 'SL-T-5:2'))
    send(second, OWN, { id: 'rc', type: 'receipt', ids: ['SL-T-5:2'] })
    await second.run(2_000)
    const mine = second.uplink('/alert').find((x) => x.id === 'SL-T-5:2')
    expect(mine).toMatchObject({ terminal: 'SL-T-5', address: 7 })
    expect(mine).not.toHaveProperty('claims')
    expect(a.stageNames(2)).toEqual(['stored', 'sent', 'received'])
    // A's old alarm's stages follow it to its new address.
    send(second, OWN, { id: 'res', type: 'resolved', alert: 'SL-T-5:1' })
    await second.run(2_000)
    expect(a.stageNames(1).at(-1)).toBe('resolved')
    expect((await second.items()).filter((i) => i.kind === 'terminal-id-conflict')).toHaveLength(0)
    second.store.close()
  })
})
