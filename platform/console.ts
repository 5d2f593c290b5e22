/**
 * The operator console: the platform's side of protocol/MQTT.md, as the banner 110 centre
 * would run it on a desk, and as the demo and the tests run it. It watches every
 * gateway's uplink, confirms each alarm, lets an operator (or a timer) answer it, and
 * publishes information to the grassland.
 *
 * Theory of operation (rule ids: MQTT.md's [MQTT-x.y], and [CONSOLE-n] cited by the tests):
 * - [CONSOLE-1] One persistent session: a fixed client id (`steppelink-console-<id>`),
 *   clean session false, QoS 1 subscriptions to the six uplink filters of [MQTT-4.8],
 *   issued again at every CONNACK. The broker keeps what gateways publish while the
 *   console is away and delivers it when the console comes back.
 * - [CONSOLE-2] Untrusted data is narrowed once, here: every payload is decoded (CBOR or
 *   JSON by its first byte, [MQTT-4.3]; a batch zstd-compressed or bare, refused over
 *   1 MiB decoded, [MQTT-4.2]) and checked against
 *   the schemas of protocol/mqtt.ts. One that fails becomes an `error` event with a
 *   stable code and is dropped; no payload stops the console. [MQTT-4.9] An item whose
 *   only fault is a kind, class or stage this version does not know is kept and shown,
 *   marked `unknownKind` ([MQTT-6.1]): a newer gateway's alarm still gets its receipt.
 * - [CONSOLE-3] Every copy of a case gets a receipt at once, each with a new command id,
 *   duplicates included: a copy means the gateway has not seen a receipt yet.
 *   [MQTT-4.10] [MQTT-4.12] A case is an alarm (on `alert`) or a request (class `request`:
 *   a call-back, a relayed message, on `event` or in a batch); the requests of one batch
 *   share one receipt.
 * - [CONSOLE-4] Items are deduplicated by id [MQTT-3.2]: cases for the life of the
 *   process, other items over the last `maxItemIds` ids. Each repeat is counted. Ids are
 *   opaque: `T4-00123:7` and, after a terminal-reset, `T4-00123@gw-0017.1:7` are two.
 * - [CONSOLE-5] Gateways are online from a birth until a death of the same or a later
 *   session; a death of an older session is stale and ignored [MQTT-2.3]. Every birth is
 *   answered with a `time` command naming the birth's session [MQTT-4.13].
 * - [CONSOLE-6] The console's stage of a case moves forward only, as canTake() asks the
 *   lifecycle (protocol/lifecycle.ts), the same for alarms and requests; each operator
 *   command is sent once per case. A receipt goes out for every copy whatever the stage
 *   ([MQTT-4.7]: a late receipt changes nothing at the gateway). What follows an
 *   acknowledgement by itself (AUTOMATIC_AFTER_ACKNOWLEDGEMENT) counts from it: dispatch
 *   and resolve for an alarm, only the resolve for a request (the hotline calls back;
 *   no patrol car).
 * - [CONSOLE-7] Commands are JSON, QoS 1, never retained [MQTT-5.4], each checked with
 *   `parseCommand` before it is published, so the console cannot send what a gateway
 *   would reject. Command ids are `<console id>-<start, base 36>-<counter>-<random>`:
 *   unique across restarts without a counter on disk.
 * - [CONSOLE-9] Text from the wire (ids, kinds, texts, messages, even a parser's quote of
 *   a payload) reaches a human screen only through `screenText`, applied where text leaves
 *   for a screen: `describeEvent`, `renderView` (before its own colours) and the CLI's
 *   plain output. Control characters, escape sequences and bidi overrides are shown as
 *   `\u001b`-style text, so a gateway or anyone publishing on the broker cannot clear the
 *   operator's screen, move the cursor, recolour a line or reverse it. `--json` needs no
 *   such step: JSON escapes every control character.
 * - [CONSOLE-8] State lives in memory. A real platform stores an alert durably before its
 *   receipt ([MQTT-4.1]); a restarted console has forgotten its alerts, and an alarm that
 *   arrives again after the restart is shown as new (the gateway ignores an answer for a
 *   stage it already has).
 */

import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import Type from 'typebox'
import { Compile } from 'typebox/compile'
import { noDelay } from '../gateway/uplink.js'
import { isForward } from '../protocol/lifecycle.js'
import type { Urgency } from '../protocol/messages.js'
import {
  BatchDecodeError,
  Birth,
  DEFAULT_TOPIC_PREFIX,
  Reply,
  TOPIC_ID_PATTERN,
  TerminalStatus,
  Time,
  UplinkEvent,
  decodeBatch,
  decodePayload,
  encodePayload,
  gatewayTopics,
  parseCommand,
  type Command,
  type CommandType,
} from '../protocol/mqtt.js'

// ---------------------------------------------------------------------------------------
// Options

export type AckMode = 'auto' | 'manual' | 'none'
export const ACK_MODES: readonly AckMode[] = ['auto', 'manual', 'none']
export const URGENCY_NAMES: readonly Urgency[] = ['info', 'warning', 'urgent']

/** The clock the automatic dispatch and resolve run on; injectable so tests can hold it. */
export interface ConsoleTimers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const CONSOLE_DEFAULTS = {
  prefix: DEFAULT_TOPIC_PREFIX,
  id: 'main',
  ack: 'manual' as AckMode,
  operator: 'Operator on duty',
  unit: 'patrol car 110-3',
  etaMin: 40,
  resolveText: 'Case closed by the 110 centre',
  keepaliveS: 30,
  reconnectS: 1,
  maxItemIds: 100_000,
}

/**
 * A console id names the persistent session and prefixes command ids. At most 59
 * characters, so that the client id `steppelink-console-<id>` stays within the 78 that
 * brokers must accept [MQTT-2.6].
 */
export const CONSOLE_ID_PATTERN = '^[A-Za-z0-9._:-]{1,59}$'

export interface ConsoleOptions {
  /** Broker URL: `mqtt://host:1883`, `mqtts://host:8883`, `ws://...`, `wss://...`. Required. */
  broker: string
  /** First topic levels; must be the gateways' `mqtt.prefix`. Default `steppelink/v1`. */
  prefix?: string
  /** This console's id (CONSOLE_ID_PATTERN). Names its persistent session and prefixes its command ids. Default `main`. */
  id?: string
  /**
   * MQTT client id. Default `steppelink-console-<id>`. Keep it the same from run to run:
   * the broker keeps the alarms that arrive while the console is away under it. Two
   * consoles running at once need two ids (the broker disconnects a duplicate).
   */
  clientId?: string
  username?: string
  password?: string
  /**
   * What happens to a new case (alarm or request) besides its receipt. 'auto': an
   * `acknowledged` at once (for a request with the text of REQUEST_ACKNOWLEDGEMENTS);
   * 'manual': the operator acknowledges (`acknowledge()`, or a key in the CLI); 'none':
   * receipts only. Default 'manual'.
   */
  ack?: AckMode
  /** Send `dispatched` this many seconds after an alarm's acknowledgement (never to a request). Default null: never by itself. */
  dispatchAfterS?: number | null
  /** Send `resolved` this many seconds after the acknowledgement of an alarm or a request. Default null: never by itself. */
  resolveAfterS?: number | null
  /** The unit of an automatic (or default) dispatch, ≤ 100 characters. Default 'patrol car 110-3'. */
  unit?: string
  /** Expected arrival of that unit, minutes (0–65535). Default 40. */
  etaMin?: number
  /** The text of an automatic (or default) resolve, ≤ 200 characters. Default 'Case closed by the 110 centre'. */
  resolveText?: string
  /** `by` of the acknowledgements, shown on the terminal, 1–100 characters. Default 'Operator on duty'. */
  operator?: string
  /** Send a `time` command, with the birth's `session`, after every birth [MQTT-4.13]. Default true. */
  sendTime?: boolean
  /** MQTT keep-alive, s. Default 30. */
  keepaliveS?: number
  /** Delay between reconnection attempts, s. Default 1. */
  reconnectS?: number
  /** Resolve `startConsole` only once subscribed (first CONNACK and SUBACK). Default true; false: at once, and keep trying in the background. */
  waitForBroker?: boolean
  /** Ids of items other than alerts remembered for deduplication. Default 100 000. */
  maxItemIds?: number
  /** Default: the global setTimeout/clearTimeout. */
  timers?: ConsoleTimers
  /** Local clock, UNIX ms. Default Date.now. */
  now?: () => number
  /** For command ids. Default Math.random. */
  random?: () => number
  /** Every event, in order: what `--json` prints, one per line. Must not throw. */
  onEvent?: (event: ConsoleEvent) => void
}

// ---------------------------------------------------------------------------------------
// Errors [STYLE 6, 7]: misuse of the API throws a ConsoleError; bad payloads are events.

export type ConsoleErrorCode =
  /** An option of startConsole is out of range (a bug of the caller). */
  | 'CONSOLE_BAD_OPTION'
  /** acknowledge/dispatch/resolve named a case (alarm or request) this console has not seen. */
  | 'CONSOLE_UNKNOWN_ALERT'
  /** The case is already at that stage or further ([CONSOLE-6]). */
  | 'CONSOLE_STAGE_PASSED'
  /** The command would fail its schema (text too long, bad target ...); the message names the field. */
  | 'CONSOLE_BAD_COMMAND'
  /** The console was closed. */
  | 'CONSOLE_CLOSED'
  /** The broker did not acknowledge a publication in time, or the client failed. */
  | 'CONSOLE_NOT_CONFIRMED'

