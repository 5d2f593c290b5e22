#!/usr/bin/env node
/**
 * `npm run bundle -- --arch arm64|x64`: one file with everything a board needs to run the
 * gateway, installed with no network, no compiler and no Node.js on the board.
 *
 *   steppelink-<version>-linux-<arch>.tar.gz      (and .sha256 beside it)
 *     steppelink-<version>-linux-<arch>/
 *       install.sh            installs, upgrades, rolls back, uninstalls (deploy/install.sh)
 *       bundle.json           what is inside: version, arch, Node.js version, store layout, commit
 *       MANIFEST.sha256       every other file's SHA-256 (`sha256sum -c` reads it; install.sh does)
 *       bin/steppelink        the command: runs runtime/bin/node on app/dist/cli/main.js
 *       runtime/bin/node      Node.js LTS for that architecture, from the npm registry's
 *                             node-linux-<arch> package (the official build, integrity-checked by npm)
 *       app/                  the compiled program and its production node_modules, every native
 *                             module built or fetched for that runtime and architecture
 *       deploy/               the unit, the config template, the journald drop-in, the udev example
 *
 * Native modules, and where each comes from (no download from GitHub: boards and this build
 * machine reach only the npm and Debian registries):
 *   better-sqlite3            compiled here with node-gyp against the bundled runtime's own headers
 *                             (the npm package ships include/node); for arm64 with Debian's
 *                             cross compiler g++-aarch64-linux-gnu. Cached per version and arch.
 *   @serialport/bindings-cpp  ships prebuilds for linux-x64 and linux-arm64 (N-API) in its package;
 *                             the others are removed.
 *   @mongodb-js/zstd 1.2.x    an npm package per platform (@mongodb-js/zstd-linux-<arch>-gnu),
 *   cbor-extract              likewise (@cbor-extract/cbor-extract-linux-<arch>): `npm ci --cpu`
 *                             installs the one for the target, not this machine's.
 * Every .node file left is then checked to be an ELF object for the target machine, and the
 * bundle's imports to resolve inside it.
 *
 * Needs: what `npm run build` needs; python3, make and g++ (node-gyp); for arm64 also
 * `apt-get install -y g++-aarch64-linux-gnu`. The npm registry (or npm's cache) for the
 * runtime and the modules.
 */

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, lstatSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { BundleError, compileSqlite, elfMachine, fail, fetchRuntime, have, log, run, TARGETS } from './native.mjs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const WHY_NOT_ARM32 = `32-bit ARM (armv7l: a Pi 2, or a Pi 3/4/Zero 2 W on a 32-bit OS) has no bundle:
  - @mongodb-js/zstd 1.2 has no 32-bit ARM binary (the gateway would send its batches uncompressed,
    about ten times larger on a metered link; Node.js 22.15+ has zstd of its own, which would do);
  - Node.js 24 has no official 32-bit ARM build on the npm registry beyond armv7l, and none is
    tested here; better-sqlite3 would need g++-arm-linux-gnueabihf and a runtime to build against.
Put a 64-bit OS on the board (Raspberry Pi OS Lite 64-bit runs on a Pi 3, 4, 5 and Zero 2 W).`

const USAGE = `Usage: npm run bundle -- --arch arm64|x64 [--out DIR] [--node VERSION] [--cache DIR]

Makes steppelink-<version>-linux-<arch>.tar.gz: the gateway, a Node.js runtime and every native
module for that architecture, and the installer. See README.md, "Deploying on a board".

  --arch arm64|x64   the board's architecture (uname -m: aarch64 or x86_64)
  --out DIR          where the bundle goes (default: build/)
  --node VERSION     the Node.js runtime (default: package.json config.bundleNode)
  --cache DIR        downloads and compiled modules kept between builds
                     (default: node_modules/.cache/steppelink-bundle)
  --strip            strip the runtime's debug symbols (smaller; no longer byte-identical to the release)`

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

