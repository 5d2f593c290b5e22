/**
 * What the two link ends share: sequence numbers, acknowledgement, retransmission, the
 * send queue, liveness and counters. TerminalLink (terminal-link.ts) and GatewayLink
 * (gateway-link.ts) add the handshake and what each does with a peer it has no session
 * with.
 *
 * Sans-I/O, after h11: bytes in with `receive()`, events out with `nextEvent()`, messages
 * in with `send()`, bytes out with `transmit()`, and the time told with `tick(now)`,
 * which returns the next deadline. No timers, no randomness of its own (`random` is
 * injected), so the same code runs on a real port, in a simulator and in a test with a
 * fake clock, and could be ported to C line by line.
 */

import { FrameDecoder, encodeWire, type Frame, type FrameHeader } from './codec.js'
import { LocalProtocolError, assertNever, type WireErrorCode } from './errors.js'
import { FIRST_DATA_CODE, MESSAGE_BY_CODE, MESSAGE_BY_TYPE, type Direction, type DataMessage, type Hello, type Message, type NakReason, type Welcome } from './messages.js'
import { Peer, type Outgoing } from './link-peer.js'
import type { LinkCounter, LinkEvent, LinkOptions, SendOptions } from './link-types.js'
import { nextSessionState, type SessionInput } from './session.js'
import { ATTEMPTS_BEFORE_DOWN, retryTimeoutMs } from './timing.js'

export abstract class LinkEnd {
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

  protected enqueue(peer: Peer, message: DataMessage, options: SendOptions): number {
    if (options.now !== undefined) this.#setNow(options.now)
    // A message that cannot be encoded (a field out of range, a text too long for a frame)
    // is refused here, to the caller, as the bug it is: queued, it would throw at every
    // transmission and block every later frame to that peer for good.
    encodeWire({ dst: peer.address, src: this.address, seq: 0, message })
    const ref = ++this.#refs
    const item: Outgoing = { ref, message, priority: options.priority ?? 0, coalesce: options.coalesce }
    const room = peer.makeRoom(item, this.#maxQueue)
    if (room) {
      if (room.reason === 'queue-full') this.#count('dropped')
      this.emit({ kind: 'dropped', to: peer.address, ref: room.gone.ref, message: room.gone.message, reason: room.reason })
      if (room.gone === item) return ref
    }
    peer.requeue(item, 'after')
    this.pump(peer)
    return ref
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
    peer.requeue(item)
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
    const forgotten = peer.resetSequences()
    if (forgotten !== null) this.#awaitingRefs.delete(forgotten)
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
    if (peer?.state !== 'open') {
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
    if (peer?.state !== 'open') {
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
