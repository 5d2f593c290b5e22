/**
 * The two ends of the serial link: {@link TerminalLink} (the firmware's logic) and
 * {@link GatewayLink} (the gateway's side, any number of terminals on one line).
 *
 * Sans-I/O, after h11: bytes in with `receive()`, events out with `nextEvent()`, messages
 * in with `send()`, bytes out with `transmit()`, and the time told with `tick(now)`,
 * which returns the next deadline. No timers, no randomness of its own (`random` is
 * injected), so the same code runs on a real port, in a simulator and in a test with a
 * fake clock, and could be ported to C line by line.
 */

import {
  BROADCAST_ADDRESS,
  FrameDecoder,
  GATEWAY_ADDRESS,
  encodeWire,
  type Frame,
  type FrameHeader,
} from './codec.js'
import { LocalProtocolError, assertNever, type WireErrorCode } from './errors.js'
import {
  FIRST_DATA_CODE,
  MESSAGE_BY_CODE,
  MESSAGE_BY_TYPE,
  type Direction,
  type DataMessage,
  type GatewayMessage,
  type Hello,
  type Message,
  type MessageType,
  type NakReason,
  type TerminalMessage,
  type Welcome,
} from './messages.js'
import { nextSessionState, type SessionInput, type SessionState } from './session.js'
import { ATTEMPTS_BEFORE_DOWN, retryTimeoutMs } from './timing.js'

export type LinkEvent =
  /** A data message from the peer, in order, once. In manual mode, answer with accept()/defer(). */
  | { kind: 'message'; from: number; ref: number; message: DataMessage }
  /** The peer acknowledged a message we sent. */
  | { kind: 'delivered'; to: number; ref: number; message: DataMessage }
  /** The peer refused a message for good (NAK unsupported/invalid): it will not be retried. */
  | { kind: 'refused'; to: number; ref: number; message: DataMessage; reason: NakReason }
  /**
   * A queued message will never be sent: pushed out by a full queue (counted, never
   * silent), or replaced by a newer one with the same coalesce key.
   */
  | { kind: 'dropped'; to: number; ref: number; message: DataMessage; reason: 'queue-full' | 'superseded' | 'discarded' }
  /** A session opened (or re-opened: `restarted` when the peer's boot counter changed). */
  | { kind: 'session'; peer: number; state: SessionState; restarted: boolean; hello?: Hello; welcome?: Welcome }
  /** The peer stopped answering (after ATTEMPTS_BEFORE_DOWN tries) or answers again. */
  | { kind: 'liveness'; peer: number; up: boolean }
  /**
   * Garbage from the wire, counted under its code and dropped. `from` and `type` are there
   * when the CRC passed and the frame was addressed to this end (a HELLO that fails its
   * schema, say: the terminal behind it can never open a session, and the log must say why).
   */
  | { kind: 'frame-error'; code: WireErrorCode; detail: string; from?: number; type?: MessageType }

export interface SendOptions {
  /** Higher goes first; order is kept within one priority. Default 0. */
  priority?: number
  /**
   * A queued (not yet transmitted) message with the same key is replaced by this one:
   * e.g. `indicate:17` keeps only the newest stage of event 17, `heartbeat` the newest status.
   */
  coalesce?: string
  /** The time now (ms), if the link has not been told it since it last waited. */
  now?: number
}

export interface LinkOptions {
  /** Line rate in baud; sets the retransmission timeout. Default 9600. */
  baud?: number
  /** Uniform random in [0, 1) for retry jitter. Default Math.random. */
  random?: () => number
  /** Messages queued per peer before the oldest of the lowest priority is dropped. Default 64. */
  maxQueue?: number
  /**
   * 'auto': a received data message is acknowledged as soon as it is handed out.
   * 'manual': the application calls accept(ref) once it has made the message durable
   * (the gateway: after the SQLite commit), or defer(ref) to have the peer retry later.
   */
  ackMode?: 'auto' | 'manual'
}

export type LinkCounter =
  | WireErrorCode
  | 'framesIn'
  | 'framesOut'
  | 'bytesIn'
  | 'bytesOut'
  | 'retransmissions'
  | 'duplicates'
  | 'otherAddress'
  | 'noSession'
  | 'outOfSync'
  | 'dropped'
  | 'refused'
  | 'wrongDirection'

