/**
 * The gateway's store, as a contract: what the gateway keeps of every event from its
 * terminals, the alert lifecycle, what each terminal's event numbers are, coalesced
 * status, broadcasts and who has read them, counters and small settings.
 *
 * Two implementations, both run through the one suite (store.suite.ts):
 * - SqliteStore (sqlite-store.ts): the gateway's, one SQLite file (WAL) on its SD card,
 *   which survives a power cut;
 * - MemoryStore (memory-store.ts): plain JavaScript structures, for the scale benchmark's
 *   thousands of simulated gateways and for tests; nothing of it survives the process.
 *
 * Theory of operation
 * - An event is committed before the terminal hears "got it": the gateway calls
 *   addEvent() and only then accepts the frame on the serial link; the terminal forgets an
 *   event at its ACK [LINK-4.3]. So every event is a durable commit. Only what no
 *   terminal was promised may be lazy (safe from a crash, not from a power cut): status
 *   folds, and the deletion of items the broker has.
 * - Events are unique by id. A terminal event's id is `<terminal>:<number>`, or
 *   `<terminal>@<epoch>:<number>` once the gateway has seen the terminal's numbers start
 *   again (a wiped memory, a new unit under the same printed id): each such reset opens a
 *   new epoch, so a new press can never be taken for an old one [MQTT-3.2].
 * - Per terminal, the store keeps the current epoch, the boot counter of its last HELLO,
 *   and a replay window (replay-window.ts) of the numbers taken in that epoch: a replay is
 *   recognised for ever, in bounded space, even after its row is gone [LINK-5.5].
 * - Priority classes, highest first: alarm, request, trouble, status. Arrival order keeps
 *   per-terminal order within a class.
 * - Alarms and requests are cases: they stay for their lifecycle (stage) until resolved
 *   (and a day after, for the terminal's display). Trouble and status items are deleted
 *   once the broker has them. Lower classes are bounded by count, age and total size;
 *   every drop is counted under a name such as `dropped.trouble.age`, and the counters go
 *   out in the next status.
 * - Periodic status is one fold per terminal (latest values, lowest battery, minutes
 *   without mains), not one item per heartbeat.
 *
 * Invariants
 * 1. `done` means nothing more is to be published for the event: a trouble or status
 *    event is deleted at that moment; an alarm or request stays for its lifecycle.
 * 2. `stage` moves only as protocol/lifecycle.ts allows (forward; `unconfirmed` from
 *    stored or sent, left for received or later).
 * 3. A terminal event carries the epoch it was taken in; its INDICATEs go to the terminal
 *    only while that epoch is the terminal's current one.
 */

import type { Stage } from '../protocol/messages.js'
import type { PriorityClass } from '../protocol/mqtt.js'
import type { StoredCommandWindow } from './command-window.js'
import type { Limits } from './limits.js'

export { DEFAULT_LIMITS, type Limits } from './limits.js'

