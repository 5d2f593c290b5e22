/**
 * A HouseholdService in memory for the page's and the command line's tests (and a page
 * without a gateway behind it): a gateway with a terminal, an uplink, alerts whose stages
 * a test moves (`advance`), broadcasts it publishes (`broadcast`), a store it can make
 * refuse or fail (`store`), and relays kept by idempotency key as the real one keeps
 * them. It checks with the rule the real service uses (checkRelay in ../model.ts), so a
 * test of bad input sees the refusal the gateway would give.
 *
 * Not shipped as a gateway: gateway/household/service.ts is the real one.
 */

import { endsRepublication, isForward } from '../../../protocol/lifecycle.js'
import type { Stage } from '../../../protocol/messages.js'
import {
  checkRelay,
  relayRefused,
  type AlertView,
  type BroadcastActionResult,
  type BroadcastView,
  type HouseholdService,
  type HouseholdSnapshot,
  type RelayInput,
  type RelayResult,
  type TerminalView,
  type VerdictReason,
} from '../model.js'

const ALARM_WHATS = new Set(['emergency', 'medical', 'fire', 'crime'])

export interface FakeHouseholdOptions {
  now?: () => number
  gateway?: string
  household?: string | null
}

export class FakeHousehold implements HouseholdService {
  readonly #listeners = new Set<() => void>()
  readonly #byKey = new Map<string, { id: string; cls: 'alarm' | 'request' }>()
  readonly now: () => number
  /** What the next relay() meets: a store that works, refuses (disk at its reserve) or fails. */
  store: 'ok' | 'refused' | 'failed' = 'ok'
  /** Every relay stored, in order (what a test counts for "one relay, not two"). */
  readonly relays: { id: string; input: RelayInput; key: string }[] = []
  readonly reads: { broadcast: number; revision: number }[] = []
  readonly passed: { broadcast: number; revision: number; households: number }[] = []
  #seq = 0
  readonly state: HouseholdSnapshot

  constructor(o: FakeHouseholdOptions = {}) {
    this.now = o.now ?? Date.now
    const now = this.now()
    this.state = {
      gateway: o.gateway ?? 'gw-test',
      household: o.household === undefined ? '巴图家 (Batu)' : o.household,
      area: 'abag',
      version: '0.1.0',
      now,
      verdict: 'ok',
      reasons: [],
      uplink: { online: true, since: now - 3600_000, lastContact: now - 5_000, broker: 'mqtts://110.example.cn:8883' },
      clock: { synchronised: true },
      terminals: [{ terminal: 'SL-T-0001', address: 1, answering: true, lost: false, lastHeard: now - 2_000, battery: 87, mains: true, signal: -71 }],
      backlog: { alarm: 0, request: 0, trouble: 0, status: 0 },
      disk: { freeBytes: 900 * 1048576, reserveBytes: 16 * 1048576, low: false },
      alerts: [],
      inbox: [],
      commandsAuthenticated: true,
    }
  }

  snapshot(): HouseholdSnapshot {
    const s = structuredClone(this.state)
    s.now = this.now()
    const reasons: VerdictReason[] = []
    if (!s.uplink.online) reasons.push('uplink-offline')
    if (s.terminals.length === 0) reasons.push('no-terminal')
    if (s.terminals.some((t) => t.lost)) reasons.push('terminal-lost')
    if (s.disk.low) reasons.push('disk-low')
    if (this.store === 'failed') reasons.push('store-failing')
    if (!s.clock.synchronised) reasons.push('clock-estimated')
    if (!s.commandsAuthenticated) reasons.push('commands-not-authenticated')
    s.reasons = reasons
    s.verdict =
      reasons.includes('no-terminal') || reasons.includes('store-failing') || (s.terminals.length > 0 && s.terminals.every((t) => t.lost))
        ? 'down'
        : reasons.includes('uplink-offline')
          ? 'delayed'
          : 'ok'
    return s
  }

