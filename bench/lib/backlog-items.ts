/**
 * Backlogs for the outage and backlog benchmarks: the events a center household's gateway
 * holds after its uplink was down, built exactly as the gateway itself stores them
 * (gateway/terminal-event.ts `handleEvent`, gateway/gateway-events.ts `record`), written
 * straight into its SQLite store (gateway/sqlite-store.ts) before the gateway starts, and the same
 * items in the forms the baselines publish (one MQTT message per item, CBOR or JSON).
 *
 * Why fill the store directly: no terminal input produces a `relay` yet (the kind is in
 * the MQTT contract, protocol/MQTT.md [MQTT-3.3], but nothing on the serial link makes
 * one), and pressing 10,000 events over a 9600-baud line would take longer than the
 * benchmarks' budget. The store is the gateway's only queue, so a store filled this way is
 * what the gateway would find after the same outage.
 */

import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { SqliteStore } from '../../gateway/sqlite-store.js'
import type { Heartbeat, NewEvent } from '../../gateway/store.js'
import { contactIdOf, EVENT_KINDS, type EventKind } from '../../protocol/messages.js'
import { CLASS_OF, GATEWAY_KINDS, MQTT_CONTRACT_VERSION, type UplinkEvent } from '../../protocol/mqtt.js'
import { seededRandom } from '../../protocol/random.js'

export const DAY_MS = 86_400_000
/** The gateway boot that recorded the backlog; the gateway under test starts as boot 2. */
const RECORDING_BOOT = 1
/**
 * Platform time minus gateway time when the backlog was recorded: 0, as for a gateway whose
 * clock the platform had set ([MQTT-3.5]), so every time is reported `estimated: false`.
 */
const SYNCHRONISED = 0

export interface HeartbeatAt {
  terminal: string
  address: number
  hb: Heartbeat
  /** Gateway clock, ms. */
  at: number
}

/** What the gateway holds: events in arrival order, and the heartbeats it folded. */
export interface Backlog {
  gateway: string
  events: NewEvent[]
  heartbeats: HeartbeatAt[]
}

/** A terminal's event as the gateway stores it (gateway/terminal-event.ts `handleEvent`). */
export function terminalEvent(gateway: string, terminal: string, address: number, number: number, kind: EventKind, at: number): NewEvent {
  const cls = CLASS_OF[kind]
  return {
    id: `${terminal}:${number}`,
    terminal,
    address,
    number,
    cls,
    body: {
      v: MQTT_CONTRACT_VERSION,
      id: `${terminal}:${number}`,
      class: cls,
      kind,
      code: contactIdOf(kind),
      restore: EVENT_KINDS[kind].restore,
      gateway,
      terminal,
      address,
      number,
    },
    receivedAt: at,
    boot: RECORDING_BOOT,
    offset: SYNCHRONISED,
  }
}

/**
 * A message the center household relays for a neighbour (gateway/gateway-events.ts
 * `record`, kind `relay`): `n` is the gateway's event counter, `user` the neighbour
 * household.
 */
export function relayEvent(gateway: string, n: number, user: number, text: string, at: number): NewEvent {
  const id = `${gateway}:g${n}`
  return {
    id,
    terminal: null,
    address: null,
    number: null,
    cls: CLASS_OF.relay,
    body: {
      v: MQTT_CONTRACT_VERSION,
      id,
      class: CLASS_OF.relay,
      kind: 'relay',
      code: GATEWAY_KINDS.relay.code,
      restore: GATEWAY_KINDS.relay.restore,
      gateway,
      terminal: null,
      address: null,
      number: null,
      user,
      text,
    },
    receivedAt: at,
    boot: RECORDING_BOOT,
    offset: SYNCHRONISED,
  }
}

const HOUSEHOLDS = ['巴图', '其其格', '那日苏', '阿拉坦', '乌力吉', '萨仁', '朝鲁', '斯琴', '额尔敦', '图雅', '宝音', '格日勒'] as const
const MESSAGES = [
  (n: number) => `明早${6 + (n % 5)}点兽医到嘎查，带上免疫本。`,
  (n: number) => `羊丢了${n}只，往北边草场去了，见到请告知。`,
  (n: number) => `苏木卫生院周${'一二三四五'[n % 5]}巡诊，老人可在中心户等候。`,
  (n: number) => `煤只够${n}天了，请帮忙联系送煤车。`,
  (n: number) => `孩子烧到${37 + (n % 3)}度，已吃药，明天再看。`,
  (n: number) => `嘎查${n}号下午开会，讨论冬季储草。`,
] as const