interface Outgoing {
  ref: number
  message: DataMessage
  priority: number
  coalesce: string | undefined
}

interface InFlight extends Outgoing {
  seq: number
  attempts: number
  deadline: number
  /** The peer answered NAK busy and nothing was sent since: the seq is free for a more urgent message. */
  busy?: boolean
}

class Peer {
  state: SessionState = 'closed'
  txSeq = 0
  rxExpected = 0
  queue: Outgoing[] = []
  inflight: InFlight | null = null
  /** The ACK or NAK we gave the last data frame, replayed if it comes again. */
  lastAnswer: Frame | null = null
  /** A data frame handed to the application and not yet accepted. */
  awaiting: { seq: number; ref: number } | null = null
  /** Attempts in a row without any valid frame from the peer. */
  unanswered = 0
  /**
   * The peer has sent a data frame, an ACK or a NAK in the open session: proof that it has
   * the session, so a HELLO from it now is a new start, even if it repeats the one that
   * opened the session (a new unit, fresh from the factory like the old one). [LINK-7.2]
   */
  active = false
  up = true
  lastHeard: number | null = null
  /** The terminal's (boot counter, session number) naming the current session. */
  peerBoot: number | null = null
  peerSession: number | null = null
  hello: Hello | null = null
  // Terminal side: the HELLO handshake's own retry state.
  helloAttempts = 0
  helloDeadline: number | null = null
  constructor(readonly address: number) {}
}

export interface PeerStatus {
  address: number
  state: SessionState
  up: boolean
  lastHeard: number | null
  queued: number
  inFlight: boolean
  hello: Hello | null
}

abstract class LinkEnd {
  protected readonly decoder = new FrameDecoder()
  protected readonly peers = new Map<number, Peer>()
  protected now = 0
  readonly #events: LinkEvent[] = []
  #output: Uint8Array[] = []
  #refs = 0
  readonly #awaitingRefs = new Map<number, Peer>()
  readonly #counters = new Map<LinkCounter, number>()
  protected readonly baud: number
  protected readonly random: () => number
  readonly #maxQueue: number
  readonly #ackMode: 'auto' | 'manual'

  constructor(
    readonly address: number,
    options: LinkOptions,
    defaultAck: 'auto' | 'manual',
  ) {
    this.baud = options.baud ?? 9600
    this.random = options.random ?? Math.random
    this.#maxQueue = options.maxQueue ?? 64
    this.#ackMode = options.ackMode ?? defaultAck
    if (!(this.baud > 0)) throw new LocalProtocolError('LINK_BAD_ARGUMENT', `baud must be positive, got ${this.baud}`)
  }

  /** Feeds bytes read from the wire, in any chunking. */
  receive(bytes: Uint8Array, now?: number): void {
    if (now !== undefined) this.#setNow(now)
    this.#count('bytesIn', bytes.length)
    this.decoder.push(bytes)
    for (let r = this.decoder.next(); r; r = this.decoder.next()) {
      if (r.kind === 'frame') this.#onFrame(r.frame)
      else this.#onBadFrame(r.error.code, r.error.message, r.header)
    }
  }

  /** The next event, or null when there is none until more bytes or time arrive. */
  nextEvent(): LinkEvent | null {
    return this.#events.shift() ?? null
  }

