/**
 * The cellular network of one region, as the simulated gateways of a worker see it: the
 * `connect` every gateway's Uplink uses. A regional outage (`cut`) destroys every
 * connection at once, so the broker sees each close and publishes each gateway's will,
 * while the platform, which is not behind this network, stays connected. Until `restore`,
 * every attempt ends at a dead end that resets it at once, like a modem with no data
 * bearer: the attempt fails fast and the gateway's real backoff counts it.
 */

import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import net from 'node:net'
import { listen } from '../../device-sim/broker.js'

export class Region {
  readonly #deadEnd: net.Server
  readonly #deadUrl: string
  readonly #clients = new Set<MqttClient>()
  #down = false

  private constructor(deadEnd: net.Server) {
    this.#deadEnd = deadEnd
    this.#deadUrl = `mqtt://127.0.0.1:${(deadEnd.address() as net.AddressInfo).port}`
  }

  static async open(): Promise<Region> {
    // A listener under our control (not a port assumed free): it accepts and resets.
    const deadEnd = net.createServer((socket) => socket.resetAndDestroy())
    await listen(deadEnd, 0)
    return new Region(deadEnd)
  }

  /** Drop-in for mqtt.connect (UplinkOptions.connect): the broker while up, the dead end while down. */
  readonly connect: typeof mqtt.connect = (target: string | IClientOptions, opts?: IClientOptions): MqttClient => {
    if (typeof target !== 'string') throw new Error('Region.connect: the Uplink passes a broker URL')
    const client = mqtt.connect(this.#down ? this.#deadUrl : target, opts)
    this.#clients.add(client)
    client.once('close', () => this.#clients.delete(client))
    return client
  }

  /** The outage begins: every open connection is destroyed in the same tick. */
  cut(): void {
    this.#down = true
    for (const client of this.#clients) client.stream.destroy()
  }

  restore(): void {
    this.#down = false
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#deadEnd.close(() => resolve()))
  }
}
