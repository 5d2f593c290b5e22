/**
 * Signed commands at the gateway [MQTT-5.12]: which platform key is in force, whether a
 * payload is signed by it, and whether a signed command is for this gateway, still valid,
 * and new. index.ts calls these in the order of the rule, before it applies anything.
 *
 * - The platform keys come from the configuration (`platformKeys`: current and next). The
 *   key in force is the current one until a signed `key-rotate` names the next one; that
 *   choice is kept in the store (meta `platform-key`), so a restart keeps it [MQTT-5.13].
 * - Without any platform key, commands are not authenticated: plain commands are applied
 *   as before, the body of a signed one is applied without a check, and the gateway says
 *   so loudly at start and in its status (`commandsAuthenticated: false`).
 * - The replay window of each audience (command-window.ts: the last 1,024 sequence numbers
 *   taken) lives in the store and is written, synced, before the command is applied: a power
 *   cut can lose a command, never apply it twice.
 */

import type { KeyObject } from 'node:crypto'
import { MAX_COMMAND_BYTES, audienceOfTopic, keyId, openEnvelope, tryDecode, verifyBody, type Command, type SignatureErrorCode } from '../../protocol/mqtt.js'
import type { GatewayClock } from '../clock.js'
import type { GatewaySettings, Log } from '../gateway.js'
import { CommandWindow } from '../command-window.js'
import type { Store } from '../store.js'

/** The platform's public keys, as configured. [MQTT-5.13] */
export interface PlatformKeys {
  current: KeyObject
  next?: KeyObject
}

/** The meta key holding the id of the key in force after a rotation. */
export const ACTIVE_KEY_META = 'platform-key'

export type Opening = { ok: true; body: Uint8Array; signed: false } | { ok: true; body: Buffer; signed: true } | { ok: false; code: SignatureErrorCode | 'CMD_BAD_SCHEMA'; message: string }

export type Refused = { code: SignatureErrorCode | 'CMD_BAD_SCHEMA'; message: string }

/** Takes a signed command's sequence number: `take` before applying it, `undo` if applying it failed. */
export interface Taking {
  take(): void
  undo(): void
}

export interface AuthDeps {
  settings: Pick<GatewaySettings, 'gateway' | 'area' | 'prefix'>
  keys: PlatformKeys | null
  store: Store
  clock: GatewayClock
  log: Log
}

export class CommandAuth {
  readonly #keys: Map<string, KeyObject>
  readonly #windows = new Map<string, CommandWindow>()

  constructor(private readonly d: AuthDeps) {
    this.#keys = new Map()
    if (d.keys) {
      this.#keys.set(keyId(d.keys.current), d.keys.current)
      if (d.keys.next) this.#keys.set(keyId(d.keys.next), d.keys.next)
    }
  }

  /** Whether commands are authenticated: a platform key is configured. */
  get authenticated(): boolean {
    return this.d.keys !== null
  }

  /** The id of the key in force: the stored one after a rotation if it is still configured, else the configured current one; null without keys. */
  get activeKeyId(): string | null {
    if (!this.d.keys) return null
    const stored = this.d.store.meta(ACTIVE_KEY_META)
    if (stored !== undefined && this.#keys.has(stored)) return stored
    return keyId(this.d.keys.current)
  }

  /** The id of the configured next key, if any, unless it is already in force. */
  get nextKeyId(): string | null {
    const next = this.d.keys?.next
    if (!next) return null
    const id = keyId(next)
    return id === this.activeKeyId ? null : id
  }

  /** Makes the next key the one in force, durably. [MQTT-5.13] */
  rotate(to: string): void {
    this.d.store.setMeta(ACTIVE_KEY_META, to)
  }

  /**
   * Step 1 of [MQTT-5.12]: the body to parse, once its signature is verified with the key
   * in force. A payload that does not decode is passed on whole (parseCommand says why).
   */
  open(payload: Uint8Array): Opening {
    if (payload.length > MAX_COMMAND_BYTES) return { ok: true, body: payload, signed: false }
    // Only a payload with the text `signed` in it can be an envelope: the others (nearly
    // all of them without a key) are not decoded twice.
    const maybeSigned = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).includes('signed')
    const opened = maybeSigned ? openEnvelope(tryDecode(payload)) : ({ kind: 'plain' } as const)
    if (opened.kind === 'broken') return { ok: false, code: 'CMD_BAD_SCHEMA', message: opened.message }
    if (!this.authenticated) return opened.kind === 'signed' ? { ok: true, body: opened.body, signed: false } : { ok: true, body: payload, signed: false }
    if (opened.kind === 'plain') {
      return { ok: false, code: 'CMD_UNSIGNED', message: 'this gateway takes only signed commands (it has a platform key): sign it [MQTT-5.12]' }
    }
    const active = this.activeKeyId!
    if (opened.key !== active) {
      return { ok: false, code: 'CMD_UNKNOWN_KEY', message: `signed with key ${opened.key}; this gateway's platform key is ${active}` }
    }
    if (!verifyBody(opened.body, opened.sig, this.#keys.get(active)!)) {
      return { ok: false, code: 'CMD_BAD_SIGNATURE', message: `the signature does not verify with key ${active}: the body was changed, or another key signed it` }
    }
    return { ok: true, body: opened.body, signed: true }
  }

  /** Step 2: the body names the audience of the topic it came on, and that is this gateway, its area or all. */
  audience(topic: string, c: Command): Refused | null {
    if (c.aud === undefined || c.seq === undefined || c.exp === undefined) {
      return { code: 'CMD_BAD_SCHEMA', message: `${c.type}: a signed command must carry aud, seq and exp [MQTT-5.12]` }
    }
    const { prefix, gateway, area } = this.d.settings
    const ofTopic = audienceOfTopic(prefix, topic)
    const ours = c.aud === 'all' || c.aud === `gw/${gateway}` || (area !== null && c.aud === `area/${area}`)
    if (c.aud !== ofTopic || !ours) {
      return { code: 'CMD_WRONG_AUDIENCE', message: `signed for ${c.aud}, came on ${topic}; this gateway takes gw/${gateway}${area !== null ? `, area/${area}` : ''} and all, each on its own topic` }
    }
    return null
  }

  /** Steps 3 and 4: not expired (once the clock is set), and a sequence number not taken in its audience. */
  fresh(c: Command): Refused | Taking {
    const exp = c.exp!
    const aud = c.aud!
    const seq = c.seq!
    const time = this.d.clock.now()
    if (!time.estimated && exp <= time.at) {
      return { code: 'CMD_EXPIRED', message: `expired ${Math.round((time.at - exp) / 1000)} s ago (exp ${new Date(exp).toISOString()}) by this gateway's clock, set by the platform: not applied` }
    }
    const w = this.#window(aud)
    if (w.has(seq)) {
      return {
        code: 'CMD_REPLAYED',
        message: `seq ${seq} of ${aud} was taken already, or is older than the window (the last ${w.size} taken, the lowest that can be new ${w.lowestNew}): a replay, not applied`,
      }
    }
    const before = w.toJSON()
    return {
      take: () => {
        w.add(seq)
        this.d.store.setCommandWindow(aud, w.toJSON())
      },
      undo: () => {
        this.#windows.set(aud, CommandWindow.parse(before))
        this.d.store.setCommandWindow(aud, before)
      },
    }
  }

  #window(aud: string): CommandWindow {
    let w = this.#windows.get(aud)
    if (!w) {
      w = CommandWindow.parse(this.d.store.commandWindow(aud))
      this.#windows.set(aud, w)
    }
    return w
  }
}