  /** Bytes to write to the wire now, or null. */
  transmit(): Uint8Array | null {
    if (this.#output.length === 0) return null
    const chunks = this.#output
    this.#output = []
    if (chunks.length === 1) return chunks[0]!
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
    let o = 0
    for (const c of chunks) {
      out.set(c, o)
      o += c.length
    }
    return out
  }

  /**
   * Advances time: retransmits what is due. Returns the next deadline (ms, same clock
   * as `now`), or null when nothing is waiting on time.
   */
  tick(now: number): number | null {
    this.#setNow(now)
    let next: number | null = null
    for (const peer of this.peers.values()) {
      this.onTick(peer)
      // A queue left waiting when a session opened (see GatewayLink.onHello) moves on here
      // if the application sent nothing meanwhile.
      if (!peer.inflight && peer.state === 'open') this.pump(peer)
      const f = peer.inflight
      if (f && peer.state === 'open' && f.deadline <= this.now) {
        f.busy = false
        f.attempts++
        this.#count('retransmissions')
        this.#noteUnanswered(peer)
        f.deadline = this.now + retryTimeoutMs(this.baud, f.attempts, this.random())
        this.#write({ dst: peer.address, src: this.address, seq: f.seq, message: f.message })
      }
      for (const d of [peer.state === 'open' ? peer.inflight?.deadline : undefined, peer.helloDeadline]) {
        if (d !== undefined && d !== null && (next === null || d < next)) next = d
      }
    }
    return next
  }

  /** Accepts a message handed out in manual mode: the peer gets its ACK now. */
  accept(ref: number): void {
    const peer = this.#takeAwaiting(ref)
    if (!peer?.awaiting) return
    const seq = peer.awaiting.seq
    peer.awaiting = null
    peer.rxExpected = (seq + 1) & 0xff
    this.#answer(peer, { dst: peer.address, src: this.address, seq, message: { type: 'ACK' } })
  }

  /** Refuses a message for now (NAK busy): the peer will send it again later. */
  defer(ref: number): void {
    const peer = this.#takeAwaiting(ref)
    if (!peer?.awaiting) return
    const seq = peer.awaiting.seq
    peer.awaiting = null
    this.#write({ dst: peer.address, src: this.address, seq, message: { type: 'NAK', reason: 'busy' } })
  }

  /** Counters since start: frames, bytes, retransmissions, duplicates, each wire error code. */
  stats(): Readonly<Partial<Record<LinkCounter, number>>> {
    return Object.fromEntries(this.#counters)
  }

  protected peerStatus(peer: Peer): PeerStatus {
    return {
      address: peer.address,
      state: peer.state,
      up: peer.up,
      lastHeard: peer.lastHeard,
      queued: peer.queue.length,
      inFlight: peer.inflight !== null,
      hello: peer.hello,
    }
  }

  protected enqueue(peer: Peer, message: DataMessage, options: SendOptions): number {
    if (options.now !== undefined) this.#setNow(options.now)
    // A message that cannot be encoded (a field out of range, a text too long for a frame)
    // is refused here, to the caller, as the bug it is: queued, it would throw at every
    // transmission and block every later frame to that peer for good.
    encodeWire({ dst: peer.address, src: this.address, seq: 0, message })
    const ref = ++this.#refs
    const item: Outgoing = { ref, message, priority: options.priority ?? 0, coalesce: options.coalesce }
    const same = item.coalesce === undefined ? -1 : peer.queue.findIndex((q) => q.coalesce === item.coalesce)
    if (same >= 0) {
      const [old] = peer.queue.splice(same, 1)
      this.emit({ kind: 'dropped', to: peer.address, ref: old!.ref, message: old!.message, reason: 'superseded' })
    } else if (peer.queue.length >= this.#maxQueue) {
      // Drop the oldest of the lowest priority. The queue is sorted by priority, oldest
      // first within one, so that is the first of the last priority group, unless the
      // new message is lower still.
      const lowest = peer.queue.at(-1)!.priority
      const victim = item.priority < lowest ? item : peer.queue.find((q) => q.priority === lowest)!
      if (victim !== item) peer.queue.splice(peer.queue.indexOf(victim), 1)
      this.#count('dropped')
      this.emit({ kind: 'dropped', to: peer.address, ref: victim.ref, message: victim.message, reason: 'queue-full' })
      if (victim === item) return ref
    }
    this.#requeue(peer, item, 'after')
    this.pump(peer)
    return ref
  }

  /** Stable insert by priority: after (a new message) or before (one coming back) those of its priority. */
  #requeue(peer: Peer, item: Outgoing, where: 'before' | 'after' = 'before'): void {
    let at = peer.queue.length
    while (at > 0 && (where === 'after' ? peer.queue[at - 1]!.priority < item.priority : peer.queue[at - 1]!.priority <= item.priority)) at--
    peer.queue.splice(at, 0, item)
  }

  /** Removes queued messages (not the one in flight) that match; each is reported `dropped`, reason `discarded`. */
  protected discardQueued(peer: Peer, match: (m: DataMessage) => boolean): number {
    const gone = peer.queue.filter((q) => match(q.message))
    if (gone.length === 0) return 0
    peer.queue = peer.queue.filter((q) => !match(q.message))
    for (const q of gone) this.emit({ kind: 'dropped', to: peer.address, ref: q.ref, message: q.message, reason: 'discarded' })
    return gone.length
  }

  protected emit(event: LinkEvent): void {
    this.#events.push(event)
  }

  /** Moves a peer's session state through the table in session.ts. */
  protected transition(peer: Peer, input: SessionInput): void {
    const to = nextSessionState(peer.state, input)
    if (peer.state === 'open' || to === 'open') this.#resetSequences(peer)
    peer.state = to
  }

  protected getPeer(address: number): Peer {
    let p = this.peers.get(address)
    if (!p) {
      p = new Peer(address)
      this.peers.set(address, p)
    }
    return p
  }

  /** Sends one frame now (link control: HELLO, WELCOME, NAK). */
  protected sendControl(dst: number, message: Message, seq = 0): void {
    this.#write({ dst, src: this.address, seq, message })
  }

  /**
   * After NAK busy the seq in flight is not consumed, so the next frame with it is taken as
   * new: if something more urgent waits (an alarm pressed while the gateway cannot store a
   * trouble event), it goes in that seq at once, and the refused message waits in the
   * queue, first of its priority. [LINK-4.6]
   */
  #preempt(peer: Peer): void {
    const f = peer.inflight
    const next = peer.queue[0]
    if (!f?.busy || !next || next.priority <= f.priority || peer.state !== 'open') return
    peer.queue.shift()
    const { seq, attempts: _a, deadline: _d, busy: _b, ...item } = f
    this.#requeue(peer, item)
    peer.inflight = { ...next, seq, attempts: 1, deadline: this.now + retryTimeoutMs(this.baud, 1, this.random()) }
    this.#write({ dst: peer.address, src: this.address, seq, message: next.message })
  }