/**
 * The store. All calls are synchronous and short; each call that changes something is one
 * commit, whole or not at all.
 *
 * Contract (store.suite.ts checks each point, against every implementation):
 *
 * Durability and failures
 * - A durable commit is on the medium before the call returns (SqliteStore: a transaction
 *   with synchronous=FULL). Durable: addEvent, advance, alarmsDueNow, retryAt, published()
 *   when a case changes stage, everything of numbering, broadcasts, settings and
 *   counters, enforceBounds. Lazy (may be lost in a power cut, never half done):
 *   flushStatuses, statusPublished, and published() when it only deletes.
 * - writes() counts the commits since the store was opened by the durability each asked
 *   for, and how the last event was committed: the gateway status carries it, and the
 *   tests prove with it that an event is durable before its ACK. MemoryStore has no
 *   medium: it counts its commits by the same rule, and they are durable only as long as
 *   the process lives.
 * - A call whose commit fails throws (a full or failing disk) and changes nothing; the
 *   caller decides (the gateway answers NAK busy, and the terminal keeps its event).
 *   Opening a file that cannot be trusted is refused with a StoreError (sqlite-db.ts);
 *   MemoryStore never refuses.
 * - What a call returns is a copy: changing it changes nothing in the store.
 *
 * Events
 * - addEvent() stores an event once: a known id, or a known (terminal, epoch, number), is
 *   `duplicate` with the stored event, and nothing changes. A terminal's event is never
 *   refused (the terminal was or will be told it is stored); an event the gateway makes
 *   itself, other than an alarm, is `refused` while the free space is below
 *   limits.reserveMB, and counted `dropped.<class>.disk`. A terminal event also takes its
 *   number in its terminal's replay window, in the same commit. A new event is `stored`,
 *   with no attempt, due at once.
 * - dueAlarms(now) hands out alarms not done whose next publication is due at `now`, in
 *   the order stored, each on its own schedule [MQTT-4.4]; alarmsDueNow() makes every
 *   alarm not done due at once (after a reconnection [MQTT-2.5]). dueBacklog() hands out
 *   the lower classes not done and due: requests, then trouble, then status, in the order
 *   stored within a class; at most `limit`, and `maxBytes` of bodies, but at least one.
 *   nextDue() is the earliest due time of anything not done.
 * - published(ids) (the broker's PUBACK), per class: an alarm counts an attempt, moves
 *   from stored to sent, and is due again at alarmRetryAt(attempts) unless a receipt
 *   comes; a request counts an attempt, moves from stored to sent and is done (a case,
 *   kept); trouble and status are deleted. Ids unknown or already done are ignored.
 * - advance(id, stage) moves an event's stage only forward (isForward() of
 *   protocol/lifecycle.ts), records when, the operator's text and when help is expected
 *   (both cleared when not given), and returns the updated event; a stage that ends
 *   republication (endsRepublication(): received or later) makes it done. Not forward:
 *   undefined, and nothing changes, except that a receipt for an alarm already past
 *   received still makes it done.
 * - stages(id): every stage an alarm or request has reached, oldest first, from `stored`
 *   at its storing, with the operator's text and when help is expected as each stage
 *   had them: written in the commit that moves the stage, forgotten with the event. Other
 *   classes, and an id not held: empty. (For the household page's timeline, issue 13.)
 * - A NewEvent with a `key` (a relay's idempotency key, issue 13) is stored with it in the
 *   same commit; byKey() finds it while the event is kept, and addEvent() of another
 *   event with a key already held is `duplicate` with the event that holds it.
 * - openAlerts(): alarms and requests not resolved, in the order stored. cases(): every
 *   gateway's too, open or resolved at or after `since`, in the order stored. recentAlerts():
 *   a terminal's in one epoch, open or resolved at or after `since`. awaitingReceipt():
 *   alarms at stored or sent received at or before `storedBefore`. unreceiptedAlarms():
 *   alarms not done. latestOpenAlarm(): the terminal's alarm of the highest number below
 *   `number` in its epoch, not resolved and not itself a cancel [LINK-8.3].
 * - enforceBounds(now) drops, in one commit and never an alarm: requests and trouble not
 *   done older than their age limit, then the oldest over their count limit, then while
 *   the lower classes not done exceed maxStoreMB, the oldest of the lowest class, a
 *   hundred at a time; it forgets resolved cases a day after resolution, and requests
 *   done but unresolved after the request age limit (`forgotten.request.age`), and
 *   expired broadcasts with their deliveries. Each drop is counted under its name, and
 *   returned. backlog() counts, per class, the events not done and their body bytes.
 *
 * Terminals' numbering [LINK-5.5]
 * - hello(): a boot counter below the last HELLO's, or a lastEvent below the highest
 *   number taken, opens a new epoch named tag(n) for the store's n-th reset (a count kept
 *   in the settings as `terminal-resets`), and returns the reset; otherwise the boot
 *   counter is remembered and null returned. resetNumbering() opens a new epoch with an
 *   empty window.
 * - recognise(terminal, number, fingerprint), in the terminal's current epoch: an event
 *   still stored under that number is a `replay` of it, or `differs` if its fingerprint
 *   says something else; a number in the replay window without its event is a `replay`
 *   for ever (a window is at most WINDOW numbers wide: anything older is a replay);
 *   anything else is `new`.
 *
 * Status folds [MQTT-3.4]
 * - putStatus() folds a heartbeat in memory (no commit); below the disk reserve it is
 *   refused, counted `dropped.status.disk`, and false returned. flushStatuses() commits
 *   (lazy) the folds unsaved for olderThanMs or more; close() commits the rest.
 *   dirtyStatuses() lists every fold since its last publication, by terminal;
 *   statusPublished(terminal, version) starts the fold afresh unless a heartbeat came
 *   after that version.
 *
 * Broadcasts [MQTT-5.7] [LINK-5.8]
 * - putBroadcast(): a new id is `added` at revision 0; the same id with another text,
 *   urgency or expiry (or one withdrawn) is `replaced` at the next revision; the same
 *   content again is `unchanged`. withdrawBroadcast() makes a new revision marked
 *   withdrawn (once; undefined for an id not held). broadcasts(now) lists those not
 *   expired at `now` by id, withdrawn ones included; activeBroadcasts() without them.
 * - broadcastSent() records the revision sent to a terminal (its read, if any, is kept);
 *   broadcastRead() is true only for the first read of a revision sent to that terminal.
 * - setHouseholdBroadcast() keeps what the center household did with a broadcast (read,
 *   passed on), durably; householdBroadcast() reads it; forgotten with the broadcast.
 *
 * Settings and counters
 * - setMeta/meta keep small strings; bump() increments one and returns it; next(key,
 *   block) hands out numbers unique for ever under `key` with one durable commit per
 *   `block` numbers (a restart skips the rest of the block); count() adds to a named
 *   counter; counters() lists them by name.
 */
