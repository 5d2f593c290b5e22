/**
 * The board bundle (issue 14): what a technician carries to the board and what it takes
 * there. The bundle's size (the file copied over a weak link or on a USB stick) for x64
 * and, where the cross compiler is installed, arm64, and what is in it; the installed
 * footprint after `install.sh --root` into a fresh tree, and the time the install takes
 * (the manifest check and the self-test included); and the gateway on the bundled runtime
 * (Node.js 24) against this machine's Node.js, both as the service runs it
 * (`--lite-mode --max-old-space-size=96`), side by side in one run: resident memory idle
 * and the time to "gateway ready".
 */

import { spawnSync } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildBundle, releaseName, systemTree } from '../tests/helpers/bundle.js'
import { startHousehold, type Household } from './lib/household-rig.js'
import { watchProc } from './lib/proc.js'
import { metric, round, type Benchmark, type Metric } from './lib/report.js'
import { mean, percentile } from './lib/stats.js'

/** As the service unit runs the gateway (deploy/systemd/steppelink-gateway.service). */
const SERVICE_FLAGS = ['--lite-mode', '--max-old-space-size=96'] as const

function bytesUnder(path: string): number {
  const st = lstatSync(path)
  if (!st.isDirectory()) return st.size
  let total = 0
  for (const e of readdirSync(path)) total += bytesUnder(join(path, e))
  return total
}

