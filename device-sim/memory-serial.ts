/**
 * Two serial ports joined by a wire in memory: for running the whole loop where socat
 * (a real pseudo-terminal pair) is not installed. Each end is an OpenPort for SerialLine;
 * bytes written at one end arrive at the other on the next turn of the event loop.
 */

import type { OpenPort, PortLike } from '../io/serial-line.js'

class MemoryPort implements PortLike {
  peer: MemoryPort | null = null
  open = true
  readonly #listeners = { data: [] as ((d: Uint8Array) => void)[], close: [] as ((r: Error | null) => void)[], error: [] as ((e: Error) => void)[] }

  write(data: Uint8Array): void {
    const copy = data.slice()
    const peer = this.peer
    setImmediate(() => {
      if (this.open && peer?.open) for (const l of peer.#listeners.data) l(copy)
    })
  }

  async close(): Promise<void> {
    this.open = false
  }

  on(event: 'data', listener: (data: Uint8Array) => void): void
  on(event: 'close', listener: (reason: Error | null) => void): void
  on(event: 'error', listener: (error: Error) => void): void
  on(event: 'data' | 'close' | 'error', listener: (arg: never) => void): void {
    ;(this.#listeners[event] as unknown[]).push(listener)
  }
}

/** Two OpenPort functions whose ports are wired to each other (the path is ignored). */
export function memorySerialPair(): [OpenPort, OpenPort] {
  const ends: [MemoryPort | null, MemoryPort | null] = [null, null]
  const opener =
    (i: 0 | 1): OpenPort =>
    async () => {
      const port = new MemoryPort()
      ends[i] = port
      const other = ends[i === 0 ? 1 : 0]
      if (other) {
        port.peer = other
        other.peer = port
      }
      return port
    }
  return [opener(0), opener(1)]
}