export interface Store {
  /** The bounds in force (the defaults, with the options' over them). */
  readonly limits: Limits

  addEvent(e: NewEvent): AddResult
  get(id: string): StoredEvent | undefined
  latestOpenAlarm(terminal: string, epoch: string, number: number): StoredEvent | undefined
  dueAlarms(now: number, limit?: number): StoredEvent[]
  alarmsDueNow(): void
  dueBacklog(now: number, limit: number, maxBytes?: number): StoredEvent[]
  nextDue(): number | null
  published(ids: readonly string[], now: number, alarmRetryAt: (attempts: number) => number): void
  retryAt(id: string, at: number): void
  advance(id: string, stage: Stage, now: number, detail?: { text?: string; etaAt?: number }): StoredEvent | undefined
  /** Every stage the alert reached, oldest first (the household page's timeline). */
  stages(id: string): StageEntry[]
  /** The event stored with this idempotency key, while it is kept. */
  byKey(key: string): StoredEvent | undefined
  openAlerts(): StoredEvent[]
  /** Alarms and requests open, or resolved at or after `since`, in the order stored (the household page). */
  cases(since: number): StoredEvent[]
  recentAlerts(terminal: string, epoch: string, since: number): StoredEvent[]
  awaitingReceipt(storedBefore: number): StoredEvent[]
  unreceiptedAlarms(): number
  enforceBounds(now: number): Record<string, number>
  backlog(): Record<PriorityClass, { count: number; bytes: number }>

  numbering(terminal: string): TerminalNumbering | undefined
  hello(terminal: string, boot: number, lastEvent: number, tag: (n: number) => string): Reset | null
  resetNumbering(terminal: string, reason: ResetReason, boot: number | null, tag: (n: number) => string): Reset
  recognise(terminal: string, number: number, fingerprint: string): Recognition

  putStatus(terminal: string, address: number, hb: Heartbeat, now: number): boolean
  flushStatuses(now: number, olderThanMs: number): number
  dirtyStatuses(): CoalescedStatus[]
  statusPublished(terminal: string, version: number): void

