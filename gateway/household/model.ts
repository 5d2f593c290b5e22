/**
 * What the center household sees of its gateway and can do with it (issue 13): the model
 * behind the household page, the local API and `steppelink status | relay | inbox`.
 *
 * The gateway core implements HouseholdService (gateway/household/service.ts); the web
 * server (gateway/household/web/) and the command line only read snapshots and call the
 * three actions. Nothing here does I/O: a snapshot is plain data, the same for the page,
 * the JSON of the local API and the command line. checkRelay is the one rule of a relay,
 * whichever way it comes in.
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

/** The fields of a relay, in the order the rule checks them (and a refusal lists them). */
export const RELAY_INPUT_FIELDS = ['what', 'forName', 'forPhone', 'where', 'text', 'by'] as const satisfies readonly (keyof RelayInput)[]
export type RelayInputField = (typeof RELAY_INPUT_FIELDS)[number]

/**
 * What was wrong with a field, for a program: the page maps it to its own words
 * (`err.<problem>` in web/strings.ts), the API, the command line and the log show `message`.
 * - `unknownKind`: `what` is missing or not one of RELAY_WHATS (code RELAY_UNKNOWN_KIND).
 * - `required`: `forName` is empty; or `text` is, for `other`.
 * - `tooLong`: over RELAY_LIMITS, in bytes of UTF-8 after trimming (`bytes`, `limit`).
 * - `badChar`: a control character (C0, DEL, C1, U+2028, U+2029); in any field but `text`
 *   a line break too, since those are one line on the terminal and the platform's screen.
 * - `phone`: `forPhone` has something but digits, spaces and + - ( ).
 */
export type RelayProblem = 'unknownKind' | 'required' | 'tooLong' | 'badChar' | 'phone'

/** One thing wrong with a relay: which field, what was wrong, and (in `message`) what to do. */
export interface RelayFieldError {
  code: 'RELAY_INVALID' | 'RELAY_UNKNOWN_KIND'
  field: RelayInputField
  problem: RelayProblem
  /** For `tooLong`: the bytes of UTF-8 given, and the limit. */
  bytes?: number
  limit?: number
  /** In English, `<field>: <what was wrong>; <what to do>`: the local API's, the command line's and the log's words. */
  message: string
}

export type RelayCheck = { ok: true; input: RelayInput } | { ok: false; errors: [RelayFieldError, ...RelayFieldError[]] }

// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is refused
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are what is refused
const CONTROL_BUT_LINE_FEED = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/
const PHONE = /^[0-9 +()-]*$/

/** What each field is, in the words of a message. */
const LABEL: Readonly<Record<RelayInputField, string>> = {
  what: 'what it is about',
  forName: 'the household it is for',
  forPhone: 'their phone number',
  where: 'where they are',
  text: 'the message',
  by: 'your name',
}

/** A field as typed: not a string is absent; CR LF and CR are LF; trimmed. */
function cleaned(v: unknown): string {
  return typeof v === 'string' ? v.replace(/\r\n?/g, '\n').trim() : ''
}

/**
 * THE rule of a relay, for every way in: the gateway's HouseholdService.relay, the page's
 * form, the local API, `steppelink relay` and the tests' fake household. Takes what was
 * sent, as it was sent (anything: a form, JSON, arguments); gives the relay cleaned
 * (trimmed, CR LF as LF, empty optional fields left out), or every field's first problem,
 * in the order of RELAY_INPUT_FIELDS. Limits are RELAY_LIMITS, in bytes of UTF-8.
 */
