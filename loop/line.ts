/**
 * Several terminals on one serial line, as on an RS-485 bus, in the two ways the loop
 * runs them:
 * - `sharedLine`: each terminal has its own serial runner, and the runners share one
 *   opening of the device. A terminal can then be stopped and booted again alone (a power
 *   cycle), and each hears the others' frames as it would on the bus. Unpaced only: two
 *   runners pacing their bytes at once would interleave them.
 * - `MultiDrop`: one runner for all of them, their frames sent one after another, so the
 *   line can be paced at the baud rate as a UART sends.
 */

import { openSerialPort, type OpenPort, type PortLike } from '../io/serial-line.js'
import type { SerialDevice } from '../device-sim/serial-runner.js'

/**
 * One serial device shared by several simulated terminals, as on an RS-485 line: the device
 * (the terminals' end of the pty pair) is opened once; every byte from the gateway reaches
 * every terminal, and each terminal hears the others' frames (not its own). Needed because
 * the serialport package locks a device: a second terminal opening the same pty end would
 * get SERIAL_BUSY for ever. When the device goes away (pty killed), every terminal's port
 * closes; each SerialLine reopens by itself, and they share the next opening again.
 */
export function sharedLine(open: OpenPort = openSerialPort): OpenPort {
  interface Tap {
    data: ((bytes: Uint8Array) => void)[]
    close: ((reason: Error | null) => void)[]
    attached: boolean
  }
  interface Bus {
    port: PortLike
    taps: Set<Tap>
    dead: boolean
  }
  let current: Bus | null = null
  let opening: Promise<Bus> | null = null
  const end = (bus: Bus, reason: Error | null): void => {
    if (bus.dead) return
    bus.dead = true
    if (current === bus) current = null
    const taps = [...bus.taps]
    bus.taps.clear()
    void bus.port.close()
    for (const t of taps) {
      t.attached = false
      for (const l of t.close) l(reason)
    }
  }
  const acquire = (path: string, baud: number): Promise<Bus> => {
    if (current) return Promise.resolve(current)
    opening ??= open(path, baud)
      .then((port) => {
        const bus: Bus = { port, taps: new Set(), dead: false }
        port.on('data', (bytes) => {
          for (const t of [...bus.taps]) for (const l of t.data) l(bytes)
        })
        port.on('close', (reason) => end(bus, reason ?? new Error('device closed')))
        port.on('error', (err) => end(bus, err))
        current = bus
        return bus
      })
      .finally(() => {
        opening = null
      })
    return opening
  }
  return async (path, baud) => {
    const bus = await acquire(path, baud)
    const tap: Tap = { data: [], close: [], attached: true }
    bus.taps.add(tap)
    return {
      write(data) {
        if (!tap.attached) return
        bus.port.write(data)
        // The other drops on the line hear it too, a moment later, as from the wire.
        const copy = data.slice()
        setImmediate(() => {
          for (const t of [...bus.taps]) if (t !== tap) for (const l of t.data) l(copy)
        })
      },
      async close() {
        if (!tap.attached) return
        tap.attached = false
        bus.taps.delete(tap)
        if (bus.taps.size > 0 || bus.dead) return
        bus.dead = true
        if (current === bus) current = null
        await bus.port.close()
      },
      on(event: 'data' | 'close' | 'error', listener: (arg: never) => void) {
        if (event === 'data') tap.data.push(listener as (bytes: Uint8Array) => void)
        else if (event === 'close') tap.close.push(listener as (reason: Error | null) => void)
        // 'error': a failure of the shared device arrives as 'close'.
      },
    }
  }
}

/** Several terminals on one line: the gateway's bytes reach all, their frames go out in turn. */
export class MultiDrop implements SerialDevice {
  constructor(readonly devices: readonly SerialDevice[]) {}

  receive(bytes: Uint8Array, now: number): void {
    for (const d of this.devices) d.receive(bytes.slice(), now)
  }

  /** Whole frames of each terminal in turn, so no two frames interleave on the line. */
  transmit(): Uint8Array | null {
    const parts: Uint8Array[] = []
    for (const d of this.devices) {
      const out = d.transmit()
      if (out !== null) parts.push(out)
    }
    if (parts.length === 0) return null
    return parts.length === 1 ? parts[0]! : new Uint8Array(Buffer.concat(parts))
  }

  tick(now: number): number | null {
    let next: number | null = null
    for (const d of this.devices) {
      const t = d.tick(now)
      if (t !== null && (next === null || t < next)) next = t
    }
    return next
  }
}