  relay(sent: RelayInput, key: string): RelayResult {
    const first = this.#byKey.get(key)
    if (first) return { ok: true, ...first, duplicate: true }
    const checked = checkRelay(sent)
    if (!checked.ok) return relayRefused(checked.errors)
    const input = checked.input
    if (this.store === 'refused') return { ok: false, code: 'STORE_REFUSED', message: 'the disk is at its reserve' }
    if (this.store === 'failed') return { ok: false, code: 'STORE_FAILED', message: 'SQLITE_IOERR: disk I/O error' }
    const cls = ALARM_WHATS.has(input.what) ? 'alarm' : 'request'
    const id = `${this.state.gateway}:r${++this.#seq}`
    this.#byKey.set(key, { id, cls })
    this.relays.push({ id, input, key })
    const now = this.now()
    this.state.alerts.unshift({
      id,
      cls,
      kind: 'relay',
      terminal: null,
      relay: {
        what: input.what,
        forName: input.forName,
        ...(input.forPhone !== undefined ? { forPhone: input.forPhone } : {}),
        ...(input.where !== undefined ? { where: input.where } : {}),
        ...(input.by !== undefined ? { by: input.by } : {}),
      },
      ...(input.text !== '' ? { text: input.text } : {}),
      stored: now,
      stage: 'stored',
      stages: [{ stage: 'stored', at: now }],
    })
    this.#changed()
    return { ok: true, id, cls, duplicate: false }
  }

  markRead(broadcast: number, revision: number): BroadcastActionResult {
    const b = this.#broadcast(broadcast, revision)
    if (!b) return { ok: false, code: 'BROADCAST_UNKNOWN', message: `no broadcast ${broadcast} revision ${revision}` }
    b.readAt ??= this.now()
    this.reads.push({ broadcast, revision })
    this.#changed()
    return { ok: true }
  }

  passedOn(broadcast: number, revision: number, households: number): BroadcastActionResult {
    const b = this.#broadcast(broadcast, revision)
    if (!b) return { ok: false, code: 'BROADCAST_UNKNOWN', message: `no broadcast ${broadcast} revision ${revision}` }
    if (!Number.isInteger(households) || households < 1) return { ok: false, code: 'BROADCAST_INVALID', message: 'households: a positive whole number' }
    b.passedOn = { households, at: this.now() }
    this.passed.push({ broadcast, revision, households })
    this.#changed()
    return { ok: true }
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  get listeners(): number {
    return this.#listeners.size
  }

  // ---- What a test (or the platform, in the fake) does ----

  /** A terminal's alarm, stored now. */
  alarm(kind = 'emergency', terminal = 'SL-T-0001', text?: string): string {
    const now = this.now()
    const id = `${terminal}:${++this.#seq}`
    const alert: AlertView = { id, cls: kind === 'callback' ? 'request' : 'alarm', kind, terminal, relay: null, stored: now, stage: 'stored', stages: [{ stage: 'stored', at: now }] }
    if (text !== undefined) alert.text = text
    this.state.alerts.unshift(alert)
    this.#changed()
    return id
  }

  /** Moves an alert to `stage` as the platform's answers would (only forward, as the lifecycle allows). */
  advance(id: string, stage: Stage, extra: { text?: string; eta?: number } = {}): void {
    const a = this.state.alerts.find((x) => x.id === id)
    if (!a) throw new Error(`no alert ${id}`)
    if (!isForward(a.stage, stage)) throw new Error(`${id}: ${a.stage} to ${stage} is not forward`)
    if (endsRepublication(stage)) a.stages = a.stages.filter((s) => s.stage !== 'unconfirmed')
    a.stage = stage
    a.stages.push({ stage, at: this.now(), ...extra })
    this.#changed()
  }

  /** A broadcast from the platform, or a new revision of one. */
  broadcast(b: { id: number; text: string; urgency?: string; revision?: number; expires?: number | null }): void {
    const view: BroadcastView = {
      id: b.id,
      revision: b.revision ?? 1,
      urgency: b.urgency ?? 'info',
      text: b.text,
      receivedAt: this.now(),
      expires: b.expires ?? null,
      readAt: null,
      passedOn: null,
    }
    this.state.inbox = [view, ...this.state.inbox.filter((x) => x.id !== b.id)]
    this.#changed()
  }

  uplink(online: boolean): void {
    this.state.uplink.online = online
    this.state.uplink.since = this.now()
    this.#changed()
  }

  terminal(update: Partial<TerminalView> & { terminal: string }): void {
    const t = this.state.terminals.find((x) => x.terminal === update.terminal)
    if (t) Object.assign(t, update)
    this.#changed()
  }

  #broadcast(id: number, revision: number): BroadcastView | undefined {
    return this.state.inbox.find((b) => b.id === id && b.revision === revision)
  }

  #changed(): void {
    for (const l of this.#listeners) l()
  }
}