export function checkRelay(sent: unknown): RelayCheck {
  const raw = (typeof sent === 'object' && sent !== null ? sent : {}) as Partial<Record<RelayInputField, unknown>>
  const errors: RelayFieldError[] = []
  const what = cleaned(raw.what)
  const known = (RELAY_WHATS as readonly string[]).includes(what)
  if (!known) errors.push(refusal('what', 'unknownKind', `${what === '' ? 'missing' : `${JSON.stringify(what)} is not a kind`}; choose what it is about: one of ${RELAY_WHATS.join(', ')}`))
  const value: Record<Exclude<RelayInputField, 'what'>, string> = { forName: '', forPhone: '', where: '', text: '', by: '' }
  for (const field of ['forName', 'forPhone', 'where', 'text', 'by'] as const) {
    // A phone number typed with a Chinese input method in full-width mode (１３８ ０４７１,
    // ＋８６) is the same number: NFKC makes those digits and signs ASCII. Nothing else is
    // normalised: a name or a place is kept as the member typed it.
    const v = field === 'forPhone' ? cleaned(raw[field]).normalize('NFKC') : cleaned(raw[field])
    value[field] = v
    const limit = RELAY_LIMITS[field]
    const bytes = Buffer.byteLength(v, 'utf8')
    if (v === '') {
      if (field === 'forName') errors.push(refusal(field, 'required', `empty; fill in ${LABEL[field]}`))
      else if (field === 'text' && what === 'other') errors.push(refusal(field, 'required', 'empty; for "other", write the message: say what they ask for'))
    } else if (bytes > limit) {
      errors.push({ ...refusal(field, 'tooLong', `too long: ${bytes} bytes, at most ${limit} (a Chinese character is 3 bytes); shorten it`), bytes, limit })
    } else if ((field === 'text' ? CONTROL_BUT_LINE_FEED : CONTROL).test(v)) {
      errors.push(
        refusal(
          field,
          'badChar',
          `has a character that is not allowed (a control character${field === 'text' ? '' : ' or a line break'}); type ${LABEL[field]} again${field === 'text' ? '' : ' on one line'}`,
        ),
      )
    } else if (field === 'forPhone' && !PHONE.test(v)) {
      errors.push(refusal(field, 'phone', 'only digits, spaces and + - ( ) are allowed; type the number again'))
    }
  }
  const [first, ...rest] = errors
  if (first) return { ok: false, errors: [first, ...rest] }
  return {
    ok: true,
    input: {
      what: what as RelayWhat,
      forName: value.forName,
      text: value.text,
      ...(value.forPhone !== '' ? { forPhone: value.forPhone } : {}),
      ...(value.where !== '' ? { where: value.where } : {}),
      ...(value.by !== '' ? { by: value.by } : {}),
    },
  }
}

function refusal(field: RelayInputField, problem: RelayProblem, says: string): RelayFieldError {
  return { code: problem === 'unknownKind' ? 'RELAY_UNKNOWN_KIND' : 'RELAY_INVALID', field, problem, message: `${field}: ${says}` }
}

/** A relay the rule refused, as HouseholdService.relay and the local API answer it: the first error at the top, all of them in `errors`. */
export function relayRefused(errors: readonly [RelayFieldError, ...RelayFieldError[]]): RelayRefusal {
  const [first] = errors
  return { ok: false, code: first.code, field: first.field, problem: first.problem, message: first.message, errors: [...errors] }
}

export type RelayRefusal = Extract<RelayResult, { ok: false }>

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
  | {
      ok: false
      code: RelayErrorCode
      field?: keyof RelayInput
      /** For RELAY_INVALID and RELAY_UNKNOWN_KIND from the rule (checkRelay): what was wrong with `field`. */
      problem?: RelayProblem
      /** In English: what went wrong and what to do. */
      message: string
      /** From the rule: every field's problem (the first is the one above). */
      errors?: RelayFieldError[]
    }

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
   * Checks the relay with checkRelay (a refusal is relayRefused of its errors), then
   * stores it durably (synchronous=FULL for both classes) before it returns, then
   * publishes it. `key`: an idempotency key from the form; the same key again returns the
   * first relay with `duplicate: true` and stores nothing.
   */
  relay(input: RelayInput, key: string): RelayResult
  markRead(broadcast: number, revision: number): BroadcastActionResult
  passedOn(broadcast: number, revision: number, households: number): BroadcastActionResult
  /** Called, at most every few ms, after anything in the snapshot may have changed. Returns unsubscribe. */
  subscribe(listener: () => void): () => void
}