  protected pump(peer: Peer): void {
    this.#preempt(peer)
    if (peer.state !== 'open' || peer.inflight || peer.queue.length === 0) return
    const item = peer.queue.shift()!
    const seq = peer.txSeq
    peer.txSeq = (seq + 1) & 0xff
    peer.inflight = { ...item, seq, attempts: 1, deadline: this.now + retryTimeoutMs(this.baud, 1, this.random()) }
    this.#write({ dst: peer.address, src: this.address, seq, message: item.message })
  }

  /** An attempt went unanswered; the peer is reported down after ATTEMPTS_BEFORE_DOWN of them. */
  protected noteUnanswered(peer: Peer): void {
    this.#noteUnanswered(peer)
  }

  /** The direction of the data messages this end receives. */
  protected abstract readonly receives: Direction
  /** Whether this end takes frames addressed to `dst` from `src`. */
  protected abstract accepts(frame: Frame): boolean
  protected abstract onHello(frame: Frame<Hello>): void
  protected abstract onWelcome(frame: Frame<Welcome>): void
  /** The peer told us it has no session with us (NAK no-session for the frame in flight). */
  protected abstract onNoSession(peer: Peer): void
  /** A data frame arrived from an address we have no open session with. */
  protected abstract onNoSessionData(src: number, seq: number): void
  /** A data frame we cannot place in the session. */
  protected abstract onOutOfSync(peer: Peer, seq: number): void
  protected onTick(_peer: Peer): void {}

