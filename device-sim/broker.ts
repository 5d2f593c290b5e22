/**
 * An MQTT broker in this process (aedes), on 127.0.0.1: the platform's broker for the
 * demo and the tests, with no external broker to install.
 */

import { Aedes, type AedesOptions } from 'aedes'
import net from 'node:net'

export interface AedesBroker {
  url: string
  port: number
  /** For hooks (authorizePublish ...) and events (clientDisconnect ...). */
  aedes: Aedes
  /** Kills the broker like a crash: sockets destroyed (no DISCONNECT, no CONNACK refusal). */
  close(): Promise<void>
}

/**
 * aedes 1.x: `Aedes.createBroker()` is async (it awaits the persistence's setup), and a
 * `net` server hands each socket to `aedes.handle`. Port 0 (default) takes a free port.
 */
export async function startAedes(opts: { port?: number; aedes?: AedesOptions } = {}): Promise<AedesBroker> {
  const aedes = await Aedes.createBroker(opts.aedes)
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    aedes.handle(socket)
  })
  await listen(server, opts.port ?? 0)
  const port = (server.address() as net.AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    aedes,
    close: () =>
      (closing ??= (async () => {
        for (const socket of sockets) socket.destroy()
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await new Promise<void>((resolve) => aedes.close(() => resolve()))
      })()),
  }
}

export function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
}