/**
 * What a neighbour asks a center household to pass on: `请转告<household>家：<message>`,
 * 60-80 bytes of UTF-8. Drawn from 12 households, 6 messages and a number, so texts repeat
 * more than real ones do: what zstd gains on them is on the generous side.
 */
export function relayText(random: () => number): string {
  const who = HOUSEHOLDS[Math.floor(random() * HOUSEHOLDS.length)]!
  const what = MESSAGES[Math.floor(random() * MESSAGES.length)]!
  return `请转告${who}家：${what(1 + Math.floor(random() * 28))}`
}

/** A terminal's heartbeat at minute `minute` of the day: winter, mains off for a few hours at night. */
export function heartbeat(minute: number, random: () => number): Heartbeat {
  const mains = !(minute >= 120 && minute < 300)
  const battery = mains ? 100 : Math.max(60, 100 - Math.floor((minute - 120) / 5))
  return {
    uptime: 86_400 + minute * 60,
    mains,
    battery,
    millivolts: 3600 + battery * 6,
    pending: 0,
    temperature: -18 + Math.floor(random() * 6),
  }
}

/** Terminal ids on a household's line: `prefix1` .. `prefixN`, addresses 1 .. N. */
export function terminalIds(prefix: string, count: number): { terminal: string; address: number }[] {
  return Array.from({ length: count }, (_, i) => ({ terminal: `${prefix}${i + 1}`, address: i + 1 }))
}

/**
 * Writes the backlog into a new store at `dbPath` (as the gateway of the outage left it:
 * recorded in boot 1, with the clock synchronised) and closes it, so that the file is
 * complete and can be copied.
 */
export function fillStore(dbPath: string, backlog: Backlog): void {
  const store = new SqliteStore({ path: dbPath })
  try {
    store.bump('gateway-boot')
    const relays = backlog.events.filter((e) => e.terminal === null).length
    // The gateway numbers its own events after the ones already stored.
    store.setMeta('gateway-event', String(relays))
    for (const e of backlog.events) {
      const r = store.addEvent(e)
      if (r.kind !== 'added') throw new Error(`backlog: ${e.id} not stored (${r.kind})`)
    }
    for (const h of backlog.heartbeats) {
      if (!store.putStatus(h.terminal, h.address, h.hb, h.at)) throw new Error(`backlog: heartbeat of ${h.terminal} refused (disk reserve)`)
    }
  } finally {
    store.close()
  }
}

/** Copies a closed store (and its WAL, if one was left) into `dataDir` as the gateway's store. */
export function copyStore(dbPath: string, dataDir: string): void {
  mkdirSync(dataDir, { recursive: true })
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(dbPath + suffix)) copyFileSync(dbPath + suffix, path.join(dataDir, `gateway.db${suffix}`))
  }
}

/**
 * The item as the gateway publishes it alone on `event` or `alert` at its first attempt
 * (outbox.ts `uplinkEvent`): the stored body with its time, `received`, `attempt`, and an
 * alarm's stage.
 */
export function uplinkForm(e: NewEvent): UplinkEvent {
  const at = e.receivedAt + (e.offset ?? 0)
  return {
    ...(e.body as Omit<UplinkEvent, 'time' | 'received' | 'attempt'>),
    time: { at, estimated: e.offset === null },
    received: at,
    attempt: 1,
    ...(e.cls === 'alarm' ? { stage: 'stored' as const } : {}),
  }
}

/** A seeded source of randomness, so every run builds the same backlog. */
export const backlogRandom = (): (() => number) => seededRandom(2026)

/**
 * `count` lower-class items that do not fold, spread over the day before `now`: periodic
 * test reports (kind `test`, class status) of 4 terminals and relayed messages (class
 * request), alternately.
 */
export function testAndRelayBacklog(gateway: string, count: number, now: number): Backlog {
  const random = backlogRandom()
  const terminals = terminalIds('SL-T-B', 4)
  const numbers = new Map<string, number>()
  const events: NewEvent[] = []
  const start = now - DAY_MS
  for (let i = 0; i < count; i++) {
    const at = start + Math.floor((i * DAY_MS) / count)
    if (i % 2 === 0) {
      const t = terminals[(i / 2) % terminals.length]!
      const n = (numbers.get(t.terminal) ?? 0) + 1
      numbers.set(t.terminal, n)
      events.push(terminalEvent(gateway, t.terminal, t.address, n, 'test', at))
    } else {
      events.push(relayEvent(gateway, (i + 1) / 2, 1 + Math.floor(random() * 17), relayText(random), at))
    }
  }
  return { gateway, events, heartbeats: [] }
}
