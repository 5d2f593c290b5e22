/** The gateway's end of the serial link: any number of terminals on one line. */

import { BROADCAST_ADDRESS, GATEWAY_ADDRESS, type Frame } from './codec.js'
import { LocalProtocolError } from './errors.js'
import type { GatewayMessage, Hello, Welcome } from './messages.js'
import { LinkEnd } from './link-end.js'
import type { Peer } from './link-peer.js'
import type { LinkOptions, PeerStatus, SendOptions } from './link-types.js'

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
    return [...this.peers.values()].map((p) => p.status())
  }

  terminal(address: number): PeerStatus | undefined {
    const p = this.peers.get(address)
    return p?.status()
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