const mb = (bytes: number) => round(bytes / 1e6, 1)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export const benchmark: Benchmark = {
  name: 'bundle',
  title: 'The board bundle: size, installed footprint, install time, the gateway on the bundled runtime',
  async run(ctx) {
    const out: Metric[] = []
    ctx.log('building the x64 bundle (the runtime and better-sqlite3 come from the cache after the first build)')
    const x64 = buildBundle('x64', join(ctx.dir, 'build'), 1_200_000)
    out.push(metric({ name: 'bundle.size.x64', value: mb(x64.bytes), unit: 'MB', baseline: null, note: `${releaseName(x64.bundle)}.tar.gz, Node.js ${x64.node}` }))
    out.push(metric({ name: 'bundle.unpacked.x64', value: mb(x64.unpackedBytes), unit: 'MB', baseline: null }))
    if (existsSync('/usr/bin/aarch64-linux-gnu-g++')) {
      ctx.log('building the arm64 bundle')
      const arm = buildBundle('arm64', join(ctx.dir, 'build'), 1_200_000)
      out.push(metric({ name: 'bundle.size.arm64', value: mb(arm.bytes), unit: 'MB', baseline: null, goal: 'under 64 MB (a USB stick or a night on a weak link)', meets: (v) => v < 64 }))
      out.push(metric({ name: 'bundle.unpacked.arm64', value: mb(arm.unpackedBytes), unit: 'MB', baseline: null }))
    } else {
      ctx.log('no aarch64-linux-gnu-g++: the arm64 bundle is not built (apt-get install -y g++-aarch64-linux-gnu)')
    }

    // Installed into a fresh tree, as a technician's install.sh run would, timed.
    const tree = systemTree(join(ctx.dir, 'root'))
    const unpacked = join(ctx.dir, 'unpacked')
    mkdirSync(unpacked)
    spawnSync('tar', ['-xzf', x64.bundle, '-C', unpacked])
    const release = join(unpacked, releaseName(x64.bundle))
    const t0 = performance.now()
    const inst = spawnSync(join(release, 'install.sh'), ['--root', tree], { encoding: 'utf8', timeout: 600_000 })
    const installS = (performance.now() - t0) / 1000
    if (inst.status !== 0) throw new Error(`install.sh --root failed:\n${inst.stdout}${inst.stderr}`)
    const current = join(tree, 'opt', 'steppelink', 'current')
    const parts = {
      runtime: bytesUnder(join(current, 'runtime')),
      modules: bytesUnder(join(current, 'app', 'node_modules')),
      program: bytesUnder(join(current, 'app', 'dist')),
    }
    const installed = bytesUnder(join(tree, 'opt')) + bytesUnder(join(tree, 'etc', 'steppelink')) + bytesUnder(join(tree, 'etc', 'systemd'))
    ctx.log(`installed in ${round(installS, 1)} s: ${mb(installed)} MB (runtime ${mb(parts.runtime)}, node_modules ${mb(parts.modules)}, program ${mb(parts.program)})`)
    out.push(
      metric({
        name: 'bundle.installed.x64',
        value: mb(installed),
        unit: 'MB',
        baseline: null,
        note: `/opt/steppelink (one release), /etc/steppelink, the unit; an upgrade keeps the release before as well; the data directory is the store's (limits.maxStoreMB)`,
      }),
    )
    out.push(metric({ name: 'bundle.installed.runtime', value: mb(parts.runtime), unit: 'MB', baseline: null }))
    out.push(metric({ name: 'bundle.installed.node_modules', value: mb(parts.modules), unit: 'MB', baseline: null }))
    out.push(metric({ name: 'bundle.installed.program', value: mb(parts.program), unit: 'MB', baseline: null }))
    out.push(
      metric({ name: 'bundle.install.s', value: round(installS, 1), unit: 's', baseline: null, note: 'install.sh --root into a fresh tree: manifest check (sha256 of every file), copy, selftest' }),
    )

    // The gateway on the bundled runtime against this machine's Node.js, both with the service's flags.
    const bundledNode = join(current, 'runtime', 'bin', 'node')
    const bundledMain = join(current, 'app', 'dist', 'cli', 'main.js')
    const runtime = readFileSync(join(current, 'bundle.json'), 'utf8').match(/"node":\s*"([^"]+)"/)?.[1] ?? '?'
    const idleS = ctx.quick ? 20 : 60
    const households: Household[] = []
    try {
      ctx.log(`two households: the gateway on the bundled Node.js ${runtime} and on this machine's ${process.version}, both ${SERVICE_FLAGS.join(' ')}`)
      const [bundled, here] = await Promise.all([
        startHousehold({ dir: join(ctx.dir, 'bundled'), ack: 'auto', launcher: [bundledNode, ...SERVICE_FLAGS, bundledMain] }),
        startHousehold({ dir: join(ctx.dir, 'here'), ack: 'auto', nodeFlags: SERVICE_FLAGS }),
      ])
      households.push(bundled.household, here.household)
      const ready = { bundled: [] as number[], here: [] as number[] }
      for (let i = 0; i < (ctx.quick ? 2 : 5); i++) {
        const b = await bundled.household.restartGateway()
        ready.bundled.push(b.readyAt - b.spawnedAt)
        const h = await here.household.restartGateway()
        ready.here.push(h.readyAt - h.spawnedAt)
      }
      await Promise.all(households.map((h) => h.waitForSessions()))
      await sleep(5000)
      const watches = households.map((h) => watchProc(h.gateway!.child.pid!, 250))
      await sleep(idleS * 1000)
      const [rssBundled, rssHere] = watches.map((w) => mean(w.stop().map((s) => s.rssKB)) / 1024)
      ctx.log(`idle RSS: bundled ${round(rssBundled!, 1)} MB, this machine's ${round(rssHere!, 1)} MB; ready ms: bundled ${ready.bundled.join(' ')}, here ${ready.here.join(' ')}`)
      out.push(
        metric({
          name: 'bundle.gateway.rss.idle',
          value: round(rssBundled!, 1),
          unit: 'MB',
          baseline: round(rssHere!, 1),
          baselineName: `this machine's Node.js ${process.version}`,
          goal: 'under 96 MB (MemoryHigh=160M leaves room)',
          meets: (v) => v < 96,
          note: `Node.js ${runtime} from the bundle, ${SERVICE_FLAGS.join(' ')}, a household at normal load, mean over ${idleS} s`,
        }),
      )
      out.push(
        metric({
          name: 'bundle.gateway.ready.p50',
          value: percentile(ready.bundled, 50),
          unit: 'ms',
          baseline: percentile(ready.here, 50),
          baselineName: `this machine's Node.js ${process.version}`,
          note: 'restart on an existing store, spawn to "gateway ready"',
        }),
      )
    } finally {
      await Promise.all(households.map((h) => h.close()))
    }
    return out
  },
}
