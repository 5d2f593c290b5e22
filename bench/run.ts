/**
 * `npm run bench [-- --quick] [-- --only latency,outage]`: runs every benchmark, each in a
 * fresh Node process (so one benchmark's leftovers, heap or sockets, never weigh on the
 * next), and writes bench/results/latest.json and latest.md.
 *
 * This machine is noisy (2 shared cores): every comparison runs its alternative side by
 * side in the same benchmark, and the report gives the ratio as well as the figures.
 */

import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { describeMachine, toMarkdown, type Benchmark, type Metric, type Report } from './lib/report.js'
import { benchmark as latency } from './latency.js'
import { benchmark as outage } from './outage.js'
import { benchmark as backlog } from './backlog.js'
import { benchmark as footprint } from './footprint.js'
import { benchmark as disk } from './disk.js'
import { benchmark as serial } from './serial.js'
import { benchmark as scale } from './scale.js'
import { benchmark as signing } from './signing.js'
import { benchmark as householdPage } from './household-page.js'
import { benchmark as bundle } from './bundle.js'

export const BENCHMARKS: Benchmark[] = [latency, outage, backlog, footprint, disk, serial, scale, signing, householdPage, bundle]

const here = path.dirname(fileURLToPath(import.meta.url))
/** bench/results in the source tree (this file runs from dist/bench). */
const RESULTS = path.resolve(here, '..', '..', 'bench', 'results')

const USAGE = `Usage: npm run bench [-- --quick] [-- --only NAME[,NAME]] [-- --out DIR]

Runs the benchmarks (${BENCHMARKS.map((b) => b.name).join(', ')}), each in its own
process, and writes DIR/latest.json and DIR/latest.md (default bench/results).
  --quick   fewer samples and shorter runs: the whole suite in under five minutes
  --only    run only these benchmarks (the report then holds only their metrics)`

const OPTIONS = {
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  out: { type: 'string', default: RESULTS },
  child: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>

async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS }>>['values']
  try {
    ;({ values } = parseArgs({ args: argv, options: OPTIONS }))
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  if (values.child !== undefined) return runChild(values.child, values.quick)

  const names = values.only?.split(',').map((s) => s.trim()) ?? BENCHMARKS.map((b) => b.name)
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n))
  if (unknown.length > 0) {
    console.error(`bench: --only: no benchmark named ${unknown.join(', ')}; there are ${BENCHMARKS.map((b) => b.name).join(', ')}`)
    return 2
  }

  const started = Date.now()
  const report: Report = {
    machine: describeMachine(),
    startedAt: new Date(started).toISOString(),
    durationS: 0,
    quick: values.quick,
    failed: [],
    metrics: [],
  }
  for (const name of names) {
    const t0 = Date.now()
    console.error(`bench: ${name} ...`)
    const result = await runInChild(name, values.quick)
    if ('error' in result) {
      report.failed.push({ name, error: result.error })
      console.error(`bench: ${name} FAILED: ${result.error}`)
    } else {
      report.metrics.push(...result.metrics)
      console.error(`bench: ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    }
  }
  report.durationS = Math.round((Date.now() - started) / 1000)

  mkdirSync(values.out, { recursive: true })
  const titles = new Map(BENCHMARKS.map((b) => [b.name, b.title]))
  const md = toMarkdown(report, titles)
  writeFileSync(path.join(values.out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`)
  writeFileSync(path.join(values.out, 'latest.md'), md)
  console.log(md)
  console.error(`bench: wrote ${path.join(values.out, 'latest.json')} and latest.md in ${report.durationS} s`)
  return report.failed.length > 0 ? 1 : 0
}

/** The child prints one line `BENCH-RESULT {json}` on stdout; everything else is progress. */
const MARK = 'BENCH-RESULT '

function runInChild(name: string, quick: boolean): Promise<{ metrics: Metric[] } | { error: string }> {
  return new Promise((resolve) => {
    const args = [fileURLToPath(import.meta.url), '--child', name, ...(quick ? ['--quick'] : [])]
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s))
    child.once('error', (e) => resolve({ error: e.message }))
    child.once('exit', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith(MARK))
      if (line === undefined) {
        resolve({ error: `exited ${code ?? signal} without a result` })
        return
      }
      const parsed = JSON.parse(line.slice(MARK.length)) as { metrics: Metric[] } | { error: string }
      resolve(parsed)
    })
  })
}

async function runChild(name: string, quick: boolean): Promise<number> {
  const b = BENCHMARKS.find((x) => x.name === name)
  if (b === undefined) throw new Error(`no benchmark ${name}`)
  const dir = mkdtempSync(path.join(os.tmpdir(), `steppelink-bench-${name}-`))
  try {
    const metrics = await b.run({ quick, dir, log: (line) => console.error(`  ${name}: ${line}`) })
    process.stdout.write(`${MARK}${JSON.stringify({ metrics })}\n`)
    return 0
  } catch (e) {
    process.stdout.write(`${MARK}${JSON.stringify({ error: (e as Error).stack ?? String(e) })}\n`)
    return 1
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
    // Benchmarks leave brokers and sockets behind on failure; do not wait for them.
    setTimeout(() => process.exit(code), 200).unref()
  },
  (e: unknown) => {
    console.error(e)
    process.exit(1)
  },
)