/** Every file under dir (no directories), relative, sorted: the manifest's and the tar's order. */
function filesUnder(dir) {
  const out = []
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else out.push(relative(dir, p))
    }
  }
  walk(dir)
  return out.sort()
}

function duBytes(dir) {
  let total = 0
  for (const f of filesUnder(dir)) total += lstatSync(join(dir, f)).size
  return total
}

/** Every relative import of the program must resolve inside the bundle (a file left out of dist would fail only on the board). */
function checkImports(appDir) {
  const missing = []
  const dist = join(appDir, 'dist')
  for (const f of filesUnder(dist).filter((f) => f.endsWith('.js'))) {
    const text = readFileSync(join(dist, f), 'utf8')
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = resolve(dirname(join(dist, f)), m[1])
      if (!existsSync(target)) missing.push(`${f} imports ${m[1]}`)
    }
  }
  if (missing.length > 0) fail(`the bundle's program imports files it does not hold:\n  ${missing.slice(0, 20).join('\n  ')}`)
}

function main() {
  let values
  try {
    ;({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        arch: { type: 'string' },
        out: { type: 'string' },
        node: { type: 'string' },
        cache: { type: 'string' },
        strip: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (err) {
    process.stderr.write(`bundle: ${err.message}\n\n${USAGE}\n`)
    return 2
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const arch = values.arch
  if (arch === 'arm' || arch === 'armv7l' || arch === 'armhf') fail(WHY_NOT_ARM32)
  if (arch === 'aarch64') fail(`--arch aarch64 is called arm64 here (Node.js's name): npm run bundle -- --arch arm64`)
  if (arch === 'x86_64' || arch === 'amd64') fail(`--arch ${arch} is called x64 here (Node.js's name): npm run bundle -- --arch x64`)
  if (!(arch in TARGETS)) fail(`--arch must be arm64 or x64, got ${arch === undefined ? 'nothing' : `'${arch}'`}\n\n${USAGE}`)
  const target = TARGETS[arch]
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  const nodeVersion = (values.node ?? pkg.config?.bundleNode ?? '').replace(/^v/, '')
  if (!/^\d+\.\d+\.\d+$/.test(nodeVersion)) fail(`--node must be a full version such as 24.22.3, got '${nodeVersion}'`)
  const cache = resolve(values.cache ?? join(ROOT, 'node_modules', '.cache', 'steppelink-bundle'))
  const outDir = resolve(values.out ?? join(ROOT, 'build'))
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!existsSync(tsc)) fail(`no TypeScript compiler in node_modules: run 'npm ci' first`)
  for (const f of ['install.sh', 'gateway.toml', 'systemd/steppelink-gateway.service']) {
    if (!existsSync(join(ROOT, 'deploy', f))) fail(`deploy/${f} is missing: the bundle needs it`)
  }
  const started = Date.now()
  const name = `steppelink-${pkg.version}-linux-${arch}`
  const staging = join(outDir, 'staging', name)
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })

  // The runtime.
  const rt = fetchRuntime(cache, arch, nodeVersion)
  mkdirSync(join(staging, 'runtime', 'bin'), { recursive: true })
  copyFileSync(join(rt.dir, 'bin', 'node'), join(staging, 'runtime', 'bin', 'node'))
  chmodSync(join(staging, 'runtime', 'bin', 'node'), 0o755)
  if (values.strip) {
    if (!have(target.strip)) fail(`--strip needs ${target.strip}`)
    run(target.strip, ['--strip-debug', join(staging, 'runtime', 'bin', 'node')])
  }
  for (const f of ['LICENSE', 'README.md']) if (existsSync(join(rt.dir, f))) copyFileSync(join(rt.dir, f), join(staging, 'runtime', f))
  if (elfMachine(join(staging, 'runtime', 'bin', 'node')) !== target.elf) fail(`node-linux-${arch}@${nodeVersion} is not a linux-${arch} program`)

  // The program, compiled afresh from the sources into the build's own directory: the tree's
  // dist/ may hold files of modules since removed (tsc never deletes), which would ship.
  // What `npm pack` would ship (package.json "files"), without tests, bench, loop and tools.
  const app = join(staging, 'app')
  mkdirSync(app, { recursive: true })
  const compiled = join(outDir, 'staging', '.dist')
  rmSync(compiled, { recursive: true, force: true })
  log('compiling the program (tsc)')
  run(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json'), '--outDir', compiled, '--sourceMap', 'false', '--declaration', 'false', '--declarationMap', 'false'])
  cpSync(compiled, join(app, 'dist'), {
    recursive: true,
    filter: (src) => {
      const rel = relative(compiled, src)
      const top = rel.split(sep)[0]
      if (['bench', 'loop', 'tools'].includes(top)) return false
      return !/\.(test|suite)\.js$/.test(rel)
    },
  })
  for (const f of ['README.md', 'SECURITY.md']) copyFileSync(join(ROOT, f), join(app, f))
  mkdirSync(join(app, 'protocol'), { recursive: true })
  for (const f of readdirSync(join(ROOT, 'protocol')).filter((f) => f.endsWith('.md'))) copyFileSync(join(ROOT, 'protocol', f), join(app, 'protocol', f))
  cpSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'))
  // npm ci wants package.json as the lock knows it (devDependencies included); --omit=dev leaves them out.
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ ...pkg, scripts: {} }, null, 2)}\n`)

  log(`installing production modules for linux-${arch} (npm ci --omit=dev --cpu=${arch})`)
  // --ignore-scripts: nothing compiles for this machine; the native modules are handled below.
  // --cpu/--os/--libc: the optional per-platform packages (zstd, cbor-extract) of the board, not of this machine.
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', `--cpu=${arch}`, '--os=linux', '--libc=glibc'], { cwd: app })
  const modules = join(app, 'node_modules')
  rmSync(join(modules, '.bin'), { recursive: true, force: true })
  rmSync(join(modules, '.package-lock.json'), { force: true })

  compileSqlite(cache, join(modules, 'better-sqlite3'), target, arch, rt, nodeVersion)

  // serialport's prebuilds: only this target's.
  const prebuilds = join(modules, '@serialport', 'bindings-cpp', 'prebuilds')
  if (!existsSync(join(prebuilds, `linux-${arch}`))) fail(`@serialport/bindings-cpp has no prebuild for linux-${arch}`)
  for (const d of readdirSync(prebuilds)) if (d !== `linux-${arch}`) rmSync(join(prebuilds, d), { recursive: true })
  // Its C++ sources and cbor-extract's are for building, which never happens on the board.
  for (const d of ['@serialport/bindings-cpp/src', 'cbor-extract/src', 'cbor-x/node_modules/cbor-extract/src']) rmSync(join(modules, d), { recursive: true, force: true })

  for (const p of [`@mongodb-js/zstd-linux-${arch}-gnu`, `@cbor-extract/cbor-extract-linux-${arch}`]) {
    const found = [join(modules, p), join(modules, 'cbor-x', 'node_modules', p)].some((d) => existsSync(d))
    if (!found) fail(`${p} was not installed: npm ci --cpu=${arch} should have (is package-lock.json complete?)`)
  }
  const foreign = filesUnder(modules)
    .filter((f) => f.endsWith('.node'))
    .filter((f) => elfMachine(join(modules, f)) !== target.elf)
  if (foreign.length > 0) fail(`native objects not built for linux-${arch}:\n  ${foreign.join('\n  ')}`)
  // Rewritten after npm ci: what the board sees, without the build's scripts and tools.
  const { devDependencies, scripts, allowScripts, ...shipped } = pkg
  writeFileSync(join(app, 'package.json'), `${JSON.stringify(shipped, null, 2)}\n`)
  rmSync(join(app, 'package-lock.json'))
  checkImports(app)

  // The command, the installer, the service files.
  mkdirSync(join(staging, 'bin'), { recursive: true })
  writeFileSync(
    join(staging, 'bin', 'steppelink'),
    [
      '#!/bin/sh',
      '# steppelink, from the bundle: the bundled Node.js runtime on the bundled program.',
      '# Found through the /usr/local/bin/steppelink link, so it resolves its own place first.',
      'here=$(dirname "$(readlink -f "$0")")/..',
      'exec "$here/runtime/bin/node" "$here/app/dist/cli/main.js" "$@"',
      '',
    ].join('\n'),
  )
  chmodSync(join(staging, 'bin', 'steppelink'), 0o755)
  cpSync(join(ROOT, 'deploy'), join(staging, 'deploy'), { recursive: true, filter: (src) => !relative(join(ROOT, 'deploy'), src).startsWith('mosquitto') })
  copyFileSync(join(ROOT, 'deploy', 'install.sh'), join(staging, 'install.sh'))
  chmodSync(join(staging, 'install.sh'), 0o755)

  const commit = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() || null
  const dirty = commit !== null && spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim() !== ''
  // The commit's time, not the clock: the same commit bundles to the same bundle.json.
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim()) || Math.floor(Date.now() / 1000)
  const storeLayout = Number(/SCHEMA_VERSION\s*=\s*(\d+)/.exec(readFileSync(join(compiled, 'gateway', 'sqlite-db.js'), 'utf8'))?.[1])
  const info = {
    name: 'steppelink',
    version: pkg.version,
    arch,
    node: `v${nodeVersion}`,
    nodeIntegrity: rt.integrity,
    storeLayout,
    builtAt: new Date(epoch * 1000).toISOString(),
    commit: commit && (dirty ? `${commit}-dirty` : commit),
  }
  writeFileSync(join(staging, 'bundle.json'), `${JSON.stringify(info, null, 2)}\n`)

  const files = filesUnder(staging)
  writeFileSync(join(staging, 'MANIFEST.sha256'), files.map((f) => `${sha256(join(staging, f))}  ${f}\n`).join(''))

  // The host can run an x64 bundle: run its own self-check before calling it done.
  if (arch === 'x64' && process.arch === 'x64') {
    const check = spawnSync(join(staging, 'bin', 'steppelink'), ['selftest'], { encoding: 'utf8' })
    if (check.status !== 0) fail(`the bundle's selftest failed:\n${check.stdout}${check.stderr}`)
    log('selftest of the bundle on this machine: whole')
  }

  const tarball = join(outDir, `${name}.tar.gz`)
  // Sorted, owned by root, dated by the commit: the same input makes the same archive.
  run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`, '-C', join(outDir, 'staging'), '-cf', `${tarball}.tar`, name])
  run('sh', ['-c', `gzip -9 -n -c "${tarball}.tar" > "${tarball}" && rm "${tarball}.tar"`])
  writeFileSync(`${tarball}.sha256`, `${sha256(tarball)}  ${name}.tar.gz\n`)
  const size = statSync(tarball).size
  const unpacked = duBytes(staging)
  rmSync(join(outDir, 'staging'), { recursive: true, force: true })
  log(`${tarball}: ${(size / 1e6).toFixed(1)} MB (${(unpacked / 1e6).toFixed(1)} MB unpacked, ${files.length + 1} files), Node.js v${nodeVersion}, in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  process.stdout.write(`${JSON.stringify({ bundle: tarball, bytes: size, unpackedBytes: unpacked, files: files.length + 1, ...info })}\n`)
  return 0
}

try {
  process.exitCode = main()
} catch (err) {
  if (!(err instanceof BundleError)) throw err
  process.stderr.write(`bundle: ${err.message}\n`)
  process.exitCode = 1
}