export class ConsoleError extends Error {
  override readonly name = 'ConsoleError'
  constructor(
    readonly code: ConsoleErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** Codes of `error` events: what was wrong with something that came from the wire. */
export type PayloadErrorCode =
  /** Not CBOR, not JSON (for a batch: neither zstd nor a map, or over 1 MiB decoded), or empty where a message was expected. */
  | 'CONSOLE_UNDECODABLE'
  /** Decoded, but not what the contract says; the message names the first bad field. */
  | 'CONSOLE_BAD_SCHEMA'
  /** A topic outside the layout of [MQTT-2.1]. */
  | 'CONSOLE_BAD_TOPIC'
  /** A command the console issued did not reach the broker. */
  | 'CONSOLE_PUBLISH_FAILED'
  /** The broker refused a subscription. */
  | 'CONSOLE_SUBSCRIBE_REFUSED'
  /** The console failed on a valid payload (a bug); reported, and the console goes on. */
  | 'CONSOLE_INTERNAL'

// ---------------------------------------------------------------------------------------
// Stages as data [CONSOLE-6]

/**
 * The console's stages of a case, an alarm or a request alike, in order. `stored`: the
 * console has it (in memory); `received`: its receipt was issued; then the operators'
 * answers [MQTT-4.7]. The gateway's own stages (`sent`, `unconfirmed`) travel in the
 * uplink as `gatewayStage` (a request is never `unconfirmed`).
 */
export const CONSOLE_STAGES = ['stored', 'received', 'acknowledged', 'dispatched', 'resolved'] as const
export type ConsoleStage = (typeof CONSOLE_STAGES)[number]
export type OperatorAction = 'receipt' | 'acknowledge' | 'dispatch' | 'resolve'

/** The stage each operator action moves a case to. */
export const ACTION_STAGE: Readonly<Record<OperatorAction, ConsoleStage>> = { receipt: 'received', acknowledge: 'acknowledged', dispatch: 'dispatched', resolve: 'resolved' }

/**
 * Whether a case at `stage` can still take `action`: the one question every caller asks.
 * The rules are the lifecycle's (protocol/lifecycle.ts): stages only move forward, any
 * may be skipped (dispatch straight after the receipt); so a receipt, sent for every copy,
 * moves only `stored`.
 */
export function canTake(stage: ConsoleStage, action: OperatorAction): boolean {
  return isForward(stage, ACTION_STAGE[action])
}

/**
 * The classes of a case: an alarm (an emergency: help is sent) or a request (a call-back
 * request, a message relayed for a neighbour: the hotline answers it).
 */
export type CaseClass = 'alarm' | 'request'

/**
 * What the console does by itself after it acknowledges a case, each after its delay
 * (`dispatchAfterS`, `resolveAfterS`): an alarm gets help sent and is closed; a request
 * is only closed, because the hotline answers it by phone.
 */
export const AUTOMATIC_AFTER_ACKNOWLEDGEMENT: Readonly<Record<CaseClass, readonly ('dispatch' | 'resolve')[]>> = {
  alarm: ['dispatch', 'resolve'],
  request: ['resolve'],
}

/**
 * The `text` of a request's acknowledgement, by kind, when the operator gives none: the
 * herder reads it at the button ([MQTT-4.7]: at most 120 bytes). An alarm's shows `by`.
 */
export const REQUEST_ACKNOWLEDGEMENTS: Readonly<Record<string, string>> = {
  callback: '110 centre will call you back',
  relay: '110 centre has the message',
}
/** For a request of a kind this version does not know. */
export const OTHER_REQUEST_ACKNOWLEDGEMENT = '110 centre has your request'

/** The `text` of an acknowledgement when the operator gives none: a request's by its kind; none for an alarm. */
function acknowledgementText(c: { class: CaseClass; kind: string }): string | undefined {
  return c.class === 'request' ? (REQUEST_ACKNOWLEDGEMENTS[c.kind] ?? OTHER_REQUEST_ACKNOWLEDGEMENT) : undefined
}

// ---------------------------------------------------------------------------------------
// Events: one per uplink item, command and notable happening; `--json` prints each as a line.

type Time = { at: number; estimated: boolean }

interface LineBase {
  /** The item's id; a command's id for `command-sent`; the rejected command's for `reply`. */
  id: string | null
  /** The gateway: from the topic for uplink, the addressee for a command (null for area and all). */
  gateway: string | null
  terminal: string | null
  /** Contact ID code of an event; the error code of a reply or an error. */
  code: number | string | null
  kind: string | null
  /** The payload's own time ([MQTT-3.5]); for a command, when it was issued. */
  time: Time | null
  /** Local clock, UNIX ms: when it reached the console (for a command: when the broker acknowledged it). */
  receivedAt: number
  /** receivedAt − time.at: how old it was on arrival; null when there is no time or it is estimated. */
  ageMs: number | null
}

export interface AlertLine extends LineBase {
  type: 'alert'
  id: string
  class: string
  address: number | null
  number: number | null
  attempt: number
  /** The stage the gateway had when it published this copy (`stored`, `sent`, `unconfirmed`). */
  gatewayStage: string | null
  /** The console's stage when the copy arrived. */
  stage: ConsoleStage
  /** Copies of this id so far, this one included. */
  copies: number
  duplicate?: true
  text?: string
  /** A cancel: the id of the alarm it cancels, when the gateway knows it. */
  cancels?: string
  unknownKind?: true
}

export interface EventLine extends LineBase {
  type: 'event'
  id: string
  class: string
  restore: boolean
  address: number | null
  number: number | null
  attempt: number
  /** The batch it came in, or null when it came alone on `event`. */
  batch: string | null
  /** A request ([CONSOLE-3]): the console's stage of the case when this copy arrived. */
  stage?: ConsoleStage
  /** A request: copies of this id so far, this one included. */
  copies?: number
  duplicate?: true
  text?: string
  broadcast?: number
  /** A broadcast-read: which text of the broadcast was read (0 the first, +1 at each replacement). */
  revision?: number
  /** A terminal-reset: why, and the tag of the terminal's ids from now on. */
  reset?: TerminalReset
  unknownKind?: true
}

export interface StatusLine extends LineBase {
  type: 'status'
  /** `terminal`: a TerminalStatus ([MQTT-3.4]), kind `status`; `gateway`: the gateway's status ([MQTT-3.7]), kind `gateway-status`. */
  scope: 'terminal' | 'gateway'
  batch: string | null
  duplicate?: true
  latest?: Record<string, unknown>
  session?: number
}

export interface StateLine extends LineBase {
  type: 'state'
  kind: 'birth' | 'death'
  session: number
  /** The gateway's liveness after this message. */
  online: boolean
  /** A death of an older session than the latest birth: ignored [MQTT-2.3]. */
  stale?: true
}

export interface ReplyLine extends LineBase {
  type: 'reply'
  /** The rejected command's id (also in `id`). */
  command: string | null
  message: string
  topic: string
  /** Replies the gateway held back by its rate limit before this one ([MQTT-5.2]); 0 if none. */
  suppressed: number
}

export interface CommandLine extends LineBase {
  type: 'command-sent'
  id: string
  kind: CommandType
  topic: string
  /** The alert it is about (receipt: the first id), or null. */
  alert: string | null
  command: Command
}

export interface ErrorLine extends LineBase {
  type: 'error'
  code: PayloadErrorCode
  message: string
  topic: string | null
}

export interface ConnectionLine extends LineBase {
  type: 'connection'
  kind: 'connected' | 'disconnected' | 'failed'
  broker: string
  /** At `connected`: whether the broker still had this console's session. */
  sessionPresent?: boolean
  message?: string
}

export type ConsoleEvent = AlertLine | EventLine | StatusLine | StateLine | ReplyLine | CommandLine | ErrorLine | ConnectionLine

// ---------------------------------------------------------------------------------------
// What the console knows

export interface GatewayView {
  gateway: string
  online: boolean
  /** The session of the latest birth, or null if only deaths were seen. */
  session: number | null
  /** Local ms of the last change of `online`. */
  since: number
  area: string | null
  version: string | null
  encoding: string | null
  /** The last gateway status ([MQTT-3.7]), as published. */
  status: Record<string, unknown> | null
  /** Local ms of the last message from this gateway. */
  lastHeard: number
}

export interface TerminalView {
  terminal: string
  gateway: string
  address: number | null
  /** Local ms of the last item from or about the terminal. */
  lastHeard: number
  lastKind: string
  battery: number | null
  mains: boolean | null
  /** The gateway reported it lost (terminal-lost, or lost in its status) and not restored since. */
  lost: boolean
}

/** An alarm or a request, from its first copy until it is resolved and beyond. */
export interface CaseView {
  id: string
  class: CaseClass
  gateway: string
  terminal: string | null
  kind: string
  code: number | null
  address: number | null
  number: number | null
  time: Time
  text: string | null
  firstReceivedAt: number
  lastReceivedAt: number
  copies: number
  /** The highest `attempt` seen. */
  attempt: number
  /** The gateway's stage in the latest copy; `unconfirmed` (alarms only) means the herder was told to phone 110. */
  gatewayStage: string | null
  stage: ConsoleStage
  /** Local ms of each stage the console reached. */
  history: { stage: ConsoleStage; at: number }[]
  acknowledgedBy: string | null
  unit: string | null
  eta: number | null
  unknownKind: boolean
  /** A cancel: the alarm it cancels (the latest open one of its terminal), when the gateway knows it. */
  cancels: string | null
  /** The cancel by which the terminal took this alarm back; the operator still closes it. */
  cancelledBy: string | null
}

/** What a terminal-reset carries: why the gateway saw the terminal's event numbers restart, and the new `epoch` of its ids. */
export type TerminalReset = NonNullable<UplinkEvent['reset']>

export interface TroubleView {
  id: string
  gateway: string
  terminal: string | null
  kind: string
  code: number | null
  restore: boolean
  time: Time
  receivedAt: number
  /** A terminal-reset's details, or null. */
  reset: TerminalReset | null
}

export interface ConsoleCounters {
  messages: number
  /** Alarms (distinct ids), and every copy of them. */
  alerts: number
  alertCopies: number
  /** Requests (distinct ids), and every copy of them. */
  requests: number
  requestCopies: number
  /** Other items (trouble, status ...), distinct ids. */
  items: number
  duplicates: number
  errors: number
  commandsSent: number
}

/** A broadcast and who has read it, from the broadcast-read items of the gateways (deduplicated by id). */
export interface BroadcastView {
  broadcast: number
  /** What this console sent under this id (the latest text), or null: sent by another console or `steppelink console broadcast`. */
  sent: { to: string; text: string; urgency: Urgency; expires: number | null; at: number; times: number } | null
  /** Terminals that have read it, any text of it. */
  terminals: number
  /** Per gateway, how many of its terminals have read it, most first. */
  gateways: { gateway: string; terminals: number }[]
  /** The latest text read (0 the first, +1 at each replacement), and how many terminals have read that one. */
  latestRevision: number | null
  terminalsOfLatest: number
  /** Local ms of the last read, or null. */
  lastReadAt: number | null
}

export interface ConsoleSnapshot {
  connected: boolean
  gateways: GatewayView[]
  terminals: TerminalView[]
  /** Alarms not resolved, oldest first. */
  openAlarms: CaseView[]
  /** Requests not resolved, oldest first. */
  openRequests: CaseView[]
  /** Trouble events, newest first (the last 50). */
  trouble: TroubleView[]
  /** The last 20 `error` events, newest last. */
  errors: ErrorLine[]
  /** Broadcasts this console sent or saw read, newest first (the last 50). */
  broadcasts: BroadcastView[]
  counters: ConsoleCounters
}

export interface OperatorConsole {
  readonly id: string
  readonly clientId: string
  readonly prefix: string
  readonly ack: AckMode
  /** Subscribed to the broker now. */
  readonly connected: boolean
  /** A copy of what the console knows, for a view. */
  snapshot(): ConsoleSnapshot
  /** One case, alarm or request, resolved ones included; undefined if never seen. */
  case(id: string): CaseView | undefined
  /** Repeats per id (copies beyond the first), for every id that had one. */
  readonly duplicates: ReadonlyMap<string, number>
  /** Resolves once subscribed (at once if already). */
  whenConnected(): Promise<void>
  /**
   * The operator takes the case: `acknowledged` with `by` = the operator, and `text` for
   * the herder (≤ 200 characters; for a request, by default its REQUEST_ACKNOWLEDGEMENTS
   * text). Resolves with the command once the broker has it; rejects with a ConsoleError
   * (unknown case, stage passed, bad text).
   */
  acknowledge(alertId: string, text?: string): Promise<Command>
  /** Help is on the way: `dispatched` with unit (default: the option `unit`) and eta in minutes (default `etaMin`); an alarm's, or a request's if the operator decides so. */
  dispatch(alertId: string, unit?: string, etaMin?: number): Promise<Command>
  /** The case is closed: `resolved` with text (default `resolveText`). */
  resolve(alertId: string, text?: string): Promise<Command>
  /**
   * Information for the grassland [MQTT-5.7]. `to`: a gateway id, `all`, or `area:NAME`.
   * Urgency default 'info'; expiresInS: seconds from now (default: never expires);
   * broadcastId: default a new one (UNIX seconds, kept increasing); the same id again
   * replaces the text on the terminals. Who has read it shows in `snapshot().broadcasts`.
   */
  broadcast(to: string, text: string, urgency?: Urgency, expiresInS?: number, broadcastId?: number): Promise<Command>
  /** Stops timers, finishes what is in flight (up to a second), disconnects; pending commands reject with CONSOLE_CLOSED. */
  close(): Promise<void>
}

// ---------------------------------------------------------------------------------------
// Validators: the boundary [CONSOLE-2]

const checkEvent = Compile(UplinkEvent)
const checkStatus = Compile(TerminalStatus)
const checkBirth = Compile(Birth)
const checkReply = Compile(Reply)
// The same as UplinkEvent, but any text for kind, class and stage: an item of a newer
// version of the contract is kept and shown rather than dropped [MQTT-6.1].
const LenientEvent = Type.Object(
  { ...UplinkEvent.properties, class: Type.String(), kind: Type.String(), stage: Type.Optional(Type.String()) },
  { additionalProperties: true },
)
const checkLenientEvent = Compile(LenientEvent)
const checkBatch = Compile(
  Type.Object({ v: Type.Literal(1), id: Type.String(), gateway: Type.String(), items: Type.Array(Type.Unknown()) }, { additionalProperties: true }),
)
// MQTT.md fixes only these five fields of the gateway status [MQTT-3.7].
const checkGatewayStatus = Compile(
  Type.Object(
    { v: Type.Literal(1), type: Type.Literal('status'), gateway: Type.String(), session: Type.Integer({ minimum: 0 }), time: Time },
    { additionalProperties: true },
  ),
)

type Checked = { ok: true } | { ok: false; message: string }
function check(validator: { Check(v: unknown): boolean; Errors(v: unknown): { instancePath: string; message: string }[] }, value: unknown, what: string): Checked {
  if (validator.Check(value)) return { ok: true }
  const first = validator.Errors(value)[0]
  return { ok: false, message: `${what}: ${first ? `${first.instancePath || '/'} ${first.message}` : 'fails its schema'}` }
}

/** Whether the value is an object (not null, not an array): the precondition of every schema. */
const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

// ---------------------------------------------------------------------------------------
// Targets of broadcasts [MQTT-5.4]

const topicId = new RegExp(TOPIC_ID_PATTERN)

/** The command topic of a broadcast target: a gateway id, `all`, or `area:NAME`. Throws CONSOLE_BAD_COMMAND. */
export function targetTopic(prefix: string, to: string): { topic: string; gateway: string | null } {
  if (to === 'all') return { topic: gatewayTopics(prefix, 'x').allCommand, gateway: null }
  if (to.startsWith('area:')) {
    const area = to.slice(5)
    if (!topicId.test(area)) throw new ConsoleError('CONSOLE_BAD_COMMAND', `area name '${area}' must be 1-64 of A-Z a-z 0-9 . _ : -`)
    return { topic: gatewayTopics(prefix, 'x', area).areaCommand!, gateway: null }
  }
  if (!topicId.test(to)) throw new ConsoleError('CONSOLE_BAD_COMMAND', `'${to}' is not a gateway id (1-64 of A-Z a-z 0-9 . _ : -), 'all' or 'area:NAME'`)
  return { topic: gatewayTopics(prefix, to).command, gateway: to }
}

/** A command's body checked as a gateway would check it; throws CONSOLE_BAD_COMMAND naming the field. */
function checkedCommand(body: Record<string, unknown>): Command {
  const parsed = parseCommand(encodePayload(body, 'json'))
  if (!parsed.ok) throw new ConsoleError('CONSOLE_BAD_COMMAND', parsed.message)
  return parsed.command
}

/** Command ids unique across restarts without state on disk [CONSOLE-7]. */
function commandIds(id: string, now: () => number, random: () => number): () => string {
  const start = now().toString(36)
  let counter = 0
  return () => `${id}-${start}-${++counter}-${Math.floor(random() * 0x10000).toString(16).padStart(4, '0')}`
}

/** Broadcast ids: UNIX seconds, kept increasing within a process so two in a second do not replace each other. */
let lastBroadcastId = 0
function nextBroadcastId(nowMs: number): number {
  lastBroadcastId = Math.max(lastBroadcastId + 1, Math.floor(nowMs / 1000)) % 2 ** 32
  return lastBroadcastId
}

function broadcastBody(text: string, urgency: Urgency, expiresInS: number | undefined, broadcastId: number | undefined, nowMs: number): Record<string, unknown> {
  if (expiresInS !== undefined && !(Number.isFinite(expiresInS) && expiresInS > 0)) {
    throw new ConsoleError('CONSOLE_BAD_COMMAND', `expiresInS must be a number of seconds above 0, got ${expiresInS}`)
  }
  return {
    type: 'broadcast',
    broadcast: broadcastId ?? nextBroadcastId(nowMs),
    text,
    urgency,
    ...(expiresInS === undefined ? {} : { expires: Math.round(nowMs + expiresInS * 1000) }),
  }
}

// ---------------------------------------------------------------------------------------
// One broadcast (or its withdrawal) and out: `steppelink console broadcast`

/** What publishing one command needs, without a running console. */
export interface OneCommandOptions {
  broker: string
  prefix?: string
  /** Prefixes the command id. Default `main`. */
  id?: string
  username?: string
  password?: string
  /** A gateway id, `all`, or `area:NAME`. */
  to: string
  /** Give up when the broker has not acknowledged within this, ms. Default 30 000. */
  timeoutMs?: number
  now?: () => number
}

export interface BroadcastOptions extends OneCommandOptions {
  text: string
  /** Default 'info'. */
  urgency?: Urgency
  /** Seconds from now; default: never expires. */
  expiresInS?: number
  /** Default: UNIX seconds now. */
  broadcastId?: number
}

export interface WithdrawOptions extends OneCommandOptions {
  /** The id of the broadcast to take back (0-4294967295): the terminals remove it. */
  broadcast: number
}

/**
 * Publishes one broadcast command (QoS 1, not retained) on a connection of its own
 * (clean session, a client id of its own) and resolves once the broker has it (PUBACK),
 * with the `command-sent` event of it.
 * Throws CONSOLE_BAD_COMMAND before connecting if the command would be rejected, and
 * CONSOLE_NOT_CONFIRMED if the broker did not acknowledge in time (the broker may or may
 * not have it then).
 */
export function publishBroadcast(o: BroadcastOptions): Promise<CommandLine> {
  return publishOne(o, 'broadcast', (nowMs) => broadcastBody(o.text, o.urgency ?? 'info', o.expiresInS, o.broadcastId, nowMs))
}

/** Publishes one `broadcast-withdraw` command, as publishBroadcast publishes a broadcast. */
export function publishWithdraw(o: WithdrawOptions): Promise<CommandLine> {
  return publishOne(o, 'withdrawal', () => ({ type: 'broadcast-withdraw', broadcast: o.broadcast }))
}

async function publishOne(o: OneCommandOptions, what: string, body: (nowMs: number) => Record<string, unknown>): Promise<CommandLine> {
  checkOptions({ broker: o.broker, ...(o.prefix === undefined ? {} : { prefix: o.prefix }), ...(o.id === undefined ? {} : { id: o.id }) })
  const now = o.now ?? Date.now
  const prefix = o.prefix ?? CONSOLE_DEFAULTS.prefix
  const id = o.id ?? CONSOLE_DEFAULTS.id
  const { topic, gateway } = targetTopic(prefix, o.to)
  const newId = commandIds(id, now, Math.random)
  const command = checkedCommand({ v: 1, id: newId(), ...body(now()), at: now() })
  const timeoutMs = o.timeoutMs ?? 30_000
  const client = mqtt.connect(o.broker, {
    // A client id of its own (never the console's, whose session it would take over), clean.
    clientId: `steppelink-console-${id.slice(0, 40)}-b${Math.floor(Math.random() * 0xffffffff).toString(16)}`,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: Math.min(timeoutMs, 30_000),
    ...(o.username === undefined ? {} : { username: o.username }),
    ...(o.password === undefined ? {} : { password: o.password }),
  })
  let lastError: string | null = null
  client.on('error', (e) => {
    lastError = e.message
  })
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        reject(
          new ConsoleError(
            'CONSOLE_NOT_CONFIRMED',
            `the broker ${o.broker} did not acknowledge the ${what} within ${timeoutMs / 1000} s${lastError === null ? '' : ` (last error: ${lastError})`}`,
          ),
        )
      }, timeoutMs)
      // Published at once: mqtt.js keeps it until the connection is up.
      client.publish(topic, encodePayload(command, 'json'), { qos: 1, retain: false }, (err) => {
        if (err) reject(new ConsoleError('CONSOLE_NOT_CONFIRMED', `publishing the ${what} failed: ${err.message}`, { cause: err }))
        else resolve()
      })
    })
  } finally {
    clearTimeout(timer)
    await client.endAsync(true).catch(() => {})
  }
  const receivedAt = now()
  const at = command.at ?? receivedAt
  return { type: 'command-sent', id: command.id, gateway, terminal: null, code: null, kind: command.type, time: { at, estimated: false }, receivedAt, ageMs: receivedAt - at, topic, alert: null, command }
}