  #setNow(now: number): void {
    if (!Number.isFinite(now)) throw new LocalProtocolError('LINK_BAD_ARGUMENT', `now must be a finite number of ms, got ${now}`)
    // A clock that steps back (NTP, a fake clock reset) must not make deadlines wait forever.
    this.now = Math.max(this.now, now)
  }

  #count(name: LinkCounter, by = 1): void {
    this.#counters.set(name, (this.#counters.get(name) ?? 0) + by)
  }

  #write(frame: Frame): void {
    const bytes = encodeWire(frame)
    this.#count('framesOut')
    this.#count('bytesOut', bytes.length)
    this.#output.push(bytes)
  }

  #answer(peer: Peer, frame: Frame): void {
    peer.lastAnswer = frame
    this.#write(frame)
  }

  #takeAwaiting(ref: number): Peer | undefined {
    const peer = this.#awaitingRefs.get(ref)
    this.#awaitingRefs.delete(ref)
    return peer?.awaiting?.ref === ref ? peer : undefined
  }

  #resetSequences(peer: Peer): void {
    peer.active = false
    if (peer.inflight) {
      const { seq: _s, attempts: _a, deadline: _d, busy: _b, ...item } = peer.inflight
      peer.queue.unshift(item)
      peer.inflight = null
    }
    if (peer.awaiting) this.#awaitingRefs.delete(peer.awaiting.ref)
    peer.awaiting = null
    peer.txSeq = 0
    peer.rxExpected = 0
    peer.lastAnswer = null
  }

  #noteUnanswered(peer: Peer): void {
    peer.unanswered++
    if (peer.up && peer.unanswered >= ATTEMPTS_BEFORE_DOWN) {
      peer.up = false
      this.emit({ kind: 'liveness', peer: peer.address, up: false })
    }
  }

  #heard(peer: Peer): void {
    peer.lastHeard = this.now
    peer.unanswered = 0
    if (!peer.up) {
      peer.up = true
      this.emit({ kind: 'liveness', peer: peer.address, up: true })
    }
  }

  #onBadFrame(code: WireErrorCode, detail: string, header: FrameHeader | undefined): void {
    this.#count(code)
    const addressed = header && header.dst === this.address
    const type = header && MESSAGE_BY_CODE.get(header.code)?.type
    this.emit(addressed ? { kind: 'frame-error', code, detail, from: header.src, ...(type ? { type } : {}) } : { kind: 'frame-error', code, detail })
    // A data frame whose CRC passed but whose type or body we cannot read is answered, so
    // the sender does not retry it forever; it consumes its sequence number. [LINK-4.6]
    if (!addressed || header.code < FIRST_DATA_CODE || header.version !== 1) return
    if (code !== 'LINK_UNKNOWN_TYPE' && code !== 'LINK_BAD_SCHEMA' && code !== 'LINK_BAD_CBOR') return
    const peer = this.peers.get(header.src)
    if (!peer || peer.state !== 'open') {
      this.#count('noSession')
      this.onNoSessionData(header.src, header.seq)
      return
    }
    this.#heard(peer)
    if (header.seq === peer.rxExpected && !peer.awaiting) {
      peer.rxExpected = (header.seq + 1) & 0xff
      const reason: NakReason = code === 'LINK_UNKNOWN_TYPE' ? 'unsupported' : 'invalid'
      this.#answer(peer, { dst: peer.address, src: this.address, seq: header.seq, message: { type: 'NAK', reason } })
    } else if (peer.lastAnswer && header.seq === peer.lastAnswer.seq) {
      this.#count('duplicates')
      this.#write(peer.lastAnswer)
    }
  }

  #onFrame(frame: Frame): void {
    this.#count('framesIn')
    if (!this.accepts(frame)) {
      this.#count('otherAddress')
      return
    }
    const m = frame.message
    switch (m.type) {
      case 'HELLO':
        return this.onHello(frame as Frame<Hello>)
      case 'WELCOME':
        return this.onWelcome(frame as Frame<Welcome>)
      case 'ACK':
        return this.#onAck(frame)
      case 'NAK':
        return this.#onNak(frame, m.reason)
      case 'EVENT':
      case 'HEARTBEAT':
      case 'DISPLAY_READ':
      case 'INDICATE':
      case 'DISPLAY':
      case 'TIME':
      case 'CONFIG':
      case 'PING':
        return this.#onData(frame as Frame<DataMessage>)
      default:
        return assertNever(m, 'message')
    }
  }

  #onAck(frame: Frame): void {
    const peer = this.peers.get(frame.src)
    if (!peer) return
    this.#heard(peer)
    if (peer.state === 'open') peer.active = true
    const f = peer.inflight
    if (!f || peer.state !== 'open' || f.seq !== frame.seq) return
    peer.inflight = null
    this.emit({ kind: 'delivered', to: peer.address, ref: f.ref, message: f.message })
    this.pump(peer)
  }

  #onNak(frame: Frame, reason: NakReason): void {
    const peer = this.peers.get(frame.src)
    if (!peer) return
    this.#heard(peer)
    if (peer.state === 'open') peer.active = true
    const f = peer.inflight
    // A NAK answers the frame in flight; any other is a late copy of an old one. [LINK-4.5]
    if (!f || peer.state !== 'open' || f.seq !== frame.seq) return
    if (reason === 'no-session') {
      this.#count('noSession')
      return this.onNoSession(peer)
    }
    switch (reason) {
      case 'busy':
        // Alive but not ready: wait a full timeout and try again, not counting toward
        // "down"; unless something more urgent waits, which takes the seq. [LINK-4.6]
        f.deadline = this.now + retryTimeoutMs(this.baud, f.attempts, this.random())
        f.busy = true
        this.#preempt(peer)
        return
      case 'unsupported':
      case 'invalid':
        peer.inflight = null
        this.#count('refused')
        this.emit({ kind: 'refused', to: peer.address, ref: f.ref, message: f.message, reason })
        this.pump(peer)
        return
      default:
        return assertNever(reason, 'NAK reason')
    }
  }

  #onData(frame: Frame<DataMessage>): void {
    const peer = this.peers.get(frame.src)
    if (!peer || peer.state !== 'open') {
      this.#count('noSession')
      this.onNoSessionData(frame.src, frame.seq)
      return
    }
    this.#heard(peer)
    peer.active = true
    const seq = frame.seq
    if (peer.awaiting?.seq === seq) {
      // Still being made durable by the application: a retransmission of it changes nothing.
      this.#count('duplicates')
      return
    }
    if (seq === peer.rxExpected && !peer.awaiting) {
      if (MESSAGE_BY_TYPE.get(frame.message.type)!.direction !== this.receives) {
        // A message this end never receives (a gateway message sent to the gateway): the
        // sender is broken; refuse it for good so that it does not retry. [LINK-5.1]
        this.#count('wrongDirection')
        peer.rxExpected = (seq + 1) & 0xff
        this.#answer(peer, { dst: peer.address, src: this.address, seq, message: { type: 'NAK', reason: 'unsupported' } })
        return
      }
      const ref = ++this.#refs
      peer.awaiting = { seq, ref }
      this.#awaitingRefs.set(ref, peer)
      this.emit({ kind: 'message', from: peer.address, ref, message: frame.message })
      if (this.#ackMode === 'auto') this.accept(ref)
      return
    }
    if (peer.lastAnswer && seq === peer.lastAnswer.seq) {
      // Our ACK was lost: answer again, deliver nothing. [LINK-4.4]
      this.#count('duplicates')
      this.#write(peer.lastAnswer)
      return
    }
    if (((peer.rxExpected - seq) & 0xff) <= 128) {
      // Behind the expected seq: a late copy of a frame already answered. Ignore it. [LINK-4.4]
      this.#count('duplicates')
      return
    }
    this.#outOfSync(peer, seq)
  }

  #outOfSync(peer: Peer, seq: number): void {
    this.#count('outOfSync')
    this.onOutOfSync(peer, seq)
  }
}

