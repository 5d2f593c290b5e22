/**
 * What every benchmark hands back, and the report `npm run bench` writes from it:
 * bench/results/latest.json ({ machine, metrics: [{ name, value, unit, baseline, ratio }] })
 * and bench/results/latest.md, a table with each goal beside its figure.
 */

import os from 'node:os'
import { execFileSync } from 'node:child_process'

export interface Metric {
  /** Stable, dotted: `latency.receipt.p99.115200`. */
  name: string
  value: number
  unit: string
  /** The same figure for the alternative run side by side in this run (null: none). */
  baseline: number | null
  /** What the baseline is: "naive bridge", "mosquitto bridge", "JSON per event", "wire time". */
  baselineName?: string
  /** value / baseline, rounded to 3 places (null when there is no baseline or it is 0). */
  ratio: number | null
  /** The goal in words, from issue 6 ("p99 ≤ 1.25 × naive bridge"). */
  goal?: string
  /** Whether the goal is met (absent when the metric has no goal). */
  met?: boolean
  /** One line on how it was measured or what limits it. */
  note?: string
}

export interface BenchContext {
  /** `--quick`: fewer samples, shorter runs; the whole suite stays under five minutes. */
  quick: boolean
  /** A scratch directory of this benchmark's own, removed after the run. */
  dir: string
  /** Progress on stderr, prefixed with the benchmark's name. */
  log(line: string): void
}

export interface Benchmark {
  /** Short, used by `--only`: latency, outage, backlog, footprint, disk, serial, scale, signing, household-page, bundle. */
  name: string
  title: string
  run(ctx: BenchContext): Promise<Metric[]>
}

/** A metric with its ratio worked out; `goal` is checked by `meets` when given. */
export function metric(m: Omit<Metric, 'ratio'> & { meets?: (value: number, baseline: number | null) => boolean }): Metric {
  const { meets, ...rest } = m
  const ratio = m.baseline === null || m.baseline === 0 ? null : round(m.value / m.baseline, 3)
  const out: Metric = { ...rest, ratio }
  if (meets !== undefined) out.met = meets(m.value, m.baseline)
  return out
}

export function round(x: number, places = 2): number {
  const f = 10 ** places
  return Math.round(x * f) / f
}

export interface Machine {
  hostname: string
  cpus: number
  cpuModel: string
  memoryMB: number
  node: string
  platform: string
  kernel: string
  mosquitto: string | null
  loadavg: number[]
}

export function describeMachine(): Machine {
  let mosquitto: string | null = null
  try {
    // `mosquitto -h` prints "mosquitto version 2.0.11" and exits 3.
    execFileSync('/usr/sbin/mosquitto', ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    const out = String((e as { stdout?: string }).stdout ?? '')
    mosquitto = /mosquitto version (\S+)/.exec(out)?.[1] ?? null
  }
  return {
    hostname: os.hostname(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryMB: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    mosquitto,
    loadavg: os.loadavg().map((x) => round(x, 2)),
  }
}

export interface Report {
  machine: Machine
  startedAt: string
  durationS: number
  quick: boolean
  /** Benchmarks that threw: their name and message. The rest still report. */
  failed: { name: string; error: string }[]
  metrics: Metric[]
}

export function toMarkdown(report: Report, titles: Map<string, string>): string {
  const m = report.machine
  const lines = [
    `# Steppelink benchmarks`,
    '',
    `${report.startedAt}, ${report.durationS} s${report.quick ? ', --quick' : ''}. ` +
      `${m.cpus} × ${m.cpuModel}, ${m.memoryMB} MB, Node ${m.node}, ${m.platform}, mosquitto ${m.mosquitto ?? 'absent'}, load ${m.loadavg.join(' ')}.`,
    '',
    'Ratio is value / baseline, both measured side by side in this run.',
  ]
  const groups = new Map<string, Metric[]>()
  for (const x of report.metrics) {
    const key = x.name.split('.')[0] ?? x.name
    groups.set(key, [...(groups.get(key) ?? []), x])
  }
  for (const [key, ms] of groups) {
    lines.push('', `## ${titles.get(key) ?? key}`, '', '| metric | value | baseline | ratio | goal | met |', '|---|---:|---:|---:|---|:-:|')
    for (const x of ms) {
      const base = x.baseline === null ? '' : `${fmt(x.baseline)} ${x.unit}${x.baselineName ? ` (${x.baselineName})` : ''}`
      const met = x.met === undefined ? '' : x.met ? 'yes' : '**no**'
      lines.push(`| ${x.name} | ${fmt(x.value)} ${x.unit} | ${base} | ${x.ratio ?? ''} | ${x.goal ?? ''} | ${met} |`)
    }
    const notes = ms.filter((x) => x.note)
    if (notes.length > 0) lines.push('', ...notes.map((x) => `- \`${x.name}\`: ${x.note}`))
  }
  if (report.failed.length > 0) {
    lines.push('', '## Failed', '', ...report.failed.map((f) => `- **${f.name}**: ${f.error}`))
  }
  return `${lines.join('\n')}\n`
}

function fmt(x: number): string {
  if (Number.isInteger(x)) return x.toLocaleString('en-US')
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2)
}
