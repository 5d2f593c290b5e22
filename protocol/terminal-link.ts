/** The terminal's end of the serial link: the firmware's logic, one peer (the gateway). */

import { BROADCAST_ADDRESS, GATEWAY_ADDRESS, type Frame } from './codec.js'
import { LocalProtocolError } from './errors.js'
import type { Hello, TerminalMessage, Welcome } from './messages.js'
import { LinkEnd } from './link-end.js'
import type { Peer } from './link-peer.js'
import type { LinkOptions, PeerStatus, SendOptions } from './link-types.js'
import { retryTimeoutMs } from './timing.js'

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
    return { ...this.#gateway.status(), gatewayBoot: this.#gatewayBoot }
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
