/**
 * What the board bundle (scripts/bundle.mjs) and the runs of the unit tests on other
 * Node.js versions (scripts/test-node.mjs) share: the official runtime for an architecture
 * from the npm registry, and better-sqlite3 compiled against that runtime's own headers.
 * Both cache what they fetch and compile (node_modules/.cache/steppelink-bundle by default):
 * the runtime is about 50 MB, the compile 70-90 s.
 */

import { spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** Targets: Node's arch name, the ELF machine number of its objects, `uname -m` on such a board, the cross tools. */
export const TARGETS = {
  x64: { elf: 0x3e, uname: 'x86_64', cc: 'gcc', cxx: 'g++', strip: 'strip' },
  arm64: { elf: 0xb7, uname: 'aarch64', cc: 'aarch64-linux-gnu-gcc', cxx: 'aarch64-linux-gnu-g++', strip: 'aarch64-linux-gnu-strip' },
}

export class BundleError extends Error {}

export function fail(message) {
  throw new BundleError(message)
}

export function log(message) {
  process.stderr.write(`bundle: ${message}\n`)
}

export function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options })
  if (r.error) fail(`${cmd} could not run: ${r.error.message}`)
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-25).join('\n')
    fail(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${tail}`)
  }
  return r.stdout
}

export function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/** The ELF machine of an object file (e_machine, little-endian at offset 18), or null if not ELF. */
export function elfMachine(path) {
  const fd = openSync(path, 'r')
  try {
    const head = Buffer.alloc(20)
    readSync(fd, head, 0, 20, 0)
    if (head.readUInt32BE(0) !== 0x7f454c46) return null
    return head.readUInt16LE(18)
  } finally {
    closeSync(fd)
  }
}

/** npm's own node-gyp: npm ships one, so the build machine needs no global install. */
export function nodeGyp() {
  const candidates = []
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  const npmPath = spawnSync('sh', ['-c', 'readlink -f "$(command -v npm)"'], { encoding: 'utf8' }).stdout.trim()
  if (npmPath) candidates.push(join(dirname(npmPath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
  const found = candidates.find((c) => existsSync(c))
  if (!found) fail(`node-gyp not found beside npm (looked in ${candidates.join(', ')}): install npm 10 or later, or 'npm install -g node-gyp'`)
  return found
}

/** The official runtime for the target, from the registry's node-linux-<arch> package, unpacked once into the cache. */
export function fetchRuntime(cache, arch, version) {
  const name = `node-linux-${arch}`
  const dir = join(cache, `${name}-${version}`)
  if (existsSync(join(dir, 'bin', 'node'))) return { dir, integrity: readFileSync(join(dir, '.integrity'), 'utf8').trim() }
  log(`fetching ${name}@${version} from the npm registry (about 50 MB, once)`)
  mkdirSync(cache, { recursive: true })
  // npm pack checks the tarball against the registry's integrity hash before it writes it.
  const packed = JSON.parse(run('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', cache], { cwd: cache }))[0]
  const tgz = join(cache, packed.filename)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  run('tar', ['-xzf', tgz, '-C', dir, '--strip-components=1'])
  rmSync(tgz)
  if (!existsSync(join(dir, 'bin', 'node')) || !existsSync(join(dir, 'include', 'node', 'node.h'))) {
    fail(`${name}@${version} has no bin/node or include/node: not the official build this script expects`)
  }
  writeFileSync(join(dir, '.integrity'), `${packed.integrity}\n`)
  return { dir, integrity: packed.integrity }
}

/** better-sqlite3 compiled for the bundled runtime, cached per module version, Node.js version and arch. */
export function compileSqlite(cache, moduleDir, target, arch, rt, nodeVersion) {
  const version = JSON.parse(readFileSync(join(moduleDir, 'package.json'), 'utf8')).version
  const cached = join(cache, `better-sqlite3-${version}-node-${nodeVersion}-linux-${arch}.node`)
  const out = join(moduleDir, 'build', 'Release', 'better_sqlite3.node')
  if (!existsSync(cached)) {
    for (const tool of [target.cc, target.cxx, 'make', 'python3']) {
      if (!have(tool)) {
        const pkg = tool.startsWith('aarch64') ? 'g++-aarch64-linux-gnu' : tool === 'python3' ? 'python3' : tool === 'make' ? 'make' : 'g++'
        fail(`${tool} is needed to compile better-sqlite3 for linux-${arch}: apt-get install -y ${pkg}`)
      }
    }
    log(`compiling better-sqlite3 ${version} for Node.js ${nodeVersion} linux-${arch} (about 70-90 s, once)`)
    // Without the npm_config_* of `npm run`: node-gyp takes them as its options, and a machine
    // whose npmrc says nodedir=/usr (to build against the system's headers) would get a module
    // for the build machine's Node.js instead of the bundled one.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_/i.test(k)))
    const env = { ...clean, CC: target.cc, CXX: target.cxx, LINK: target.cxx, AR: arch === 'x64' ? 'ar' : 'aarch64-linux-gnu-ar' }
    const jobs = String(Math.max(1, Number(run('nproc', []).trim()) || 1))
    run(process.execPath, [nodeGyp(), 'rebuild', '--release', `--arch=${arch}`, `--nodedir=${rt.dir}`, '-j', jobs], { cwd: moduleDir, env })
    if (elfMachine(out) !== target.elf) fail(`better-sqlite3 was compiled, but not for linux-${arch} (ELF machine ${elfMachine(out)})`)
    copyFileSync(out, `${cached}.tmp`)
    run('mv', [`${cached}.tmp`, cached])
  } else {
    log(`better-sqlite3 ${version} for Node.js ${nodeVersion} linux-${arch}: from the cache`)
  }
  // Only the binding stays: the SQLite sources (deps/, 9 MB) and the object files are the build's, not the board's.
  rmSync(join(moduleDir, 'build'), { recursive: true, force: true })
  rmSync(join(moduleDir, 'deps'), { recursive: true, force: true })
  rmSync(join(moduleDir, 'src'), { recursive: true, force: true })
  mkdirSync(dirname(out), { recursive: true })
  copyFileSync(cached, out)
}
