/**
 * The terminals this gateway knows, by their address on the serial line. Which terminal
 * answers at which address, and what it can do, outlive a restart (the store's meta
 * `terminals`): supervision covers a terminal that was there before a reboot and never
 * comes back, and the status lists it.
 *
 * And the bindings (the store's meta `bindings`, issue 12, [LINK-7.4]): the first address a
 * terminal id is heard at in a HELLO is bound to that id, for good. A HELLO with that id
 * from another address is a second claimant: it never acts as the bound terminal (its
 * events are filed under `claimantId`, apart), and only a person at the board moves a
 * binding (`steppelink terminals rebind`, with the gateway stopped: the store is locked
 * to one process). A binding is kept when another terminal answers at its address (a
 * binding is about where the id may speak from, not about who speaks at the address: the
 * serial line cannot tell that), so a claimant that took the address for a moment does
 * not free the id to speak from anywhere.
 */

import type { GatewayLink } from '../protocol/link.js'
import type { Capability } from '../protocol/messages.js'
import type { Store } from './store.js'

export interface KnownTerminal {
  address: number
  terminal: string
  lost: boolean
  /** From its HELLO: a terminal without a display is sent no DISPLAY. [LINK-5.8] */
  capabilities: Capability[]
  /** Its current numbering epoch ('' until a reset): INDICATEs go only to this epoch's events. */
  epoch: string
  /**
   * A second claimant: the terminal id its HELLO claimed, bound to another address. Its own
   * `terminal` is then `claimantId(...)`, under which its events, numbers and stages are kept.
   */
  claims?: string
}

/**
 * The identity a second claimant's events are filed under: the id it claimed, qualified by
 * the gateway and its address. `@` never occurs in a terminal id ([MQTT-2.1]), so it cannot
 * be any terminal's own id; the gateway makes it unique across gateways ([MQTT-3.2]). At
 * most 32 + 1 + 64 + 5 = 102 characters.
 */
export function claimantId(terminal: string, gateway: string, address: number): string {
  return `${terminal}@${gateway}.a${address}`
}

export class KnownTerminals {
  readonly #byAddress = new Map<number, KnownTerminal>()
  /** Terminal id -> the address it is bound to. [LINK-7.4] */
  readonly #bound = new Map<string, number>()

  constructor(private readonly store: Store) {}

  /**
   * The terminals of the last run, none lost yet, each in its current numbering, and the
   * bindings. A store from before the bindings binds each terminal where it was last known
   * (the first address, if an id was known at two).
   */
  load(): void {
    for (const t of JSON.parse(this.store.meta('terminals') ?? '[]') as Partial<KnownTerminal>[]) {
      if (t.address === undefined || t.terminal === undefined) continue
      this.#byAddress.set(t.address, {
        address: t.address,
        terminal: t.terminal,
        lost: false,
        capabilities: t.capabilities ?? [],
        epoch: this.store.numbering(t.terminal)?.epoch ?? '',
        ...(t.claims !== undefined ? { claims: t.claims } : {}),
      })
    }
    for (const [terminal, address] of Object.entries(JSON.parse(this.store.meta('bindings') ?? '{}') as Record<string, number>)) this.#bound.set(terminal, address)
    // A store from before the bindings, or a crash between the two meta writes of save().
    for (const t of this.#byAddress.values()) if (t.claims === undefined && !this.#bound.has(t.terminal)) this.#bound.set(t.terminal, t.address)
    // A store from before the bindings may know one id at two addresses (the attack of issue
    // 12): the one not bound is forgotten, so that named() finds the bound one only; it is a
    // claimant again at its next HELLO.
    for (const t of [...this.#byAddress.values()]) if (t.claims === undefined && this.#bound.get(t.terminal) !== t.address) this.#byAddress.delete(t.address)
  }

  /** The address this terminal id is bound to, if it has been heard. [LINK-7.4] */
  boundAddress(terminal: string): number | undefined {
    return this.#bound.get(terminal)
  }

  /** Binds an id heard for the first time to its address. Call save() after. */
  bind(terminal: string, address: number): void {
    if (!this.#bound.has(terminal)) this.#bound.set(terminal, address)
  }

  /**
   * Moves a binding (a technician re-wired the terminal): the id is bound to `address`, and
   * what was known of it at its old address, and of whatever answered at the new one (a
   * claimant, most often: the terminal itself before the move), is forgotten, so that its
   * stages go to the new address only; another id keeps its own binding. Saved at once. Only the local command
   * calls it, with the gateway stopped. [LINK-7.4]
   */
  rebind(terminal: string, address: number): { was: number | undefined } {
    const was = this.#bound.get(terminal)
    for (const t of [...this.#byAddress.values()]) if (t.terminal === terminal || t.address === address) this.#byAddress.delete(t.address)
    this.#bound.set(terminal, address)
    this.save()
    return { was }
  }

  /** Every binding, by terminal id. */
  bindings(): [string, number][] {
    return [...this.#bound.entries()]
  }

  get size(): number {
    return this.#byAddress.size
  }

  at(address: number): KnownTerminal | undefined {
    return this.#byAddress.get(address)
  }

  /** The terminal with this id, wherever it answers. */
  named(terminal: string): KnownTerminal | undefined {
    return [...this.#byAddress.values()].find((t) => t.terminal === terminal)
  }

  /** Records a terminal at its address (replacing whatever answered there before). Call save() after. */
  set(t: KnownTerminal): void {
    this.#byAddress.set(t.address, t)
  }

  values(): IterableIterator<KnownTerminal> {
    return this.#byAddress.values()
  }

  /** Those with a session open now: the ones a message can reach without waiting for a HELLO. */
  inSession(link: GatewayLink): KnownTerminal[] {
    return [...this.#byAddress.values()].filter((t) => link.terminal(t.address)?.state === 'open')
  }

  save(): void {
    this.store.setMeta(
      'terminals',
      JSON.stringify([...this.#byAddress.values()].map(({ address, terminal, capabilities, claims }) => ({ address, terminal, capabilities, ...(claims !== undefined ? { claims } : {}) }))),
    )
    this.store.setMeta('bindings', JSON.stringify(Object.fromEntries(this.#bound)))
  }
}
