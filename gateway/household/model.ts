/**
 * What the center household sees of its gateway and can do with it (issue 13): the model
 * behind the household page, the local API and `steppelink status | relay | inbox`.
 *
 * The gateway core implements HouseholdService (gateway/household/service.ts); the web
 * server (gateway/household/web/) and the command line only read snapshots and call the
 * three actions. Nothing here does I/O: a snapshot is plain data, the same for the page,
 * the JSON of the local API and the command line.
 *
 * Times are UNIX ms of the gateway's clock as corrected by the platform's `time`
 * ([MQTT-5.6]); `clock.synchronised` false means they are estimates.
 */

import type { Stage } from '../../protocol/messages.js'

export const LANGS = ['zh-CN', 'en'] as const
export type Lang = (typeof LANGS)[number]

/** What a relay is about, as the member picks it on the form. The first four are alarm class, the rest request class. */
export const RELAY_WHATS = ['emergency', 'medical', 'fire', 'crime', 'livestock', 'other'] as const
export type RelayWhat = (typeof RELAY_WHATS)[number]

/** Limits in bytes of UTF-8, as the serial link counts its texts ([LINK-4.6]); a Chinese character is 3 bytes. The MQTT `text` holds the whole relay (1000 characters). */
export const RELAY_LIMITS = {
  /** The neighbour household's name. */
  forName: 64,
  forPhone: 32,
  where: 160,
  /** The message itself. */
  text: 480,
  /** The member's own name (who relayed it). */
  by: 64,
} as const

export interface RelayInput {
  what: RelayWhat
  /** The household the relay is for (required). */
  forName: string
  forPhone?: string
  /** Where they are: a place name, a well, a winter camp. */
  where?: string
  /** What happened, or what they ask for. Required for `other`; may be empty for the alarm kinds. */
  text: string
  /** Who at the center household relayed it (optional; the gateway's household name is always sent). */
  by?: string
}

export type RelayErrorCode =
  /** A field is missing, too long, or has a character that is not allowed (`field` says which). */
  | 'RELAY_INVALID'
  /** `what` is not one of RELAY_WHATS. */
  | 'RELAY_UNKNOWN_KIND'
  /** The store refused it (the disk is at its reserve): NOT saved, call 110 by phone. */
  | 'STORE_REFUSED'
  /** The store failed (disk error): NOT saved, call 110 by phone. */
  | 'STORE_FAILED'

export type RelayResult =
  | { ok: true; id: string; cls: 'alarm' | 'request' /** The same idempotency key was used before: this is that relay. */; duplicate: boolean }
  | { ok: false; code: RelayErrorCode; field?: keyof RelayInput; message: string }

export type BroadcastActionResult = { ok: true } | { ok: false; code: 'BROADCAST_UNKNOWN' | 'BROADCAST_INVALID' | 'STORE_FAILED'; message: string }

/**
 * Whether an alarm pressed now would get through, the plain sentence at the top of the
 * page. `ok`: stored and sent at once. `delayed`: stored, and sent when the uplink is back
 * (the herder is told "not confirmed: call 110 by phone" after the receipt timeout).
 * `down`: it would not even be stored or heard (no terminal answering, the store failing).
 */
export type Verdict = 'ok' | 'delayed' | 'down'

export type VerdictReason = 'uplink-offline' | 'no-terminal' | 'terminal-lost' | 'disk-low' | 'store-failing' | 'clock-estimated' | 'commands-not-authenticated'

export interface TerminalView {
  terminal: string
  address: number
  /** A session is up and the terminal answers. */
  answering: boolean
  /** Supervision raised "terminal lost". */
  lost: boolean
  lastHeard: number | null
  /** From its last heartbeat ([LINK-6] HEARTBEAT): battery in per cent, mains present, radio signal in dBm; null when not reported. */
  battery: number | null
  mains: boolean | null
  signal: number | null
}

export interface StageView {
  stage: Stage
  at: number
  /** The operator's text of the stage: who acknowledged, the unit coming, how it ended. */
  text?: string
  /** For `dispatched`: when help is expected. */
  eta?: number
}

export interface RelayInfo {
  what: RelayWhat
  forName: string
  forPhone?: string
  where?: string
  by?: string
}

export interface AlertView {
  id: string
  cls: 'alarm' | 'request'
  kind: string
  /** The terminal it came from, or null for a relay. */
  terminal: string | null
  relay: RelayInfo | null
  text?: string
  /** When it was stored. */
  stored: number
  /** The current stage, and every stage reached so far, oldest first. */
  stage: Stage
  stages: StageView[]
}

export interface BroadcastView {
  id: number
  revision: number
  urgency: string
  text: string
  receivedAt: number
  expires: number | null
  /** When the household marked it read (this revision), or null. */
  readAt: number | null
  /** How many households the member passed it on to, and when; null if not yet. */
  passedOn: { households: number; at: number } | null
}

export interface HouseholdSnapshot {
  gateway: string
  /** The household's name from the config, or null. */
  household: string | null
  area: string | null
  version: string
  now: number
  verdict: Verdict
  reasons: VerdictReason[]
  uplink: {
    online: boolean
    /** When it last went online or offline. */
    since: number | null
    /** The last PUBACK or command from the platform. */
    lastContact: number | null
    broker: string
  }
  clock: { synchronised: boolean }
  terminals: TerminalView[]
  backlog: Record<'alarm' | 'request' | 'trouble' | 'status', number>
  disk: { freeBytes: number | null; reserveBytes: number; low: boolean }
  /** Alarms and requests not resolved, and those resolved in the last 24 h, newest first. */
  alerts: AlertView[]
  /** Broadcasts not expired, newest first. */
  inbox: BroadcastView[]
  commandsAuthenticated: boolean
}

export interface HouseholdService {
  snapshot(): HouseholdSnapshot
  /**
   * Stores the relay durably (synchronous=FULL for both classes) before it returns, then
   * publishes it. `key`: an idempotency key from the form; the same key again returns the
   * first relay with `duplicate: true` and stores nothing.
   */
  relay(input: RelayInput, key: string): RelayResult
  markRead(broadcast: number, revision: number): BroadcastActionResult
  passedOn(broadcast: number, revision: number, households: number): BroadcastActionResult
  /** Called, at most every few ms, after anything in the snapshot may have changed. Returns unsubscribe. */
  subscribe(listener: () => void): () => void
}
