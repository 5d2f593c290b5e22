/**
 * A TCP proxy on 127.0.0.1 between an MQTT client and its broker, to make the link fail
 * the ways a rural cellular link does:
 * - `stall()`: bytes stop in both directions, and no FIN or RST goes anywhere, not even
 *   when one end gives up and closes: the other end sees a half-open connection and has
 *   only its keepalive to find out. Connections opened while stalled are stalled too.
 * - `resume()`: what was held is delivered (as TCP would after a short outage), then the
 *   closes that happened meanwhile are passed on.
 * - `drop()`: every current connection is cut at once on both sides.
 */

import net from 'node:net'

export interface StallProxy {
  url: string
  port: number
  readonly stalled: boolean
  /** Connections with at least one side still open. */
  readonly connections: number
  stall(): void
  resume(): void
  drop(): void
  close(): Promise<void>
}

interface Pair {
  /** [client side, broker side] */
  sockets: [net.Socket, net.Socket]
  /** Bytes received from each side and not yet passed on. */
  held: [Buffer[], Buffer[]]
  /** Each side has closed; passed on to the other once not stalled. */
  ended: [boolean, boolean]
}

export async function startStallProxy(target: { port: number; host?: string }, opts: { port?: number } = {}): Promise<StallProxy> {
  const pairs = new Set<Pair>()
  let stalled = false

  const forget = (pair: Pair) => {
    if (pair.sockets[0].destroyed && pair.sockets[1].destroyed) pairs.delete(pair)
  }
  const pass = (pair: Pair, from: 0 | 1) => {
    const to = pair.sockets[from === 0 ? 1 : 0]
    for (const chunk of pair.held[from].splice(0)) if (!to.destroyed) to.write(chunk)
    if (pair.ended[from] && !to.destroyed) to.end()
  }

  const server = net.createServer((client) => {
    const upstream = net.connect({ port: target.port, host: target.host ?? '127.0.0.1' })
    const pair: Pair = { sockets: [client, upstream], held: [[], []], ended: [false, false] }
    pairs.add(pair)
    for (const from of [0, 1] as const) {
      const socket = pair.sockets[from]
      socket.on('error', () => {
        // ECONNRESET / ECONNREFUSED: 'close' follows and is handled there.
      })
      socket.on('data', (chunk: Buffer) => {
        pair.held[from].push(chunk)
        if (!stalled) pass(pair, from)
      })
      socket.on('close', () => {
        pair.ended[from] = true
        if (!stalled) pass(pair, from)
        forget(pair)
      })
    }
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as net.AddressInfo).port

  const drop = () => {
    for (const pair of pairs) for (const socket of pair.sockets) socket.destroy()
    pairs.clear()
  }
  let closing: Promise<void> | undefined
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    get stalled() {
      return stalled
    },
    get connections() {
      return pairs.size
    },
    stall: () => {
      stalled = true
    },
    resume: () => {
      stalled = false
      for (const pair of [...pairs]) {
        pass(pair, 0)
        pass(pair, 1)
        forget(pair)
      }
    },
    drop,
    close: () =>
      (closing ??= (async () => {
        drop()
        await new Promise<void>((resolve) => server.close(() => resolve()))
      })()),
  }
}
