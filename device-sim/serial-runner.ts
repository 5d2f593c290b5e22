/**
 * Runs a TerminalDevice on a real serial device (one end of a socat pseudo-terminal pair,
 * or a USB adapter wired to the gateway) with real time.
 */

import { SerialLine, type SerialEvent } from '../gateway/serial.js'
import type { TerminalDevice } from './terminal.js'

export interface RunningTerminal {
  line: SerialLine
  stop(): Promise<void>
}

export function runOnSerial(device: TerminalDevice, options: { path: string; baud?: number; onSerialEvent?: (e: SerialEvent) => void }): RunningTerminal {
  let timer: NodeJS.Timeout | null = null
  let stopped = false
  const flush = () => {
    for (let out = device.transmit(); out; out = device.transmit()) line.write(out)
  }
  const line: SerialLine = new SerialLine({
    path: options.path,
    baud: options.baud ?? 9600,
    onData: (bytes) => {
      device.receive(bytes, Date.now())
      flush()
      schedule()
    },
    onEvent: options.onSerialEvent ?? (() => {}),
  })
  const schedule = () => {
    if (stopped) return
    if (timer) clearTimeout(timer)
    const next = device.tick(Date.now())
    flush()
    timer = setTimeout(schedule, Math.max(5, Math.min(1_000, next - Date.now())))
  }
  line.start()
  schedule()
  return {
    line,
    stop: async () => {
      stopped = true
      if (timer) clearTimeout(timer)
      await line.stop()
    },
  }
}
