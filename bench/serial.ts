/**
 * Serial throughput (issue 6, item 6): how many frames a second get from the terminal to
 * the gateway and are acknowledged, against what the line could carry.
 *
 * The real gateway as a child process on a socat pty, a simulated terminal on the other
 * end paced at the baud rate both ways (bench/lib/loop-rig.ts), mosquitto and the operator
 * console on 127.0.0.1 as the platform. The terminal is kept busy: a few events always
 * wait in its link queue, so the link sends the next frame the moment the last one is
 * acknowledged (stop-and-wait, one frame in flight). Status-class events (`test`, the
 * periodic test report: stored with synchronous=NORMAL, no INDICATE back) measure the
 * link; alarms (`emergency`: fsync per alarm, and three INDICATEs back that the terminal
 * must acknowledge on the same line) show what the alarm path costs. The naive bridge
 * (bench/naive-bridge.ts: ACK at once, nothing stored) runs the same status flood on the
 * same rig, side by side: its rate is the ceiling the rig itself allows.
 *
 * Line rate: the baud rate / 10 bits a byte / the EVENT frame's bytes on the wire. Each
 * frame's cycle is split, from the terminal's side, into its wire time, the turnaround
 * (last byte on the wire to the ACK read: the gateway's work, the pty, the ACK's own wire
 * time) and the rest (the terminal's UART timer and its own work before the next frame).
 */

import { performance } from 'node:perf_hooks'
import { startConsole } from '../platform/index.js'
import { startMosquitto } from '../device-sim/mosquitto.js'
import { waitUntil } from '../device-sim/wait.js'
import type { OpenPort } from '../io/serial-line.js'
import { checkDelivery } from '../loop/delivery.js'
import { expectDelivered } from '../loop/loop.js'
import { encodeWire, FrameDecoder, GATEWAY_ADDRESS } from '../protocol/codec.js'
import type { EventKind } from '../protocol/messages.js'
import { wireTimeMs } from '../protocol/timing.js'
import { Cleanups, startSide, type Side } from './lib/loop-rig.js'
import { metric, round, type BenchContext, type Benchmark, type Metric } from './lib/report.js'
import { mean, percentile } from './lib/stats.js'

const BAUDS = [9600, 115200] as const
/** Events kept waiting in the terminal's queue: enough that it never runs dry. */
const DEPTH = 8
/** Frames acknowledged before the measured window starts. */
const WARMUP_FRAMES = 10
/** The ACK frame on the wire: header and CRC, COBS overhead, two delimiters. */
const ACK_BYTES = encodeWire({ dst: 1, src: GATEWAY_ADDRESS, seq: 0, message: { type: 'ACK' } }).length

interface Run {
  frames: number
  fps: number
  frameBytes: number
  /** Per frame, ms: last byte written to the ACK read; the rest of the cycle after the wire time. */
  turnaround: number[]
  rest: number[]
}

export const benchmark: Benchmark = {
  name: 'serial',
  title: 'Serial throughput: acknowledged frames per second against the line rate (issue 6, item 6)',
  run,
}

async function run(ctx: BenchContext): Promise<Metric[]> {
  const seconds = ctx.quick ? { status: 4, alarm: 2, naive: 2 } : { status: 20, alarm: 10, naive: 10 }
  const cleanups = new Cleanups()
  try {
    const broker = await startMosquitto()
    cleanups.add(() => broker.close())
    // The platform: it sends each gateway the time (so the terminal's frames carry it, as
    // in the field) and a receipt for each alarm.
    const arrivals: string[] = []
    const platform = await startConsole({
      broker: broker.url,
      id: `bench-serial-${process.pid}`,
      ack: 'none',
      reconnectS: 0.2,
      onEvent: (e) => {
        if (e.type === 'alert' && !e.duplicate) arrivals.push(e.id)
      },
    })
    cleanups.add(() => platform.close())
    const metrics: Metric[] = []
    for (const baud of BAUDS) {
      const perBaud = new Cleanups()
      try {
        const common = { baud, broker: broker.url, dir: ctx.dir, cleanups: perBaud }
        const gwTap = new WireTap()
        const gateway = await startSide({ ...common, system: 'gateway', name: `gw-serial-${baud}`, terminalId: `SL-T-SG${baud}`, wrapPort: (open) => gwTap.wrap(open) })
        const nvTap = new WireTap()
        const naive = await startSide({ ...common, system: 'naive', name: `naive-serial-${baud}`, terminalId: `SL-T-SN${baud}`, wrapPort: (open) => nvTap.wrap(open) })
        const runs: [RunName, Side, WireTap, EventKind, number][] = [
          ['status', gateway, gwTap, 'test', seconds.status],
          ['alarm', gateway, gwTap, 'emergency', seconds.alarm],
          ['status-naive', naive, nvTap, 'test', seconds.naive],
        ]
        for (const [name, side, tap, kind, s] of runs) {
          const r = await flood(side, tap, kind, s * 1000)
          ctx.log(`${baud} baud, ${name}: ${r.frames} frames in the window, ${r.fps.toFixed(1)} frames/s`)
          metrics.push(toMetric(name, baud, r))
        }
        // The floods count only if the promise held (loop/delivery.ts): the alarm run's
        // alarms all at the platform once, in order, and shown `received`; nothing of any
        // run left in a terminal's memory.
        await expectDelivered(() => checkDelivery([gateway, naive], arrivals), 60_000)
      } finally {
        await perBaud.run()
      }
    }
    return metrics
  } finally {
    await cleanups.run()
  }
}