  putBroadcast(b: Pick<StoredBroadcast, 'id' | 'text' | 'urgency' | 'expires' | 'receivedAt'>): { change: BroadcastChange; broadcast: StoredBroadcast }
  withdrawBroadcast(id: number): StoredBroadcast | undefined
  broadcast(id: number): StoredBroadcast | undefined
  broadcasts(now: number): StoredBroadcast[]
  activeBroadcasts(now: number): StoredBroadcast[]
  delivery(broadcast: number, terminal: string): BroadcastDelivery | undefined
  deliveries(broadcast: number): BroadcastDelivery[]
  broadcastSent(broadcast: number, terminal: string, revision: number, now: number): void
  broadcastRead(broadcast: number, terminal: string, revision: number, now: number): boolean
  householdBroadcast(broadcast: number): HouseholdBroadcast | undefined
  setHouseholdBroadcast(h: HouseholdBroadcast): void

  meta(key: string): string | undefined
  setMeta(key: string, value: string): void
  /** The replay window of the signed commands of one audience [MQTT-5.12], as stored (command-window.ts reads it; an older store holds the replay-window.ts form); undefined before its first, or when what is stored is not JSON. */
  commandWindow(audience: string): unknown
  /** Keeps it, durably: written before the command it takes is applied, so a power cut cannot let that command in again. */
  setCommandWindow(audience: string, window: StoredCommandWindow): void
  bump(key: string): number
  next(key: string, block?: number): number
  count(name: string, by?: number): void
  counters(): Record<string, number>
  /** Free space is below limits.reserveMB: what the gateway makes itself is refused. */
  belowReserve(): boolean
  writes(): Readonly<WriteStats>
  /** Commits the status folds not yet saved, and lets go of the medium. */
  close(): void
}

/** The meta key under which both stores keep an audience's command window. */
export const commandWindowKey = (audience: string) => `command-window:${audience}`

/** A meta value written as JSON, read back; undefined when missing or damaged (the reader then starts afresh). */
export function parseStoredJson(saved: string | undefined): unknown {
  if (saved === undefined) return undefined
  try {
    return JSON.parse(saved) as unknown
  } catch {
    return undefined
  }
}

/** Free bytes on the file system holding the store. */
export type FreeSpace = () => number

/** What every store is opened with. */
export interface StoreOptions {
  /** Over DEFAULT_LIMITS. */
  limits?: Partial<Limits>
  /** Free bytes where the store lives, for the reserve kept for alarms. SqliteStore: default statfs of its directory; MemoryStore: default never short. */
  freeSpace?: FreeSpace
}

/** How the store's commits reached the medium since it was opened (the SD card's wear, and the tests' proof). */
export interface WriteStats {
  /** Durable commits: on the medium before the call returned (SQLite: synchronous=FULL). */
  durable: number
  /** Lazy commits: safe from a crash, not from a power cut (SQLite: synchronous=NORMAL). */
  lazy: number
  /** How the last event was committed, or null before the first. */
  lastEvent: 'durable' | 'lazy' | null
}

/** Resolved cases are kept this long for the terminal's display after a reboot, then purged. */
export const RESOLVED_KEEP_MS = 86_400_000

/** What the gateway knows of an event when it stores it. */
export interface NewEvent {
  id: string
  terminal: string | null
  address: number | null
  number: number | null
  cls: PriorityClass
  /** The uplink body without `attempt` and `time` (those are made at each publication). */
  body: Record<string, unknown>
  /** Gateway clock (ms) when stored, with the platform offset known then (null: none). */
  receivedAt: number
  boot: number
  offset: number | null
  /** A terminal event: the numbering epoch it belongs to ('' for the first). */
  epoch?: string
  /** A terminal event: what it says (kind, user, boot, uptime, time), to tell a replay from a new event under an old number. */
  fingerprint?: string
  /** A relay's idempotency key (issue 13): the same key again is the same relay. */
  key?: string
}