// -----------------------------------------------------------------------------------------

export interface TerminalLinkOptions extends LinkOptions {
  /** This terminal's address on the line, 1-254. [LINK-3.4] */
  address: number
  /** The HELLO fields, asked for at each handshake (lastEvent changes as events are made). */
  hello: () => Omit<Hello, 'type' | 'session'>
}

/**
 * The terminal's end: one peer, the gateway at address 0. Starts by sending HELLO and
 * keeps doing so (with backoff) until a WELCOME echoes its boot counter. [LINK-7.1]
 */
export class TerminalLink extends LinkEnd {
  readonly #hello: () => Omit<Hello, 'type' | 'session'>
  #gatewayBoot: number | null = null
  /** The HELLO of the handshake under way or done; a WELCOME must echo its boot and session. */
  #current: Hello | null = null
  #handshakes = 0
  readonly #gateway: Peer
  protected readonly receives = 'gateway-to-terminal'

  constructor(options: TerminalLinkOptions) {
    super(options.address, options, 'auto')
    if (!Number.isInteger(options.address) || options.address < 1 || options.address > 254) {
      throw new LocalProtocolError('LINK_BAD_ARGUMENT', `terminal address must be 1-254, got ${options.address}`)
    }
    this.#hello = options.hello
    this.#gateway = this.getPeer(GATEWAY_ADDRESS)
    this.#resync()
  }

