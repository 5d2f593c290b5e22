/**
 * The board bundle for the tests and the benchmark (issue 14): built by scripts/bundle.mjs,
 * and a system tree for `install.sh --root` to install it into.
 */

import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..', '..')

/** What scripts/bundle.mjs prints last: the file and what is in it. */
export interface BuiltBundle {
  bundle: string
  bytes: number
  unpackedBytes: number
  files: number
  version: string
  arch: string
  node: string
}

/** Builds the bundle for `arch` into `out` (the runtime and better-sqlite3 come from the cache after the first build). */
export function buildBundle(arch: 'x64' | 'arm64', out: string, timeoutMs = 900_000): BuiltBundle {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle.mjs'), '--arch', arch, '--out', out], { encoding: 'utf8', timeout: timeoutMs })
  if (r.status !== 0) throw new Error(`npm run bundle -- --arch ${arch} failed:\n${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as BuiltBundle
}

/** The directory a bundle unpacks to: its file name without .tar.gz. */
export const releaseName = (tarball: string) => basename(tarball, '.tar.gz')

/**
 * A system tree to install into with `install.sh --root`: its own account files, which
 * useradd --prefix reads and writes (and login.defs where this machine has one).
 */
export function systemTree(root: string): string {
  mkdirSync(join(root, 'etc'), { recursive: true })
  for (const f of ['passwd', 'group', 'shadow', 'gshadow']) copyFileSync(join('/etc', f), join(root, 'etc', f))
  if (existsSync('/etc/login.defs')) copyFileSync('/etc/login.defs', join(root, 'etc', 'login.defs'))
  return root
}
