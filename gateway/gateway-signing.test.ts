/**
 * Signed commands at the gateway [MQTT-5.12] [MQTT-5.13], on the rig of gateway.suite.ts:
 * the attacks of issue 12 (a forged receipt or resolved, a replay after a restart or after
 * 1,000 or 2,000 other commands, a late one, an old time or broadcast against a gateway that just booted) are
 * refused with their codes and never reach the terminal; QoS 1 redelivery and reordering
 * are not errors; key rotation. A fake clock throughout.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { KeyObject } from 'node:crypto'
import { generateKeyPairSync } from 'node:crypto'
import { decodePayload, encodePayload, keyId, signCommand, wrapSigned } from '../protocol/mqtt.js'
import { ALL, AREA, OWN, replies, rig, send, warmUpBatches, type Rig } from './gateway.suite.js'
import { SqliteStore } from './sqlite-store.js'
import type { PlatformKeys } from './commands/auth.js'

beforeAll(warmUpBatches)

const pair = () => generateKeyPairSync('ed25519')
const platform = pair()
const next = pair()
const keys: PlatformKeys = { current: platform.publicKey, next: next.publicKey }

/** The audience of each topic of the rig. */
const AUD: Record<string, string> = { [OWN]: 'gw/gw-1', [AREA]: 'area/sumu-7', [ALL]: 'all' }
let seq = 1_000
const EXP = Date.UTC(2100, 0, 1)

/** Publishes a signed command as a platform would: aud of the topic, the next seq, a far exp; `over` overrides any of them. */
function signed(r: Rig, topic: string, c: Record<string, unknown>, o: { key?: KeyObject; over?: Record<string, unknown>; encoding?: 'json' | 'cbor' } = {}): Buffer {
  const payload = signCommand({ v: 1, aud: AUD[topic]!, seq: ++seq, exp: EXP, ...c, ...o.over }, o.key ?? platform.privateKey, o.encoding ?? 'cbor')
  r.gateway.command(topic, payload)
  return payload
}

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
function diskStore(): { path: string; open: () => SqliteStore } {
  const dir = mkdtempSync(join(tmpdir(), 'steppelink-sign-'))
  dirs.push(dir)
  const path = join(dir, 'gateway.db')
  return { path, open: () => new SqliteStore({ path, freeSpace: () => 1e12 }) }
}

/** An alarm pressed and published, so that there is an alert to forge answers about. */
async function pressed(r: Rig): Promise<string> {
  r.press()
  await r.run(3_000, () => r.uplink('/alert').length > 0)
  return r.uplink('/alert')[0]!.id
}