/** One stage an alert reached: when (gateway clock, ms), the operator's text, when help is expected. */
export interface StageEntry {
  stage: Stage
  at: number
  text: string | null
  etaAt: number | null
}

/** What the center household did with a broadcast (issue 13, [MQTT-5.7]), for one revision. */
export interface HouseholdBroadcast {
  broadcast: number
  /** The revision this is about: a new text of the broadcast is unread again. */
  revision: number
  readAt: number | null
  /** To how many households it was passed on, and when; null if not yet. */
  passedOn: number | null
  passedAt: number | null
}

export interface StoredEvent extends NewEvent {
  /** Arrival order, unique in the store. */
  seq: number
  /** Bytes of the body as stored (JSON). */
  bytes: number
  stage: Stage
  attempts: number
  nextAt: number
  done: boolean
  /** Gateway clock (ms) of the last stage change. */
  stageAt: number
  epoch: string
  /** The operator's text of the current stage (who acknowledged, the unit coming, how it ended), whole. */
  stageText: string | null
  /** When help is expected (gateway clock, ms), from a `dispatched` with an eta. */
  stageEtaAt: number | null
}

/** What the gateway remembers of a terminal's numbering. */
export interface TerminalNumbering {
  terminal: string
  /** '' until the first reset, then the tag of the current numbering (`<gateway>.<n>`). */
  epoch: string
  /** The boot counter of its latest HELLO, or null before the first. */
  boot: number | null
  /** The highest event number taken in the current epoch (0: none). */
  high: number
}

/** Why the gateway decided that a terminal's numbers started again. */
export type ResetReason = 'boot-backwards' | 'last-event-backwards' | 'event-differs'

export interface Reset {
  reason: ResetReason
  epoch: string
  previousEpoch: string
  previousBoot: number | null
  previousNumber: number
}

/** What an EVENT's (terminal, number) is to the store. */
export type Recognition =
  | { kind: 'new' }
  /** Taken before: a retransmission, or a replay after a power cut. The event, if it is still kept. */
  | { kind: 'replay'; event: StoredEvent | undefined }
  /** A number taken before, but the event says something else: the terminal's numbers started again. */
  | { kind: 'differs'; event: StoredEvent }

export interface Heartbeat {
  uptime: number
  mains: boolean
  battery?: number
  millivolts?: number
  signal?: number
  pending?: number
  temperature?: number
}

export interface CoalescedStatus {
  terminal: string
  address: number
  latest: Heartbeat
  /** Gateway clock (ms) of the first and the last heartbeat folded in. */
  since: number
  last: number
  heartbeats: number
  lowestBattery?: number
  minutesWithoutMains: number
  /** Bumped at every fold; statusPublished() only clears the fold if nothing new came since. */
  version: number
}

export interface StoredBroadcast {
  id: number
  text: string
  urgency: 'info' | 'warning' | 'urgent'
  expires: number | null
  receivedAt: number
  /** 0 for the first text; +1 at each replacement, and at a withdrawal. */
  revision: number
  withdrawn: boolean
}

/** What a broadcast command did to the stored broadcast. */
export type BroadcastChange = 'added' | 'replaced' | 'unchanged'

/** One terminal's copy of a broadcast: the revision sent to it, and whether its user read it. */
export interface BroadcastDelivery {
  broadcast: number
  terminal: string
  revision: number
  sentAt: number
  readRevision: number | null
  readAt: number | null
}

export type AddResult =
  | { kind: 'added'; event: StoredEvent }
  | { kind: 'duplicate'; event: StoredEvent }
  /** An event the gateway made itself, refused because the disk is nearly full; counted. Never a terminal's. */
  | { kind: 'refused'; reason: 'disk-reserve' }

/** The id of a terminal event: `<terminal>:<number>`, or with the epoch after a reset. [MQTT-3.2] */
export function terminalEventId(terminal: string, epoch: string, number: number): string {
  return epoch === '' ? `${terminal}:${number}` : `${terminal}@${epoch}:${number}`
}