  /** Queues a message for the gateway. Returns a ref that 'delivered' or 'refused' will name. */
  send(message: TerminalMessage, options: SendOptions = {}): number {
    return this.enqueue(this.#gateway, message, options)
  }

  get status(): PeerStatus & { gatewayBoot: number | null } {
    return { ...this.peerStatus(this.#gateway), gatewayBoot: this.#gatewayBoot }
  }

  protected accepts(frame: Frame): boolean {
    if (frame.src !== GATEWAY_ADDRESS) return false
    if (frame.dst === this.address) return true
    // Only an announcement may be broadcast: data cannot be acknowledged by many.
    return frame.dst === BROADCAST_ADDRESS && frame.message.type === 'WELCOME'
  }

  protected onHello(): void {
    // Another terminal's HELLO is addressed to the gateway and never reaches here.
  }

  protected onWelcome(frame: Frame<Welcome>): void {
    const w = frame.message
    const peer = this.#gateway
    peer.lastHeard = this.now
    const c = this.#current
    if (c && w.echo === c.boot && w.echoSession === c.session) {
      if (peer.state === 'open' && w.boot === this.#gatewayBoot) return // duplicate answer
      const restarted = this.#gatewayBoot !== null && this.#gatewayBoot !== w.boot
      this.#gatewayBoot = w.boot
      peer.peerBoot = w.boot
      peer.helloDeadline = null
      peer.helloAttempts = 0
      peer.unanswered = 0
      this.transition(peer, 'welcome')
      if (!peer.up) {
        peer.up = true
        this.emit({ kind: 'liveness', peer: peer.address, up: true })
      }
      this.emit({ kind: 'session', peer: peer.address, state: 'open', restarted, welcome: w })
      this.pump(peer)
      return
    }
    // An announcement, or an answer to an older HELLO: a new gateway boot means it has
    // forgotten us. In the middle of a handshake, say HELLO to it at once rather than at
    // the next retry. [LINK-7.3]
    if (w.boot === this.#gatewayBoot) return
    if (peer.state === 'open') this.#resync()
    else if (w.echo === undefined) {
      peer.helloAttempts = 0
      this.#sendHello(peer)
    }
  }

  protected onNoSession(): void {
    this.#resync()
  }

  protected onNoSessionData(): void {
    // Not in session: our HELLO is on its way and will open a new one; answering would
    // only make the gateway tear down a session that is about to open. [LINK-4.5]
  }

  protected onOutOfSync(): void {
    // The new handshake (a new session number) resets both ends. [LINK-4.5]
    this.#resync()
  }

  protected override onTick(peer: Peer): void {
    if (peer.state !== 'syncing' || peer.helloDeadline === null || peer.helloDeadline > this.now) return
    this.#sendHello(peer)
  }

  #resync(): void {
    const peer = this.#gateway
    this.transition(peer, 'resync')
    this.#current = { type: 'HELLO', ...this.#hello(), session: this.#handshakes++ & 0xffff }
    peer.helloAttempts = 0
    peer.helloDeadline = this.now
    this.#sendHello(peer)
  }

  #sendHello(peer: Peer): void {
    if (peer.helloAttempts > 0) this.noteUnanswered(peer)
    peer.helloAttempts++
    // Retries of one handshake repeat its HELLO as it was: same boot, same session number.
    this.sendControl(GATEWAY_ADDRESS, this.#current!)
    peer.helloDeadline = this.now + retryTimeoutMs(this.baud, peer.helloAttempts, this.random())
  }
}

// -----------------------------------------------------------------------------------------

export interface GatewayLinkOptions extends LinkOptions {
  /** Gateway id, sent in WELCOME. */
  gateway: string
  /** Gateway session counter: must differ at every start (persist and increment it). */
  boot: number
}

/**
 * The gateway's end: address 0, one session per terminal address. Answers every HELLO
 * with WELCOME; acknowledges data only when the application accepts it (manual mode by
 * default, so that an EVENT is on disk before the terminal hears "got it"). [LINK-7.2]
 */
export class GatewayLink extends LinkEnd {
  readonly #welcome: Omit<Welcome, 'type' | 'echo' | 'echoSession'>
  protected readonly receives = 'terminal-to-gateway'

  constructor(options: GatewayLinkOptions) {
    super(GATEWAY_ADDRESS, options, 'manual')
    this.#welcome = { gateway: options.gateway, boot: options.boot }
  }

  /** Tells every terminal on the line that this gateway (re)started. [LINK-7.3] */
  announce(): void {
    this.sendControl(BROADCAST_ADDRESS, { type: 'WELCOME', ...this.#welcome })
  }

  /** Queues a message for a terminal; it flows once that terminal has a session. */
  send(to: number, message: GatewayMessage, options: SendOptions = {}): number {
    if (!Number.isInteger(to) || to < 1 || to > 254) throw new LocalProtocolError('LINK_BAD_ARGUMENT', `terminal address must be 1-254, got ${to}`)
    return this.enqueue(this.getPeer(to), message, options)
  }

  terminals(): PeerStatus[] {
    return [...this.peers.values()].map((p) => this.peerStatus(p))
  }

  terminal(address: number): PeerStatus | undefined {
    const p = this.peers.get(address)
    return p && this.peerStatus(p)
  }

  protected accepts(frame: Frame): boolean {
    return frame.dst === GATEWAY_ADDRESS && frame.src >= 1 && frame.src <= 254
  }

  protected onHello(frame: Frame<Hello>): void {
    const hello = frame.message
    const peer = this.getPeer(frame.src)
    peer.lastHeard = this.now
    peer.unanswered = 0
    if (!peer.up) {
      peer.up = true
      this.emit({ kind: 'liveness', peer: peer.address, up: true })
    }
    // A new (boot, session) pair is a new handshake: reset. The same pair is a retry of
    // a HELLO whose WELCOME was lost: answer again, reset nothing; unless the terminal has
    // used the session since (a data frame, an ACK): it had the WELCOME, so this is a new
    // start under the same pair, a new unit put at the address of one still in its first
    // session. [LINK-7.2]
    const repeat = peer.state === 'open' && peer.peerBoot === hello.boot && peer.peerSession === hello.session && !peer.active
    if (!repeat) {
      const restarted = peer.peerBoot !== null && (peer.peerBoot !== hello.boot || (peer.state === 'open' && peer.peerSession === hello.session))
      this.transition(peer, 'hello')
      peer.peerBoot = hello.boot
      peer.peerSession = hello.session
      peer.hello = hello
      this.emit({ kind: 'session', peer: peer.address, state: 'open', restarted, hello })
      // The queue waits for the application to see the new session (the next send, or at
      // the latest the next tick): what was queued for the terminal before may not be for
      // it any more (a new unit: discard()). [LINK-7.2]
      this.sendControl(peer.address, { type: 'WELCOME', ...this.#welcome, echo: hello.boot, echoSession: hello.session })
      return
    }
    this.sendControl(peer.address, { type: 'WELCOME', ...this.#welcome, echo: hello.boot, echoSession: hello.session })
    this.pump(peer)
  }

  /**
   * Removes messages queued for a terminal (not the one in flight) that `match`: after its
   * numbers started again, stages queued for its old events would be taken for its new
   * ones. Returns how many; each is reported `dropped` (reason `discarded`).
   */
  discard(to: number, match: (m: GatewayMessage) => boolean): number {
    const peer = this.peers.get(to)
    return peer ? this.discardQueued(peer, (m) => match(m as GatewayMessage)) : 0
  }

  protected onWelcome(): void {
    // Only a gateway sends WELCOME; another gateway on the line is a wiring fault, and its
    // frames are not addressed to us.
  }

  protected onNoSession(peer: Peer): void {
    if (peer.state !== 'closed') this.transition(peer, 'peer-lost-session')
  }

  protected onNoSessionData(src: number, seq: number): void {
    // After a gateway restart: tell the terminal to say HELLO again. [LINK-7.3]
    this.sendControl(src, { type: 'NAK', reason: 'no-session' }, seq)
  }

  protected onOutOfSync(peer: Peer, seq: number): void {
    this.transition(peer, 'out-of-sync')
    this.sendControl(peer.address, { type: 'NAK', reason: 'no-session' }, seq)
  }
}