// ---------------------------------------------------------------------------------------
// The console

const UPLINK = ['alert', 'event', 'batch', 'state', 'status', 'reply'] as const
type Uplink = (typeof UPLINK)[number]

interface CaseRecord extends CaseView {
  timers: unknown[]
}

/**
 * What one message leaves to do once all its items are in: the receipt of its cases (one
 * command for a whole batch), then the automatic acknowledgements, in that order.
 */
interface Followup {
  receipts: CaseRecord[]
  acknowledgements: CaseRecord[]
}

/** A receipt names at most this many ids ([MQTT-5.5]). */
const MAX_RECEIPT_IDS = 1000

const MAX_TROUBLE = 50
const MAX_ERRORS = 20
const MAX_BROADCASTS = 50

interface BroadcastRecord {
  broadcast: number
  sent: BroadcastView['sent']
  /** By the broadcast-read item's id, `<gateway>/read/<broadcast>.<revision>/<terminal>`: one per text and terminal. */
  reads: Map<string, { gateway: string; terminal: string; revision: number | null }>
  lastReadAt: number | null
}

function checkOptions(o: ConsoleOptions): void {
  const bad = (message: string) => {
    throw new ConsoleError('CONSOLE_BAD_OPTION', message)
  }
  let url: URL | undefined
  try {
    url = new URL(o.broker)
  } catch {
    bad(`broker: '${o.broker}' is not a URL (mqtt://host:1883)`)
  }
  if (url && !['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'].includes(url.protocol)) bad(`broker: '${o.broker}' is not an mqtt://, mqtts://, ws:// or wss:// URL`)
  if (o.id !== undefined && !new RegExp(CONSOLE_ID_PATTERN).test(o.id)) bad(`id: '${o.id}' must be 1-59 of A-Z a-z 0-9 . _ : -`)
  if (o.ack !== undefined && !ACK_MODES.includes(o.ack)) bad(`ack: '${String(o.ack)}' must be one of ${ACK_MODES.join(', ')}`)
  for (const k of ['dispatchAfterS', 'resolveAfterS'] as const) {
    const v = o[k]
    if (v !== undefined && v !== null && !(Number.isFinite(v) && v >= 0 && v <= 2_000_000)) bad(`${k}: must be seconds from 0 to 2000000, got ${v}`)
  }
  if (o.etaMin !== undefined && !(Number.isInteger(o.etaMin) && o.etaMin >= 0 && o.etaMin <= 65535)) bad(`etaMin: must be whole minutes from 0 to 65535, got ${o.etaMin}`)
  if (o.unit !== undefined && (o.unit.length < 1 || o.unit.length > 100)) bad('unit: must be 1-100 characters')
  if (o.operator !== undefined && (o.operator.length < 1 || o.operator.length > 100)) bad('operator: must be 1-100 characters')
  if (o.resolveText !== undefined && o.resolveText.length > 200) bad('resolveText: must be at most 200 characters')
  if (o.prefix !== undefined && (o.prefix === '' || /[+#\0]/.test(o.prefix) || o.prefix.startsWith('/') || o.prefix.endsWith('/'))) {
    bad(`prefix: '${o.prefix}' must be topic levels without + # or a leading or trailing /`)
  }
}

class Console implements OperatorConsole {
  readonly id: string
  readonly clientId: string
  readonly prefix: string
  readonly ack: AckMode
  readonly #o: ConsoleOptions
  readonly #client: MqttClient
  readonly #timers: ConsoleTimers
  readonly #now: () => number
  readonly #newId: () => string
  readonly #gateways = new Map<string, GatewayView>()
  readonly #terminals = new Map<string, TerminalView>()
  /** Alarms and requests by id, for the life of the process [CONSOLE-4]. */
  readonly #cases = new Map<string, CaseRecord>()
  /** Alarm id -> the cancel that names it, also when the cancel came first (a console restarted in between). */
  readonly #cancelledBy = new Map<string, string>()
  /** Ids of other items, oldest first (Map keeps insertion order), for deduplication [CONSOLE-4]. */
  readonly #itemIds = new Map<string, true>()
  readonly #duplicates = new Map<string, number>()
  readonly #trouble: TroubleView[] = []
  readonly #errors: ErrorLine[] = []
  /** By broadcast id, oldest first (Map order), at most MAX_BROADCASTS. */
  readonly #broadcasts = new Map<number, BroadcastRecord>()
  readonly #counters: ConsoleCounters = { messages: 0, alerts: 0, alertCopies: 0, requests: 0, requestCopies: 0, items: 0, duplicates: 0, errors: 0, commandsSent: 0 }
  /** Rejecters of commands waiting for their PUBACK; a close rejects them (mqtt.js would never call back). */
  readonly #pending = new Set<(e: Error) => void>()
  /** Messages are handled one after the other, in arrival order, batches (async) included. */
  #queue: Promise<void> = Promise.resolve()
  #connected = false
  #closed = false
  #lastFailure: string | null = null
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = []

  constructor(o: ConsoleOptions) {
    checkOptions(o)
    this.#o = o
    this.id = o.id ?? CONSOLE_DEFAULTS.id
    this.clientId = o.clientId ?? `steppelink-console-${this.id}`
    this.prefix = o.prefix ?? CONSOLE_DEFAULTS.prefix
    this.ack = o.ack ?? CONSOLE_DEFAULTS.ack
    this.#timers = o.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) }
    this.#now = o.now ?? Date.now
    this.#newId = commandIds(this.id, this.#now, o.random ?? Math.random)
    const options: IClientOptions = {
      clientId: this.clientId,
      clean: false, // [CONSOLE-1] [MQTT-4.8]
      protocolVersion: 4,
      keepalive: o.keepaliveS ?? CONSOLE_DEFAULTS.keepaliveS,
      reconnectPeriod: (o.reconnectS ?? CONSOLE_DEFAULTS.reconnectS) * 1000,
      connectTimeout: 10_000,
      resubscribe: false, // we subscribe ourselves at every CONNACK
      ...(o.username === undefined ? {} : { username: o.username }),
      ...(o.password === undefined ? {} : { password: o.password }),
    }
    this.#client = mqtt.connect(o.broker, options)
    this.#client.on('connect', (connack) => {
      // A receipt must not wait for the broker's delayed ACK (see noDelay).
      noDelay(this.#client)
      this.#onConnect(connack.sessionPresent)
    })
    this.#client.on('close', () => {
      if (!this.#connected || this.#closed) return
      this.#connected = false
      this.#emit({ ...this.#blank(), type: 'connection', kind: 'disconnected', broker: this.#o.broker })
    })
    this.#client.on('error', (e) => {
      // mqtt.js retries by itself; say so once per distinct failure, not every second.
      if (e.message === this.#lastFailure) return
      this.#lastFailure = e.message
      this.#emit({ ...this.#blank(), type: 'connection', kind: 'failed', broker: this.#o.broker, message: e.message })
    })
    this.#client.on('message', (topic, payload) => {
      const receivedAt = this.#now()
      this.#queue = this.#queue.then(() => this.#onMessage(topic, payload, receivedAt))
    })
  }

  get connected(): boolean {
    return this.#connected
  }

  get duplicates(): ReadonlyMap<string, number> {
    return this.#duplicates
  }

  whenConnected(): Promise<void> {
    if (this.#closed) return Promise.reject(new ConsoleError('CONSOLE_CLOSED', 'the console is closed'))
    if (this.#connected) return Promise.resolve()
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  // -- connection ------------------------------------------------------------------------

  #onConnect(sessionPresent: boolean): void {
    const filters = UPLINK.map((t) => `${this.prefix}/gw/+/${t}`)
    this.#client.subscribe(filters, { qos: 1 }, (err, granted) => {
      if (err) {
        // The connection went away meanwhile; the next CONNACK subscribes again.
        return
      }
      const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic)
      if (refused.length > 0) {
        this.#error('CONSOLE_SUBSCRIBE_REFUSED', `the broker refused the subscriptions ${refused.join(', ')}: check its access rules`, null, null)
      }
      this.#connected = true
      this.#lastFailure = null
      this.#emit({ ...this.#blank(), type: 'connection', kind: 'connected', broker: this.#o.broker, sessionPresent })
      for (const w of this.#waiters.splice(0)) w.resolve()
    })
  }

  // -- the boundary [CONSOLE-2] ------------------------------------------------------------

  async #onMessage(topic: string, payload: Buffer, receivedAt: number): Promise<void> {
    if (this.#closed) return
    this.#counters.messages++
    try {
      const rest = topic.startsWith(`${this.prefix}/gw/`) ? topic.slice(this.prefix.length + 4).split('/') : []
      const [gateway, what] = rest
      if (rest.length !== 2 || gateway === undefined || what === undefined || !(UPLINK as readonly string[]).includes(what)) {
        this.#error('CONSOLE_BAD_TOPIC', `topic ${topic} is not <prefix>/gw/<gateway>/<${UPLINK.join('|')}>`, topic, null, receivedAt)
        return
      }
      const kind = what as Uplink
      if (payload.length === 0) {
        // An empty retained message clears state or status [MQTT-4.3]: not a message.
        if (kind !== 'state' && kind !== 'status') this.#error('CONSOLE_UNDECODABLE', `empty payload on ${kind}`, topic, gateway, receivedAt)
        return
      }
      let value: unknown
      try {
        value = kind === 'batch' ? await decodeBatch(payload) : decodePayload(payload)
      } catch (e) {
        // A batch's own error says what it is, and its code: too large, or undecodable.
        const message = e instanceof BatchDecodeError ? `${e.message} (${e.code})` : `${kind} of ${payload.length} bytes is not CBOR or JSON: ${(e as Error).message}`
        this.#error('CONSOLE_UNDECODABLE', message, topic, gateway, receivedAt)
        return
      }
      if (!isMap(value)) {
        this.#error('CONSOLE_BAD_SCHEMA', `${kind}: a payload must be a map/object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`, topic, gateway, receivedAt)
        return
      }
      const followup: Followup = { receipts: [], acknowledgements: [] }
      try {
        switch (kind) {
          case 'alert':
            return this.#item(value, gateway, topic, receivedAt, null, true, followup)
          case 'event':
            return this.#item(value, gateway, topic, receivedAt, null, false, followup)
          case 'batch':
            return this.#batch(value, gateway, topic, receivedAt, followup)
          case 'state':
            return this.#state(value, gateway, topic, receivedAt)
          case 'status':
            return this.#gatewayStatus(value, gateway, topic, receivedAt)
          case 'reply':
            return this.#reply(value, gateway, topic, receivedAt)
          default:
            return assertNever(kind)
        }
      } finally {
        // Also when an item failed (a bug, CONSOLE_INTERNAL below): the cases before it get their receipt.
        this.#followUp(gateway, followup)
      }
    } catch (e) {
      this.#error('CONSOLE_INTERNAL', `handling ${topic} failed: ${(e as Error).stack ?? String(e)}`, topic, null, receivedAt)
    }
  }

  #batch(value: Record<string, unknown>, gateway: string, topic: string, receivedAt: number, followup: Followup): void {
    const c = check(checkBatch, value, 'batch')
    if (!c.ok) return this.#error('CONSOLE_BAD_SCHEMA', c.message, topic, gateway, receivedAt)
    // Each item on its own: one bad item does not lose the others [MQTT-4.2].
    const b = value as { id: string; items: unknown[] }
    b.items.forEach((item, i) => {
      if (!isMap(item)) return this.#error('CONSOLE_BAD_SCHEMA', `batch ${b.id} item ${i}: not a map/object`, topic, gateway, receivedAt)
      this.#item(item, gateway, topic, receivedAt, b.id, false, followup, ` (batch ${b.id} item ${i})`)
    })
  }

  /** An UplinkEvent or a TerminalStatus, alone or from a batch. Alarms are handled as alerts wherever they come, requests as cases. */
  #item(value: Record<string, unknown>, gateway: string, topic: string, receivedAt: number, batch: string | null, onAlertTopic: boolean, followup: Followup, where = ''): void {
    if (value.kind === 'status' && !onAlertTopic) {
      const c = check(checkStatus, value, `terminal status${where}`)
      if (!c.ok) return this.#error('CONSOLE_BAD_SCHEMA', c.message, topic, gateway, receivedAt)
      return this.#terminalStatus(value as TerminalStatus, gateway, receivedAt, batch)
    }
    let unknownKind = false
    const strict = check(checkEvent, value, `${onAlertTopic ? 'alert' : 'event'}${where}`)
    if (!strict.ok) {
      if (!checkLenientEvent.Check(value)) return this.#error('CONSOLE_BAD_SCHEMA', strict.message, topic, gateway, receivedAt)
      unknownKind = true
    }
    const e = value as UplinkEvent
    if (onAlertTopic || e.class === 'alarm') return this.#alert(e, gateway, receivedAt, unknownKind, followup)
    if (e.class === 'request') return this.#request(e, gateway, receivedAt, batch, unknownKind, followup)
    this.#event(e, gateway, receivedAt, batch, unknownKind)
  }

  // -- cases: alarms and requests [MQTT-4.9] [MQTT-4.10] ----------------------------------------

  /** The case of this copy, new or known; counts it. */
  #case(e: UplinkEvent, cls: CaseClass, gateway: string, receivedAt: number, unknownKind: boolean): { a: CaseRecord; duplicate: boolean } {
    let a = this.#cases.get(e.id)
    const duplicate = a !== undefined
    if (cls === 'alarm') this.#counters.alertCopies++
    else this.#counters.requestCopies++
    if (a === undefined) {
      if (cls === 'alarm') this.#counters.alerts++
      else this.#counters.requests++
      a = {
        id: e.id,
        class: cls,
        gateway,
        terminal: e.terminal,
        kind: e.kind,
        code: e.code,
        address: e.address,
        number: e.number,
        time: e.time,
        text: e.text ?? null,
        firstReceivedAt: receivedAt,
        lastReceivedAt: receivedAt,
        copies: 1,
        attempt: e.attempt,
        gatewayStage: e.stage ?? null,
        stage: 'stored',
        history: [{ stage: 'stored', at: receivedAt }],
        acknowledgedBy: null,
        unit: null,
        eta: null,
        unknownKind,
        cancels: e.cancels ?? null,
        cancelledBy: this.#cancelledBy.get(e.id) ?? null,
        timers: [],
      }
      this.#cases.set(e.id, a)
    } else {
      a.copies++
      a.lastReceivedAt = receivedAt
      a.attempt = Math.max(a.attempt, e.attempt)
      if (e.stage !== undefined) a.gatewayStage = e.stage
      this.#countDuplicate(e.id)
    }
    if (e.cancels !== undefined && !this.#cancelledBy.has(e.cancels)) {
      // Shown, not acted on: the terminal's word that the alarm was a mistake or is over; an operator closes it.
      this.#cancelledBy.set(e.cancels, e.id)
      const cancelled = this.#cases.get(e.cancels)
      if (cancelled !== undefined) cancelled.cancelledBy = e.id
    }
    this.#touchTerminal(e.terminal, gateway, e.address, e.kind, receivedAt)
    this.#touchGateway(gateway, receivedAt)
    return { a, duplicate }
  }

  #alert(e: UplinkEvent, gateway: string, receivedAt: number, unknownKind: boolean, followup: Followup): void {
    const { a, duplicate } = this.#case(e, 'alarm', gateway, receivedAt, unknownKind)
    this.#emit({
      ...this.#times(e.time, receivedAt),
      type: 'alert',
      id: e.id,
      gateway,
      terminal: e.terminal,
      code: e.code,
      kind: e.kind,
      class: e.class,
      address: e.address,
      number: e.number,
      attempt: e.attempt,
      gatewayStage: e.stage ?? null,
      stage: a.stage,
      copies: a.copies,
      ...(duplicate ? { duplicate: true as const } : {}),
      ...(e.text === undefined ? {} : { text: e.text }),
      ...(e.cancels === undefined ? {} : { cancels: e.cancels }),
      ...(unknownKind ? { unknownKind: true as const } : {}),
    })
    this.#caseFollowup(a, duplicate, followup)
  }

  /** A request is a case too [CONSOLE-3], but not an emergency: an `event` line, its own list. */
  #request(e: UplinkEvent, gateway: string, receivedAt: number, batch: string | null, unknownKind: boolean, followup: Followup): void {
    const { a, duplicate } = this.#case(e, 'request', gateway, receivedAt, unknownKind)
    this.#emit({
      ...this.#times(e.time, receivedAt),
      ...eventFields(e, gateway, batch, unknownKind),
      stage: a.stage,
      copies: a.copies,
      ...(duplicate ? { duplicate: true as const } : {}),
    })
    this.#caseFollowup(a, duplicate, followup)
  }

  /** [CONSOLE-3] A receipt for every copy, a new command id each time; a new case is acknowledged in `auto`. */
  #caseFollowup(a: CaseRecord, duplicate: boolean, followup: Followup): void {
    followup.receipts.push(a)
    if (!duplicate && this.ack === 'auto') followup.acknowledgements.push(a)
  }

  /** The receipt of what one message brought, in one command (a batch's requests together), then the automatic acknowledgements. */
  #followUp(gateway: string, f: Followup): void {
    if (f.receipts.length === 0) return
    for (const a of f.receipts) this.#advance(a, 'receipt')
    const ids = [...new Set(f.receipts.map((a) => a.id))]
    for (let i = 0; i < ids.length; i += MAX_RECEIPT_IDS) {
      const some = ids.slice(i, i + MAX_RECEIPT_IDS)
      this.#send(gatewayTopics(this.prefix, gateway).command, gateway, { type: 'receipt', ids: some }, some[0]!).catch(() => {})
    }
    for (const a of f.acknowledgements) this.#acknowledge(a).catch(() => {})
  }

  #advance(a: CaseRecord, action: OperatorAction): boolean {
    if (!canTake(a.stage, action)) return false
    const next = ACTION_STAGE[action]
    a.stage = next
    a.history.push({ stage: next, at: this.#now() })
    return true
  }

  #lookup(alertId: string, action: OperatorAction): CaseRecord {
    if (this.#closed) throw new ConsoleError('CONSOLE_CLOSED', 'the console is closed')
    const a = this.#cases.get(alertId)
    if (a === undefined) throw new ConsoleError('CONSOLE_UNKNOWN_ALERT', `no alarm or request '${alertId}' has reached this console`)
    if (!canTake(a.stage, action)) throw new ConsoleError('CONSOLE_STAGE_PASSED', `${a.class} ${alertId} is already ${a.stage}`)
    return a
  }

  async acknowledge(alertId: string, text?: string): Promise<Command> {
    return this.#acknowledge(this.#lookup(alertId, 'acknowledge'), text)
  }

  async #acknowledge(a: CaseRecord, text = acknowledgementText(a)): Promise<Command> {
    const by = this.#o.operator ?? CONSOLE_DEFAULTS.operator
    const sent = this.#answer(a, 'acknowledge', { type: 'acknowledged', alert: a.id, by, ...(text === undefined ? {} : { text }) })
    a.acknowledgedBy = by
    // What follows by itself counts from the acknowledgement [CONSOLE-6].
    const delays = { dispatch: this.#o.dispatchAfterS, resolve: this.#o.resolveAfterS }
    const actions = { dispatch: () => this.#dispatch(a), resolve: () => this.#resolve(a) }
    for (const action of AUTOMATIC_AFTER_ACKNOWLEDGEMENT[a.class]) {
      const s = delays[action]
      if (s === undefined || s === null) continue
      a.timers.push(
        this.#timers.setTimeout(() => {
          if (!this.#closed && canTake(a.stage, action)) actions[action]().catch(() => {})
        }, s * 1000),
      )
    }
    return sent
  }

  async dispatch(alertId: string, unit?: string, etaMin?: number): Promise<Command> {
    return this.#dispatch(this.#lookup(alertId, 'dispatch'), unit, etaMin)
  }

  #dispatch(a: CaseRecord, unit = this.#o.unit ?? CONSOLE_DEFAULTS.unit, eta: number | undefined = this.#o.etaMin ?? CONSOLE_DEFAULTS.etaMin): Promise<Command> {
    const sent = this.#answer(a, 'dispatch', { type: 'dispatched', alert: a.id, unit, eta })
    a.unit = unit
    a.eta = eta
    return sent
  }

  async resolve(alertId: string, text?: string): Promise<Command> {
    return this.#resolve(this.#lookup(alertId, 'resolve'), text)
  }

  #resolve(a: CaseRecord, text = this.#o.resolveText ?? CONSOLE_DEFAULTS.resolveText): Promise<Command> {
    const sent = this.#answer(a, 'resolve', { type: 'resolved', alert: a.id, ...(text === '' ? {} : { text }) })
    for (const t of a.timers.splice(0)) this.#timers.clearTimeout(t)
    return sent
  }

  /** Checks the answer, moves the stage, publishes: a bad text throws before anything changes. */
  #answer(a: CaseRecord, action: OperatorAction, body: Record<string, unknown>): Promise<Command> {
    const command = checkedCommand({ v: 1, id: this.#newId(), ...body, at: this.#now() })
    this.#advance(a, action)
    return this.#publish(gatewayTopics(this.prefix, a.gateway).command, a.gateway, command, a.id)
  }

  async broadcast(to: string, text: string, urgency: Urgency = 'info', expiresInS?: number, broadcastId?: number): Promise<Command> {
    if (this.#closed) throw new ConsoleError('CONSOLE_CLOSED', 'the console is closed')
    const { topic, gateway } = targetTopic(this.prefix, to)
    const sent = await this.#send(topic, gateway, broadcastBody(text, urgency, expiresInS, broadcastId, this.#now()), null)
    if (sent.type === 'broadcast') {
      const b = this.#broadcast(sent.broadcast, true)
      b.sent = { to, text: sent.text, urgency: sent.urgency, expires: sent.expires ?? null, at: sent.at ?? this.#now(), times: (b.sent?.times ?? 0) + 1 }
    }
    return sent
  }

  /** The record of a broadcast, made if need be; `renewed` moves it to the newest. */
  #broadcast(id: number, renewed: boolean): BroadcastRecord {
    let b = this.#broadcasts.get(id)
    if (b === undefined) b = { broadcast: id, sent: null, reads: new Map(), lastReadAt: null }
    if (renewed || !this.#broadcasts.has(id)) {
      this.#broadcasts.delete(id)
      this.#broadcasts.set(id, b)
    }
    for (const old of this.#broadcasts.keys()) {
      if (this.#broadcasts.size <= MAX_BROADCASTS) break
      this.#broadcasts.delete(old)
    }
    return b
  }

  /** Builds, checks and publishes a command [CONSOLE-7]. */
  #send(topic: string, gateway: string | null, body: Record<string, unknown>, alert: string | null): Promise<Command> {
    let command: Command
    try {
      command = checkedCommand({ v: 1, id: this.#newId(), ...body, at: this.#now() })
    } catch (e) {
      return Promise.reject(e)
    }
    return this.#publish(topic, gateway, command, alert)
  }

  #publish(topic: string, gateway: string | null, command: Command, alert: string | null): Promise<Command> {
    const sent = new Promise<Command>((resolve, reject) => {
      if (this.#closed) return reject(new ConsoleError('CONSOLE_CLOSED', 'the console is closed'))
      const fail = (e: Error) => {
        this.#pending.delete(fail)
        reject(e)
      }
      this.#pending.add(fail)
      this.#client.publish(topic, encodePayload(command, 'json'), { qos: 1, retain: false }, (err) => {
        if (!this.#pending.delete(fail)) return
        if (err) reject(new ConsoleError('CONSOLE_NOT_CONFIRMED', `publishing ${command.type} ${command.id} failed: ${err.message}`, { cause: err }))
        else resolve(command)
      })
    })
    sent.then(
      () => {
        this.#counters.commandsSent++
        const receivedAt = this.#now()
        const at = command.at ?? receivedAt
        this.#emit({
          type: 'command-sent',
          id: command.id,
          gateway,
          terminal: alert === null ? null : (this.#cases.get(alert)?.terminal ?? null),
          code: null,
          kind: command.type,
          time: { at, estimated: false },
          receivedAt,
          ageMs: receivedAt - at,
          topic,
          alert,
          command,
        })
      },
      (e: Error) => this.#error('CONSOLE_PUBLISH_FAILED', e.message, topic, gateway),
    )
    return sent
  }

  // -- other items ---------------------------------------------------------------------------

  /** Remembers an item id; true if it was seen before [CONSOLE-4]. */
  #seen(id: string): boolean {
    if (this.#itemIds.has(id)) {
      this.#countDuplicate(id)
      return true
    }
    this.#itemIds.set(id, true)
    this.#counters.items++
    const max = this.#o.maxItemIds ?? CONSOLE_DEFAULTS.maxItemIds
    for (const old of this.#itemIds.keys()) {
      if (this.#itemIds.size <= max) break
      this.#itemIds.delete(old)
      this.#duplicates.delete(old)
    }
    return false
  }

  #countDuplicate(id: string): void {
    this.#counters.duplicates++
    this.#duplicates.set(id, (this.#duplicates.get(id) ?? 0) + 1)
  }

  #event(e: UplinkEvent, gateway: string, receivedAt: number, batch: string | null, unknownKind: boolean): void {
    const duplicate = this.#seen(e.id)
    this.#touchGateway(gateway, receivedAt)
    if (!duplicate) {
      const t = this.#touchTerminal(e.terminal, gateway, e.address, e.kind, receivedAt)
      if (t !== null) {
        if (e.kind === 'terminal-lost') t.lost = true
        if (e.kind === 'terminal-restored') t.lost = false
        if (e.kind === 'mains-lost') t.mains = false
        if (e.kind === 'mains-restored') t.mains = true
      }
      if (e.class === 'trouble') {
        this.#trouble.unshift({ id: e.id, gateway, terminal: e.terminal, kind: e.kind, code: e.code, restore: e.restore, time: e.time, receivedAt, reset: e.reset ?? null })
        this.#trouble.length = Math.min(this.#trouble.length, MAX_TROUBLE)
      }
    }
    // Reads are kept by id too, beyond the window of #seen: each id is one terminal reading one text.
    if (e.kind === 'broadcast-read' && e.broadcast !== undefined) {
      const b = this.#broadcast(e.broadcast, false)
      if (!b.reads.has(e.id)) {
        b.reads.set(e.id, { gateway, terminal: e.terminal ?? e.id, revision: e.revision ?? null })
        b.lastReadAt = receivedAt
      }
    }
    this.#emit({
      ...this.#times(e.time, receivedAt),
      ...eventFields(e, gateway, batch, unknownKind),
      ...(duplicate ? { duplicate: true as const } : {}),
    })
  }

  #terminalStatus(s: TerminalStatus, gateway: string, receivedAt: number, batch: string | null): void {
    const duplicate = this.#seen(s.id)
    this.#touchGateway(gateway, receivedAt)
    if (!duplicate) {
      const t = this.#touchTerminal(s.terminal, gateway, s.address, 'status', receivedAt)
      if (t !== null) {
        t.mains = s.latest.mains
        t.battery = s.latest.battery ?? t.battery
      }
    }
    this.#emit({
      ...this.#times(s.time, receivedAt),
      type: 'status',
      scope: 'terminal',
      id: s.id,
      gateway,
      terminal: s.terminal,
      code: null,
      kind: 'status',
      batch,
      latest: s.latest,
      ...(duplicate ? { duplicate: true as const } : {}),
    })
  }

  #touchTerminal(terminal: string | null, gateway: string, address: number | null, kind: string, at: number): TerminalView | null {
    if (terminal === null) return null
    let t = this.#terminals.get(terminal)
    if (t === undefined) {
      t = { terminal, gateway, address, lastHeard: at, lastKind: kind, battery: null, mains: null, lost: false }
      this.#terminals.set(terminal, t)
    }
    t.gateway = gateway
    t.address = address ?? t.address
    t.lastHeard = at
    t.lastKind = kind
    return t
  }

  #touchGateway(gateway: string, at: number): GatewayView {
    let g = this.#gateways.get(gateway)
    if (g === undefined) {
      // Heard before any state: it publishes, so it is online, session not yet known.
      g = { gateway, online: true, session: null, since: at, area: null, version: null, encoding: null, status: null, lastHeard: at }
      this.#gateways.set(gateway, g)
    }
    g.lastHeard = at
    return g
  }

  // -- liveness [MQTT-2.3] [CONSOLE-5] -------------------------------------------------------

  #state(value: Record<string, unknown>, gateway: string, topic: string, receivedAt: number): void {
    const c = check(checkBirth, value, 'state')
    if (!c.ok) return this.#error('CONSOLE_BAD_SCHEMA', c.message, topic, gateway, receivedAt)
    const b = value as Birth
    const known = this.#gateways.get(gateway)
    const g = this.#touchGateway(gateway, receivedAt)
    let stale = false
    if (b.type === 'birth') {
      if (!g.online || known === undefined) g.since = receivedAt
      g.online = true
      g.session = b.session
      g.area = b.area ?? null
      g.version = b.version ?? null
      g.encoding = b.encoding ?? null
    } else {
      stale = g.session !== null && b.session < g.session
      if (!stale) {
        if (g.online || known === undefined) g.since = receivedAt
        g.online = false
      }
    }
    this.#emit({
      ...this.#times(b.time ?? null, receivedAt),
      type: 'state',
      id: null,
      gateway,
      terminal: null,
      code: null,
      kind: b.type,
      session: b.session,
      online: g.online,
      ...(stale ? { stale: true as const } : {}),
    })
    // [MQTT-4.13] The gateway's clock from ours, right after its birth, never to one offline.
    // It names the session it answers: a time the broker queued while the gateway was away
    // reaches a later session, which refuses it (CMD_STALE) instead of taking a stale clock.
    if (b.type === 'birth' && this.#o.sendTime !== false) {
      this.#send(gatewayTopics(this.prefix, gateway).command, gateway, { type: 'time', now: this.#now(), session: b.session }, null).catch(() => {})
    }
  }

  #gatewayStatus(value: Record<string, unknown>, gateway: string, topic: string, receivedAt: number): void {
    const c = check(checkGatewayStatus, value, 'gateway status')
    if (!c.ok) return this.#error('CONSOLE_BAD_SCHEMA', c.message, topic, gateway, receivedAt)
    const g = this.#touchGateway(gateway, receivedAt)
    g.status = value
    // Beyond the five fixed fields nothing is promised [MQTT-3.7]: read what fits, skip the rest.
    if (Array.isArray(value.terminals)) {
      for (const t of value.terminals) {
        if (!isMap(t) || typeof t.terminal !== 'string') continue
        const address = typeof t.address === 'number' && Number.isInteger(t.address) ? t.address : null
        const known = this.#terminals.get(t.terminal)
        const view = this.#touchTerminal(t.terminal, gateway, address, known?.lastKind ?? 'gateway-status', receivedAt)
        if (view !== null && typeof t.lost === 'boolean') view.lost = t.lost
      }
    }
    const time = value.time as Time
    this.#emit({
      ...this.#times(time, receivedAt),
      type: 'status',
      scope: 'gateway',
      id: null,
      gateway,
      terminal: null,
      code: null,
      kind: 'gateway-status',
      batch: null,
      session: value.session as number,
    })
  }

  #reply(value: Record<string, unknown>, gateway: string, topic: string, receivedAt: number): void {
    // A reply type this version does not know is ignored [MQTT-3.8].
    if (typeof value.type === 'string' && value.type !== 'error' && value.v === 1) return
    const c = check(checkReply, value, 'reply')
    if (!c.ok) return this.#error('CONSOLE_BAD_SCHEMA', c.message, topic, gateway, receivedAt)
    const r = value as Reply
    this.#touchGateway(gateway, receivedAt)
    this.#emit({
      ...this.#times(r.time, receivedAt),
      type: 'reply',
      id: r.command,
      gateway,
      terminal: null,
      code: r.code,
      kind: r.type,
      command: r.command,
      message: r.message,
      topic: r.topic,
      suppressed: r.suppressed ?? 0,
    })
  }

  // -- output ----------------------------------------------------------------------------

  #times(time: Time | null, receivedAt: number): Pick<LineBase, 'time' | 'receivedAt' | 'ageMs'> {
    return { time, receivedAt, ageMs: time === null || time.estimated ? null : receivedAt - time.at }
  }

  #blank(): LineBase {
    return { id: null, gateway: null, terminal: null, code: null, kind: null, time: null, receivedAt: this.#now(), ageMs: null }
  }

  #error(code: PayloadErrorCode, message: string, topic: string | null, gateway: string | null, receivedAt = this.#now()): void {
    this.#counters.errors++
    const line: ErrorLine = { ...this.#blank(), receivedAt, type: 'error', code, message, topic, gateway }
    this.#errors.push(line)
    if (this.#errors.length > MAX_ERRORS) this.#errors.shift()
    this.#emit(line)
  }

  #emit(e: ConsoleEvent): void {
    try {
      // `type` first, for people reading the JSON lines.
      this.#o.onEvent?.(Object.assign({ type: e.type }, e))
    } catch {
      // The callback is the caller's; its failure must not stop the handling of alarms.
    }
  }

  // -- state out ---------------------------------------------------------------------------

  snapshot(): ConsoleSnapshot {
    const open = [...this.#cases.values()].filter((a) => canTake(a.stage, 'resolve'))
    return {
      connected: this.#connected,
      gateways: [...this.#gateways.values()].map((g) => ({ ...g })).sort((x, y) => x.gateway.localeCompare(y.gateway)),
      terminals: [...this.#terminals.values()].map((t) => ({ ...t })).sort((x, y) => x.terminal.localeCompare(y.terminal)),
      openAlarms: open.filter((a) => a.class === 'alarm').map(caseView),
      openRequests: open.filter((a) => a.class === 'request').map(caseView),
      trouble: this.#trouble.map((t) => ({ ...t })),
      errors: [...this.#errors],
      broadcasts: [...this.#broadcasts.values()].reverse().map(broadcastView),
      counters: { ...this.#counters },
    }
  }

  case(id: string): CaseView | undefined {
    const a = this.#cases.get(id)
    return a === undefined ? undefined : caseView(a)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const a of this.#cases.values()) for (const t of a.timers.splice(0)) this.#timers.clearTimeout(t)
    for (const w of this.#waiters.splice(0)) w.reject(new ConsoleError('CONSOLE_CLOSED', 'the console was closed before it reached the broker'))
    // Give commands in flight a moment to reach the broker, then disconnect cleanly; the
    // persistent session keeps what arrives from now on.
    const graceful = this.#client.endAsync(false)
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 1000).unref())
    if ((await Promise.race([graceful.then(() => 'done' as const, () => 'done' as const), timeout])) === 'timeout') await this.#client.endAsync(true).catch(() => {})
    for (const reject of [...this.#pending]) reject(new ConsoleError('CONSOLE_CLOSED', 'the console was closed before the broker acknowledged the command'))
    this.#connected = false
    await this.#queue
  }
}

function broadcastView(b: BroadcastRecord): BroadcastView {
  const reads = [...b.reads.values()]
  const perGateway = new Map<string, Set<string>>()
  for (const r of reads) perGateway.set(r.gateway, (perGateway.get(r.gateway) ?? new Set()).add(r.terminal))
  const revisions = reads.map((r) => r.revision).filter((r) => r !== null)
  const latestRevision = revisions.length === 0 ? null : Math.max(...revisions)
  return {
    broadcast: b.broadcast,
    sent: b.sent === null ? null : { ...b.sent },
    terminals: new Set(reads.map((r) => r.terminal)).size,
    gateways: [...perGateway].map(([gateway, t]) => ({ gateway, terminals: t.size })).sort((x, y) => y.terminals - x.terminals || x.gateway.localeCompare(y.gateway)),
    latestRevision,
    terminalsOfLatest: latestRevision === null ? 0 : new Set(reads.filter((r) => r.revision === latestRevision).map((r) => r.terminal)).size,
    lastReadAt: b.lastReadAt,
  }
}

/** A copy of a case for the outside: no timers, nothing shared. */
function caseView({ timers: _timers, ...a }: CaseRecord): CaseView {
  return { ...a, time: { ...a.time }, history: a.history.map((h) => ({ ...h })) }
}

/** The fields of an `event` line that come from the item itself. */
function eventFields(e: UplinkEvent, gateway: string, batch: string | null, unknownKind: boolean) {
  return {
    type: 'event' as const,
    id: e.id,
    gateway,
    terminal: e.terminal,
    code: e.code,
    kind: e.kind,
    class: e.class,
    restore: e.restore,
    address: e.address,
    number: e.number,
    attempt: e.attempt,
    batch,
    ...(e.text === undefined ? {} : { text: e.text }),
    ...(e.broadcast === undefined ? {} : { broadcast: e.broadcast }),
    ...(e.revision === undefined ? {} : { revision: e.revision }),
    ...(e.reset === undefined ? {} : { reset: e.reset }),
    ...(unknownKind ? { unknownKind: true as const } : {}),
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected ${String(x)}`)
}

/**
 * Starts the console: connects with its persistent session and subscribes. Resolves once
 * subscribed (or at once with `waitForBroker: false`); mqtt.js keeps reconnecting after
 * a loss. Throws a ConsoleError CONSOLE_BAD_OPTION for options out of range.
 */
export async function startConsole(opts: ConsoleOptions): Promise<OperatorConsole> {
  const c = new Console(opts)
  if (opts.waitForBroker !== false) await c.whenConnected()
  return c
}

// ---------------------------------------------------------------------------------------
// Presentation: plain text, no ANSI, for a pipe, a log and the demo

/**
 * What a terminal would obey rather than print: C0 controls (ESC, BEL, CR, LF, BS ...),
 * DEL, C1 controls (U+0080-U+009F: U+009B is a one-character CSI on many terminals), the
 * bidi embeddings and overrides U+202A-U+202E and isolates U+2066-U+2069 (which reverse
 * what follows on the line), and the line and paragraph separators U+2028-U+2029.
 */
const UNSAFE_ON_SCREEN = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * Text made safe to print on a terminal [CONSOLE-9]: every character of UNSAFE_ON_SCREEN
 * becomes its escape as printable text (`\u001b`, `\u202e`; `\n`, `\r`, `\t`), so an
 * escape sequence arrives as harmless, visible characters (`\u001b[2J`) and the operator
 * sees that something odd was sent. Everything else is kept. Applying it twice changes
 * nothing more.
 */
export function screenText(text: string): string {
  return text.replace(UNSAFE_ON_SCREEN, (ch) => SHORT_ESCAPES[ch] ?? `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** Local wall-clock time, HH:MM:SS. */
export function clockTime(ms: number): string {
  const d = new Date(ms)
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')
}

/** A duration for people: `45 s`, `3 min 05 s`, `2 h 03 min`, `4 d 07 h`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`
  return `${Math.floor(s / 86400)} d ${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')} h`
}

const codeOf = (code: number | string | null) => (code === null ? '' : ` (${code})`)

/** One event as one line of plain text, prefixed with the local time it arrived; safe to print [CONSOLE-9]. */
export function describeEvent(e: ConsoleEvent): string {
  return screenText(eventLine(e))
}

function eventLine(e: ConsoleEvent): string {
  const at = clockTime(e.receivedAt)
  const late = e.ageMs !== null && e.ageMs >= 10_000 ? `, ${duration(e.ageMs)} after it happened` : ''
  switch (e.type) {
    case 'alert': {
      const dup = e.duplicate ? `copy ${e.copies} (duplicate)` : 'NEW ALARM'
      const unconfirmed = e.gatewayStage === 'unconfirmed' ? '; herder told "call 110 by phone": expect a call' : ''
      const cancels = e.cancels === undefined ? '' : `; the terminal cancels ${e.cancels} (close it)`
      return `${at}  ALERT    ${e.id}  ${e.kind}${codeOf(e.code)} from ${e.terminal ?? '-'} via ${e.gateway}: ${dup}, attempt ${e.attempt}, gateway stage ${e.gatewayStage ?? '-'}${late}${unconfirmed}${cancels}${e.text ? `: ${e.text}` : ''}`
    }
    case 'event':
      if (e.copies !== undefined) {
        const copy = e.duplicate ? `copy ${e.copies} (duplicate)` : 'NEW REQUEST'
        return `${at}  REQUEST  ${e.id}  ${e.kind}${codeOf(e.code)} from ${e.terminal ?? e.gateway} via ${e.gateway}: ${copy}${e.batch ? ` in batch ${e.batch}` : ''}${late}${e.text ? `: ${e.text}` : ''}`
      }
      return `${at}  EVENT    ${e.id}  ${e.class} ${e.kind}${codeOf(e.code)} from ${e.terminal ?? '-'} via ${e.gateway}${e.batch ? ` in batch ${e.batch}` : ''}${e.duplicate ? ' (duplicate)' : ''}${late}${troubleDetail(e)}${e.text ? `: ${e.text}` : ''}`
    case 'status':
      if (e.scope === 'gateway') return `${at}  STATUS   gateway ${e.gateway}, session ${e.session ?? '-'}`
      return `${at}  STATUS   terminal ${e.terminal} via ${e.gateway}: ${describeLatest(e.latest)}${e.duplicate ? ' (duplicate)' : ''}`
    case 'state':
      if (e.stale) return `${at}  STATE    ${e.gateway} death of old session ${e.session}: stale, ignored (still ${e.online ? 'online' : 'offline'})`
      return `${at}  STATE    ${e.gateway} ${e.online ? 'ONLINE' : 'OFFLINE'} (${e.kind}, session ${e.session})`
    case 'reply':
      return `${at}  REPLY    ${e.gateway} rejected command ${e.command ?? '(no id)'}: ${e.code} ${e.message}${e.suppressed > 0 ? ` (and ${e.suppressed} more reports held back before this one)` : ''}`
    case 'command-sent':
      return `${at}  SENT     ${e.kind} ${describeCommand(e.command)} -> ${e.topic}`
    case 'error':
      return `${at}  ERROR    ${e.code} ${e.message}${e.topic ? ` (on ${e.topic})` : ''}`
    case 'connection':
      if (e.kind === 'connected') return `${at}  BROKER   connected to ${e.broker}${e.sessionPresent ? ', session kept' : ', new session'}`
      if (e.kind === 'disconnected') return `${at}  BROKER   connection to ${e.broker} lost; reconnecting`
      return `${at}  BROKER   ${e.broker}: ${e.message ?? 'failed'}; retrying`
    default:
      return assertNever(e)
  }
}

const RESET_REASONS: Readonly<Record<TerminalReset['reason'], (r: TerminalReset) => string>> = {
  'boot-backwards': (r) => `its boot counter went back from ${r.previousBoot ?? '?'} to ${r.boot}`,
  'last-event-backwards': (r) => `its last event number went back from ${r.previousNumber} to ${r.lastEvent}`,
  'event-differs': () => 'an event differed from the one the gateway had under the same number',
}

/**
 * A terminal-reset for people: the terminal's event numbers restarted (its memory was
 * wiped, or a new unit carries the same printed id), so its events from now on have ids
 * `<terminal>@<epoch>:<number>`; earlier ids with the same numbers are other events.
 */
export function describeReset(terminal: string | null, reset: TerminalReset | null): string {
  const who = terminal ?? '(unknown)'
  if (reset === null) return `terminal ${who} restarted its event numbers: memory wiped or a new unit`
  const why = RESET_REASONS[reset.reason]?.(reset) ?? `reason ${reset.reason}`
  return `terminal ${who} restarted its event numbers (${why}): memory wiped or a new unit; new ids ${who}@${reset.epoch}:n`
}

/** What a trouble item says beyond its kind: for now, a terminal-reset's explanation. */
function troubleDetail(t: { kind: string | null; terminal: string | null; reset?: TerminalReset | null }): string {
  return t.kind === 'terminal-reset' ? `: ${describeReset(t.terminal, t.reset ?? null)}` : ''
}

function describeLatest(latest: Record<string, unknown> | undefined): string {
  if (latest === undefined) return ''
  const parts = [`mains ${latest.mains === false ? 'OFF' : 'on'}`]
  if (typeof latest.battery === 'number') parts.push(`battery ${latest.battery}%`)
  if (typeof latest.signal === 'number') parts.push(`signal ${latest.signal} dBm`)
  if (typeof latest.temperature === 'number') parts.push(`${latest.temperature} °C`)
  return parts.join(', ')
}

function describeCommand(c: Command): string {
  switch (c.type) {
    case 'receipt':
      return c.ids.join(', ')
    case 'acknowledged':
      return `${c.alert} by "${c.by}"${c.text ? `: ${c.text}` : ''}`
    case 'dispatched':
      return `${c.alert}: ${c.unit}${c.eta === undefined ? '' : `, eta ${c.eta} min`}`
    case 'resolved':
      return `${c.alert}${c.text ? `: ${c.text}` : ''}`
    case 'broadcast':
      return `#${c.broadcast} ${c.urgency}: ${c.text}`
    case 'broadcast-withdraw':
      return `#${c.broadcast}`
    case 'time':
      return `${new Date(c.now).toISOString()}${c.session === undefined ? '' : ` for session ${c.session}`}`
    default:
      return c.id
  }
}

export interface ViewOptions {
  now: number
  /** Characters per line; longer lines are cut. Default 100. */
  width?: number
  /** The case (alarm or request) the operator selected (keys d and r act on it). */
  selected?: string | null
  /** Bold, inverse and red for a terminal; false for plain text. Default false. */
  ansi?: boolean
  /** Lines under the lists: the operator's notes, the key help, a prompt. */
  footer?: string[]
  /** Header line. */
  title?: string
  /** Rows of each list at most. Default 8. */
  rows?: number
}

/** The console's screen, as lines: gateways, terminals, open alarms and open requests with age and stage, broadcasts and their readers, recent trouble, errors. Safe to print [CONSOLE-9]. */
export function renderView(s: ConsoleSnapshot, o: ViewOptions): string[] {
  const width = o.width ?? 100
  const rows = o.rows ?? 8
  const ansi = o.ansi ?? false
  /** Each line as plain text with its emphasis; made safe, cut and coloured in one place at the end. */
  const lines: [Emphasis, string][] = []
  const push = (text: string, emphasis: Emphasis = 'plain') => void lines.push([emphasis, text])
  const more = (total: number, shown: number) => {
    if (total > shown) push(`  ... and ${total - shown} more`)
  }
  const online = s.gateways.filter((g) => g.online).length
  if (o.title !== undefined) push(o.title, 'bold')
  push(`Gateways: ${online} online, ${s.gateways.length - online} offline`, 'bold')
  for (const g of s.gateways.slice(0, rows)) {
    push(
      `  ${g.online ? 'online ' : 'OFFLINE'}  ${g.gateway.padEnd(16)} session ${g.session ?? '-'}${g.area ? `, area ${g.area}` : ''}, ${g.online ? 'up' : 'down'} for ${duration(o.now - g.since)}, last heard ${duration(o.now - g.lastHeard)} ago`,
      g.online ? 'plain' : 'alarm',
    )
  }
  more(s.gateways.length, rows)
  const lost = s.terminals.filter((t) => t.lost).length
  push(`Terminals: ${s.terminals.length}${lost > 0 ? `, ${lost} lost` : ''}`, 'bold')
  for (const t of s.terminals.slice(0, rows)) {
    const power = [t.mains === false ? 'mains OFF' : t.mains === true ? 'mains on' : null, t.battery === null ? null : `battery ${t.battery}%`].filter((x) => x !== null).join(', ')
    push(`  ${t.terminal.padEnd(16)} via ${t.gateway}${t.address === null ? '' : ` #${t.address}`}, ${t.lost ? 'LOST' : `last ${t.lastKind}`} ${duration(o.now - t.lastHeard)} ago${power ? `, ${power}` : ''}`, t.lost ? 'alarm' : 'plain')
  }
  more(s.terminals.length, rows)
  push(`Open alarms: ${s.openAlarms.length}`, 'bold')
  // At least nine, so that each of the keys 1-9 selects one that is on the screen.
  const alarmRows = Math.max(rows, 9)
  s.openAlarms.slice(0, alarmRows).forEach((a, i) => {
    const waiting = canTake(a.stage, 'acknowledge')
    push(caseRow(a, i + 1, o), a.id === o.selected ? 'selected' : waiting ? 'alarm' : 'plain')
  })
  more(s.openAlarms.length, alarmRows)
  // Not emergencies: below the alarms, never red, numbered on after them (openCases).
  push(`Open requests: ${s.openRequests.length}`, 'bold')
  s.openRequests.slice(0, rows).forEach((a, i) => push(caseRow(a, s.openAlarms.length + i + 1, o), a.id === o.selected ? 'selected' : 'plain'))
  more(s.openRequests.length, rows)
  if (s.broadcasts.length > 0) {
    push(`Broadcasts: ${s.broadcasts.length}`, 'bold')
    for (const b of s.broadcasts.slice(0, Math.min(rows, 5))) push(`  ${broadcastRow(b)}`)
    more(s.broadcasts.length, Math.min(rows, 5))
  }
  push('Recent trouble', 'bold')
  if (s.trouble.length === 0) push('  none')
  for (const t of s.trouble.slice(0, Math.min(rows, 5))) {
    push(`  ${clockTime(t.receivedAt)}  ${t.gateway}  ${t.terminal ?? '-'}  ${t.kind}${codeOf(t.code)}${troubleDetail(t)}`)
  }
  if (s.errors.length > 0) {
    push(`Errors: ${s.counters.errors}`, 'bold')
    for (const e of s.errors.slice(-3)) push(`  ${eventLine(e)}`)
  }
  for (const f of o.footer ?? []) push(f)
  const cut = (t: string) => (t.length > width ? `${t.slice(0, width - 1)}…` : t)
  return lines.map(([emphasis, text]) => emphasize(cut(screenText(text)), emphasis, ansi))
}

/** The open cases in the order of the screen and of the keys 1-9: alarms first, then requests, each oldest first. */
export function openCases(s: Pick<ConsoleSnapshot, 'openAlarms' | 'openRequests'>): CaseView[] {
  return [...s.openAlarms, ...s.openRequests]
}

/** One open case as a row of the view, `n` its number in openCases. */
function caseRow(a: CaseView, n: number, o: ViewOptions): string {
  const age = a.time.estimated ? `~${duration(o.now - a.firstReceivedAt)}` : duration(o.now - a.time.at)
  const answer = a.stage === 'dispatched' && a.unit ? ` (${a.unit}${a.eta === null ? '' : `, eta ${a.eta} min`})` : ''
  const phone = a.gatewayStage === 'unconfirmed' && a.stage === 'stored' ? ', UNCONFIRMED: expect a phone call' : ''
  const copies = a.copies > 1 ? `, ${a.copies} copies` : ''
  const cancel = `${a.cancels === null ? '' : `, cancels ${a.cancels}`}${a.cancelledBy === null ? '' : `, CANCELLED by the terminal (${a.cancelledBy}): close it`}`
  // A request's text is its message (a relay's, for a neighbour): the operator needs it to answer.
  const text = a.class === 'request' && a.text ? `: ${a.text}` : ''
  const mark = a.id === o.selected ? '>' : ' '
  return `${mark} ${n}. ${a.id.padEnd(14)} ${a.kind.padEnd(9)} ${(a.terminal ?? '-').padEnd(10)} via ${a.gateway}  age ${age}  ${a.stage.toUpperCase()}${answer}${copies}${phone}${cancel}${text}`
}

/** A broadcast and its readers: `#9001 urgent to all, sent 10:00:00: "Blizzard…": read on 3 terminals (gw-1 2, gw-2 1)`. */
function broadcastRow(b: BroadcastView): string {
  const short = (t: string) => (t.length > 40 ? `${t.slice(0, 39)}…` : t)
  const what = b.sent === null ? 'not sent by this console' : `${b.sent.urgency} to ${b.sent.to}, sent ${clockTime(b.sent.at)}${b.sent.times > 1 ? ` (text replaced ${b.sent.times - 1}x)` : ''}: "${short(b.sent.text)}"`
  const read = b.terminals === 0 ? 'not read yet' : `read on ${b.terminals} terminal${b.terminals === 1 ? '' : 's'} (${b.gateways.map((g) => `${g.gateway} ${g.terminals}`).join(', ')})`
  const latest = b.latestRevision !== null && b.latestRevision > 0 ? `, ${b.terminalsOfLatest} of them the latest text (revision ${b.latestRevision})` : ''
  return `#${b.broadcast} ${what}: ${read}${latest}`
}

type Emphasis = 'plain' | 'bold' | 'alarm' | 'selected'

/** Bold, red or inverse on a terminal (our own sequences, added after screenText); nothing without ANSI. */
function emphasize(text: string, emphasis: Emphasis, ansi: boolean): string {
  if (!ansi) return text
  switch (emphasis) {
    case 'plain':
      return text
    case 'bold':
      return `\x1b[1m${text}\x1b[22m`
    case 'alarm':
      return `\x1b[31m${text}\x1b[39m`
    case 'selected':
      return `\x1b[7m${text}\x1b[27m`
    default:
      return assertNever(emphasis)
  }
}
