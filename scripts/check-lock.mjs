#!/usr/bin/env node
// Checks that package-lock.json can install what package.json asks for, the way `npm ci`
// needs it: `npm ci` refuses to run when the lock and package.json disagree, and CI
// systems, Dockerfiles and the board bundle all use `npm ci`. It once failed on a clean
// clone because the lock lacked the @cbor-extract/* platform packages that cbor-extract
// names as optional dependencies. This check finds that kind of drift in a second, offline,
// before the tests run: every dependency of every locked package (optional ones too) must
// resolve to a locked package, the way Node resolves it (the nearest node_modules up the
// tree), with the exact version where an exact version is asked for, and the lock's root
// must list what package.json lists.
//
// Usage: node scripts/check-lock.mjs [DIR]   (exit 0: in sync; 1: what is wrong, and the fix)
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.argv[2] ?? process.cwd()
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8'))
const packages = lock.packages ?? {}
const problems = []

const root = packages[''] ?? {}
for (const field of ['dependencies', 'devDependencies', 'optionalDependencies']) {
  const want = pkg[field] ?? {}
  const have = root[field] ?? {}
  for (const [name, range] of Object.entries(want)) {
    if (have[name] !== range) problems.push(`package.json ${field} has ${name}@${range}, the lock's root has ${have[name] ?? 'nothing'}`)
  }
  for (const name of Object.keys(have)) if (!(name in want)) problems.push(`the lock's root ${field} has ${name}, package.json does not`)
}

/** The locked package a dependency `name` of the package at `from` resolves to, as Node finds it. */
function resolve(from, name) {
  let base = from
  for (;;) {
    const at = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`
    if (packages[at]) return at
    if (base === '') return null
    const cut = base.lastIndexOf('/node_modules/')
    base = cut === -1 ? '' : base.slice(0, cut)
  }
}

for (const [path, entry] of Object.entries(packages)) {
  if (entry.link) continue
  // The root's dev dependencies are installed; a dependency's are not.
  const fields = path === '' ? ['dependencies', 'devDependencies', 'optionalDependencies'] : ['dependencies', 'optionalDependencies']
  for (const field of fields) {
    for (const [name, range] of Object.entries(entry[field] ?? {})) {
      const at = resolve(path, name)
      const who = path === '' ? 'package.json' : path.replace(/^.*node_modules\//, '')
      if (at === null) {
        problems.push(`${who} ${field === 'optionalDependencies' ? 'optionally ' : ''}needs ${name}@${range}, which the lock does not have`)
        continue
      }
      const version = packages[at].version
      const exact = /^\d+\.\d+\.\d+(-[\w.]+)?$/.test(range)
      if (exact && version !== range && !pkg.overrides?.[name]) problems.push(`${who} needs ${name}@${range} exactly; the lock has ${version}`)
    }
  }
}

if (problems.length > 0) {
  console.error(`package-lock.json is out of step with package.json; \`npm ci\` would fail:\n  ${problems.join('\n  ')}`)
  console.error('Fix: run `npm install` and commit package-lock.json. If the registry lacks a package the lock needs, pin a version it has (package.json "overrides").')
  process.exit(1)
}
console.log(`package-lock.json: ${Object.keys(packages).length - 1} packages, in step with package.json`)