describe('gateway: signed commands [MQTT-5.12]', () => {
  it('applies a signed resolved, in CBOR and in JSON; the status says commands are authenticated', async () => {
    const r = rig({ settings: { platformKeys: keys } })
    const alert = await pressed(r)
    signed(r, OWN, { id: 'ack', type: 'acknowledged', alert, by: 'Officer Bao' }, { encoding: 'json' })
    signed(r, OWN, { id: 'res', type: 'resolved', alert })
    await r.run(2_000, () => r.stageNames(1).includes('resolved'))
    expect(r.stageNames(1)).toContain('acknowledged')
    expect(r.stageNames(1)).toContain('resolved')
    expect(replies(r)).toEqual([])
    expect(r.gateway.statusPayload()).toMatchObject({ commandsAuthenticated: true, platformKey: expect.stringMatching(/^[0-9a-f]{16}$/) })
  })

  it('a forged resolved never reaches the terminal: bad signature, wrong audience, unsigned, unknown key', async () => {
    const r = rig({ settings: { platformKeys: keys } })
    const alert = await pressed(r)
    // Bad signature: a valid envelope whose body was changed after signing.
    const good = decodePayload(signCommand({ v: 1, id: 'f1', type: 'acknowledged', alert, by: 'x', aud: 'gw/gw-1', seq: ++seq, exp: EXP }, platform.privateKey, 'json')) as Record<string, string>
    const forged = Buffer.from(Buffer.from(good.body!, 'base64').toString().replace('"acknowledged","alert"', '"resolved","alert"').replace(',"by":"x"', ''))
    r.gateway.command(OWN, Buffer.from(JSON.stringify({ ...good, body: forged.toString('base64') })))
    // Wrong audience: signed for another gateway, replayed on this one's topic; and signed for gw-1 but sent on all.
    signed(r, OWN, { id: 'f2', type: 'resolved', alert }, { over: { aud: 'gw/gw-2' } })
    signed(r, ALL, { id: 'f3', type: 'resolved', alert }, { over: { aud: 'gw/gw-1' } })
    // Unsigned, with a key set.
    send(r, OWN, { id: 'f4', type: 'resolved', alert })
    // Unknown key: a valid signature by a key the gateway does not take (the next one, before rotation, too).
    signed(r, OWN, { id: 'f5', type: 'resolved', alert }, { key: pair().privateKey })
    signed(r, OWN, { id: 'f6', type: 'resolved', alert }, { key: next.privateKey })
    await r.run(2_000)
    expect(r.uplink('/reply').map((e) => [e.command, e.code])).toEqual([
      ['f1', 'CMD_BAD_SIGNATURE'],
      ['f2', 'CMD_WRONG_AUDIENCE'],
      ['f3', 'CMD_WRONG_AUDIENCE'],
      ['f4', 'CMD_UNSIGNED'],
      ['f5', 'CMD_UNKNOWN_KEY'],
      ['f6', 'CMD_UNKNOWN_KEY'],
    ])
    expect(r.stages().filter((s) => s.stage === 'resolved' || s.stage === 'acknowledged')).toEqual([])
    expect(r.store.counters()['commands.rejected']).toBe(6)
  })

  it('a forged receipt on the all topic does not silence republication', async () => {
    const r = rig({ settings: { platformKeys: keys } })
    const alert = await pressed(r)
    send(r, ALL, { id: 'r1', type: 'receipt', ids: [alert] })
    signed(r, ALL, { id: 'r2', type: 'receipt', ids: [alert] }, { key: pair().privateKey })
    await r.run(100)
    expect(replies(r)).toEqual(['CMD_UNSIGNED', 'CMD_UNKNOWN_KEY'])
    expect(r.store.get(alert)!.stage).not.toBe('received')
    await r.run(120_000, () => r.uplink('/alert').length > 1)
    expect(r.uplink('/alert').length).toBeGreaterThan(1)
    // The real receipt, signed, on the own topic, ends it.
    signed(r, OWN, { id: 'r3', type: 'receipt', ids: [alert] })
    await r.run(100)
    expect(r.store.get(alert)!.stage).toBe('received')
  })

  it('a replayed command and an old broadcast are refused after a gateway restart (store on disk)', async () => {
    const disk = diskStore()
    const r1 = rig({ store: disk.open(), settings: { platformKeys: keys }, terminal: { capabilities: ['buzzer', 'display'] } })
    const alert = await pressed(r1)
    const resolved = signed(r1, OWN, { id: 'res', type: 'resolved', alert })
    const storm = signed(r1, AREA, { id: 'b1', type: 'broadcast', broadcast: 77, text: 'Storm tonight', urgency: 'urgent' })
    signed(r1, AREA, { id: 'b2', type: 'broadcast-withdraw', broadcast: 77 })
    await r1.run(2_000)
    expect(r1.store.broadcast(77)!.withdrawn).toBe(true)
    r1.gateway.stop()
    r1.store.close()

    const r2 = rig({ store: disk.open(), settings: { platformKeys: keys }, boot: 2, terminal: { capabilities: ['buzzer', 'display'] } })
    await r2.run(1_000)
    r2.gateway.command(OWN, resolved)
    r2.gateway.command(AREA, storm)
    await r2.run(1_000)
    expect(r2.uplink('/reply').map((e) => [e.command, e.code])).toEqual([
      ['res', 'CMD_REPLAYED'],
      ['b1', 'CMD_REPLAYED'],
    ])
    expect(r2.store.broadcast(77)!.withdrawn).toBe(true)
    r2.store.close()
  })

  it('a captured command is refused after 1,000 and after 2,000 other commands, and after a restart then (the id memory is gone, the window is not)', async () => {
    const disk = diskStore()
    const r = rig({ store: disk.open(), settings: { platformKeys: keys } })
    const alert = await pressed(r)
    const captured = signed(r, OWN, { id: 'cfg', type: 'config', statusInterval: 900 })
    for (let i = 0; i < 1_100; i++) signed(r, OWN, { id: `s-${i}`, type: 'broadcast-withdraw', broadcast: i })
    r.gateway.command(OWN, captured)
    for (let i = 1_100; i < 2_000; i++) signed(r, OWN, { id: `s-${i}`, type: 'broadcast-withdraw', broadcast: i })
    r.gateway.command(OWN, captured)
    await r.run(100)
    expect(r.uplink('/reply').map((e) => [e.command, e.code])).toEqual([
      ['cfg', 'CMD_REPLAYED'],
      ['cfg', 'CMD_REPLAYED'],
    ])
    expect(r.store.get(alert)!.stage).not.toBe('resolved')
    r.gateway.stop()
    r.store.close()

    const r2 = rig({ store: disk.open(), settings: { platformKeys: keys }, boot: 2 })
    await r2.run(1_000)
    r2.gateway.command(OWN, captured)
    await r2.run(100)
    expect(r2.uplink('/reply').map((e) => [e.command, e.code])).toEqual([['cfg', 'CMD_REPLAYED']])
    r2.store.close()
  })

  it('a command held back behind newer ones of its audience is applied, however far its seq is behind (the window counts commands, not ms)', async () => {
    const r = rig({ settings: { platformKeys: keys } })
    const alert = await pressed(r)
    const t = Date.UTC(2026, 11, 3, 12)
    // The platform's seq is max(UNIX ms, last + 1): the acknowledged was sent a minute before the status-request, and delayed.
    const ack = signCommand({ v: 1, id: 'late', type: 'acknowledged', alert, by: 'Bao', aud: 'gw/gw-1', seq: t, exp: EXP }, platform.privateKey, 'cbor')
    signed(r, OWN, { id: 'newer', type: 'status-request' }, { over: { seq: t + 60_000 } })
    r.gateway.command(OWN, ack)
    await r.run(2_000, () => r.stageNames(1).includes('acknowledged'))
    expect(replies(r)).toEqual([])
    expect(r.stageNames(1)).toContain('acknowledged')
    // Sent again (captured): a replay.
    r.gateway.command(OWN, Buffer.from(signCommand({ v: 1, id: 'late-2', type: 'acknowledged', alert, by: 'Bao', aud: 'gw/gw-1', seq: t, exp: EXP }, platform.privateKey, 'cbor')))
    await r.run(100)
    expect(r.uplink('/reply').map((e) => [e.command, e.code])).toEqual([['late-2', 'CMD_REPLAYED']])
  })

  it('QoS 1 redelivery of the same signed command is the repeat of [MQTT-5.3]: ignored, no Reply; reordering within the window is accepted', async () => {
    const r = rig({ settings: { platformKeys: keys } })
    const alert = await pressed(r)
    const ack = signCommand({ v: 1, id: 'a', type: 'acknowledged', alert, by: 'Bao', aud: 'gw/gw-1', seq: 5_000, exp: EXP }, platform.privateKey, 'cbor')
    const res = signCommand({ v: 1, id: 'b', type: 'resolved', alert, aud: 'gw/gw-1', seq: 5_001, exp: EXP }, platform.privateKey, 'cbor')
    r.gateway.command(OWN, res)
    r.gateway.command(OWN, ack)
    r.gateway.command(OWN, res)
    r.gateway.command(OWN, ack)
    await r.run(2_000, () => r.stageNames(1).includes('resolved'))
    expect(replies(r)).toEqual([])
    expect(r.stageNames(1).filter((s) => s === 'resolved')).toHaveLength(1)
    expect(r.logs.filter((l) => l.msg === 'command repeated; ignored')).toHaveLength(2)
  })

  it('an expired command is refused once the clock is set; before, it cannot be judged', async () => {
    const r = rig({ settings: { platformKeys: keys } })
    await r.run(1_000)
    r.gateway.will()
    const session = (decodePayload(r.gateway.birth().payload) as { session: number }).session
    const now = Date.UTC(2026, 11, 3, 12)
    signed(r, OWN, { id: 'early', type: 'config', statusInterval: 600 }, { over: { exp: now - 60_000 } })
    signed(r, OWN, { id: 't', type: 'time', now, session })
    signed(r, OWN, { id: 'late', type: 'config', statusInterval: 900 }, { over: { exp: now - 60_000 } })
    await r.run(100)
    expect(r.uplink('/reply').map((e) => [e.command, e.code])).toEqual([['late', 'CMD_EXPIRED']])
    expect(JSON.parse(r.store.meta('settings')!)).toMatchObject({ statusIntervalMs: 600_000 })
  })

  it('a signed time for another session, or for none, is refused: an old time cannot set the clock of a gateway that just booted', async () => {
    const disk = diskStore()
    const r1 = rig({ store: disk.open(), settings: { platformKeys: keys } })
    await r1.run(1_000)
    r1.gateway.will()
    const s1 = (decodePayload(r1.gateway.birth().payload) as { session: number }).session
    const old = signed(r1, OWN, { id: 't1', type: 'time', now: Date.UTC(2026, 0, 1), session: s1 })
    await r1.run(100)
    expect(r1.gateway.clock.synchronised).toBe(true)
    r1.store.close()

    const r2 = rig({ store: disk.open(), settings: { platformKeys: keys }, boot: 2 })
    await r2.run(1_000)
    r2.gateway.will()
    const s2 = (decodePayload(r2.gateway.birth().payload) as { session: number }).session
    expect(s2).toBe(s1 + 1)
    // A time signed for the old session, sent again under a new seq (as a captured one cannot be): stale.
    signed(r2, OWN, { id: 't2', type: 'time', now: Date.UTC(2026, 0, 1), session: s1 })
    signed(r2, OWN, { id: 't3', type: 'time', now: Date.UTC(2026, 0, 1) })
    r2.gateway.command(OWN, old)
    await r2.run(100)
    expect(r2.uplink('/reply').map((e) => [e.command, e.code])).toEqual([
      ['t2', 'CMD_STALE'],
      ['t3', 'CMD_STALE'],
      ['t1', 'CMD_REPLAYED'],
    ])
    expect(r2.gateway.clock.synchronised).toBe(false)
    r2.store.close()
  })

  it('key rotation: a signed key-rotate makes the next key current, the old one is refused, and a restart keeps it', async () => {
    const disk = diskStore()
    const r1 = rig({ store: disk.open(), settings: { platformKeys: keys } })
    await r1.run(1_000)
    const nextId = keyId(next.publicKey)
    // Unsigned or naming another key: refused.
    send(r1, OWN, { id: 'k0', type: 'key-rotate', key: nextId })
    signed(r1, OWN, { id: 'k1', type: 'key-rotate', key: '0123456789abcdef' })
    signed(r1, OWN, { id: 'k2', type: 'key-rotate', key: nextId })
    signed(r1, OWN, { id: 'old', type: 'status-request' })
    signed(r1, OWN, { id: 'new', type: 'config', statusInterval: 900 }, { key: next.privateKey })
    await r1.run(100)
    expect(r1.uplink('/reply').map((e) => [e.command, e.code])).toEqual([
      ['k0', 'CMD_UNSIGNED'],
      ['k1', 'CMD_BAD_VALUE'],
      ['old', 'CMD_UNKNOWN_KEY'],
    ])
    expect(r1.gateway.statusPayload()).toMatchObject({ platformKey: nextId })
    expect(JSON.parse(r1.store.meta('settings')!)).toMatchObject({ statusIntervalMs: 900_000 })
    r1.store.close()

    const r2 = rig({ store: disk.open(), settings: { platformKeys: keys }, boot: 2 })
    await r2.run(1_000)
    signed(r2, OWN, { id: 'old2', type: 'status-request' })
    signed(r2, OWN, { id: 'new2', type: 'status-request' }, { key: next.privateKey })
    await r2.run(100)
    expect(r2.uplink('/reply').map((e) => [e.command, e.code])).toEqual([['old2', 'CMD_UNKNOWN_KEY']])
    r2.store.close()
  })

  it('without a platform key: unsigned and signed commands are applied, with a loud warning and the status saying so', async () => {
    const r = rig()
    const alert = await pressed(r)
    expect(r.logs.some((l) => l.level === 'warn' && l.msg.startsWith('COMMANDS ARE NOT AUTHENTICATED'))).toBe(true)
    expect(r.gateway.statusPayload()).toMatchObject({ commandsAuthenticated: false, platformKey: null })
    signed(r, OWN, { id: 'a', type: 'acknowledged', alert, by: 'Bao' })
    r.command({ id: 'b', type: 'resolved', alert })
    await r.run(2_000, () => r.stageNames(1).includes('resolved'))
    expect(r.stageNames(1)).toEqual(expect.arrayContaining(['acknowledged', 'resolved']))
    expect(replies(r)).toEqual([])
  })

  it('a broken envelope is CMD_BAD_SCHEMA; a signed body without aud, seq and exp is refused', async () => {
    const r = rig({ settings: { platformKeys: keys } })
    await r.run(1_000)
    r.gateway.command(OWN, Buffer.from(JSON.stringify({ v: 1, type: 'signed', key: 'zz', body: '', sig: '' })))
    r.gateway.command(OWN, wrapSigned(encodePayload({ v: 1, id: 'bare', type: 'status-request' }, 'cbor'), platform.privateKey, 'cbor'))
    await r.run(100)
    expect(r.uplink('/reply').map((e) => [e.command, e.code])).toEqual([
      [null, 'CMD_BAD_SCHEMA'],
      ['bare', 'CMD_BAD_SCHEMA'],
    ])
  })
})