/** Notes when the terminal's UART has put the last byte of each EVENT frame on the wire. */
class WireTap {
  /** performance.now() of each EVENT's last byte written, by event number (the latest copy). */
  readonly sent = new Map<number, number>()
  readonly #decoder = new FrameDecoder()

  wrap(open: OpenPort): OpenPort {
    return async (path, baud) => {
      const port = await open(path, baud)
      return {
        write: (data) => {
          port.write(data)
          const at = performance.now()
          this.#decoder.push(data)
          for (let r = this.#decoder.next(); r; r = this.#decoder.next()) {
            if (r.kind === 'frame' && r.frame.message.type === 'EVENT') this.sent.set(r.frame.message.number, at)
          }
        },
        close: () => port.close(),
        on: port.on.bind(port),
      }
    }
  }
}

/**
 * Presses `kind` so that DEPTH events always wait, for `ms` after the warm-up; then lets
 * the queue drain. The rate is over the acknowledgements in the window.
 */
async function flood(side: Side, tap: WireTap, kind: EventKind, ms: number): Promise<Run> {
  await waitUntil(side.idle, { timeoutMs: 30_000, what: `the line idle before the ${kind} run` })
  const pressed: number[] = []
  const bytes: number[] = []
  let stop = false
  const topUp = (): void => {
    while (!stop && side.device.pending.length < DEPTH) {
      const p = side.press(kind)
      pressed.push(p.number)
      bytes.push(p.frameBytes)
    }
  }
  const delivered = (n: number): number | undefined => side.shown.get(n)?.get('delivered')
  // The terminal's queue is refilled as each acknowledgement empties a place in it.
  const timer = setInterval(topUp, 1)
  try {
    topUp()
    await waitUntil(() => pressed.length > WARMUP_FRAMES && delivered(pressed[WARMUP_FRAMES]!) !== undefined, { timeoutMs: 30_000, what: `${kind} warm-up` })
    const first = WARMUP_FRAMES
    await new Promise((r) => setTimeout(r, ms))
    stop = true
    const done = pressed.filter((n, i) => i >= first && delivered(n) !== undefined)
    const last = done.at(-1)!
    const t0 = delivered(pressed[first]!)!
    const fps = ((done.length - 1) * 1000) / (delivered(last)! - t0)
    const turnaround: number[] = []
    const rest: number[] = []
    const frameBytes = mean(bytes)
    const wire = wireTimeMs(frameBytes, side.baud)
    for (let i = 1; i < done.length; i++) {
      const end = tap.sent.get(done[i]!)
      if (end === undefined) continue
      turnaround.push(delivered(done[i]!)! - end)
      rest.push(end - delivered(done[i - 1]!)! - wire)
    }
    return { frames: done.length, fps, frameBytes, turnaround, rest }
  } finally {
    clearInterval(timer)
    stop = true
    await waitUntil(() => side.device.pending.length === 0, { timeoutMs: 60_000, what: `the ${kind} events to drain` })
  }
}

/** What each run measures, by the metric name's middle part. */
const WHAT = {
  status: 'the gateway, status-class events (test reports: stored with SQLite synchronous=NORMAL, no INDICATE back)',
  alarm: 'the gateway, alarms (fsync per alarm before the ACK; the INDICATEs stored, sent, received come back on the line and are acknowledged)',
  'status-naive': 'the naive bridge of the latency benchmark (ACK at once, no store) on the same rig, status-class events: the ceiling of the rig (pacing timers, socat, ACK wire time), not a goal',
} as const
type RunName = keyof typeof WHAT

function toMetric(name: RunName, baud: number, r: Run): Metric {
  const lineFps = baud / 10 / r.frameBytes
  const wire = wireTimeMs(r.frameBytes, baud)
  const ack = wireTimeMs(ACK_BYTES, baud)
  const ms = (x: number) => `${round(x, 2)} ms`
  return metric({
    name: `serial.${name}.fps.${baud}`,
    value: round(r.fps, 1),
    unit: 'frames/s',
    baseline: round(lineFps, 1),
    baselineName: `line rate, ${round(r.frameBytes, 1)}-byte frames`,
    note:
      `${WHAT[name]}; ${r.frames} frames acknowledged in the window. Per frame (means): cycle ${ms(1000 / r.fps)} = wire ${ms(wire)} ` +
      `+ turnaround ${ms(mean(r.turnaround))} (p99 ${ms(percentile(r.turnaround, 99))}; of it the ${ACK_BYTES}-byte ACK's wire time ${ms(ack)}) ` +
      `+ terminal side ${ms(mean(r.rest))}. Stop-and-wait bound with no processing at all: ${round(r.frameBytes / (r.frameBytes + ACK_BYTES), 3)} of the line rate.`,
  })
}
