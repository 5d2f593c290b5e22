/**
 * The terminals this gateway knows, by their address on the serial line. Which terminal
 * answers at which address, and what it can do, outlive a restart (the store's meta
 * `terminals`): supervision covers a terminal that was there before a reboot and never
 * comes back, and the status lists it.
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
}

export class KnownTerminals {
  readonly #byAddress = new Map<number, KnownTerminal>()

  constructor(private readonly store: Store) {}

  /** The terminals of the last run, none lost yet, each in its current numbering. */
  load(): void {
    for (const t of JSON.parse(this.store.meta('terminals') ?? '[]') as Partial<KnownTerminal>[]) {
      if (t.address === undefined || t.terminal === undefined) continue
      this.#byAddress.set(t.address, { address: t.address, terminal: t.terminal, lost: false, capabilities: t.capabilities ?? [], epoch: this.store.numbering(t.terminal)?.epoch ?? '' })
    }
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
    this.store.setMeta('terminals', JSON.stringify([...this.#byAddress.values()].map(({ address, terminal, capabilities }) => ({ address, terminal, capabilities }))))
  }
}
