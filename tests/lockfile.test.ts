import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

// `npm ci` (CI systems, Dockerfiles, the board bundle) refuses a lock that is out of step
// with package.json; scripts/check-lock.mjs finds that before the tests run (pretest).
const root = join(import.meta.dirname, '..')
const check = (dir: string) => spawnSync(process.execPath, [join(root, 'scripts', 'check-lock.mjs'), dir], { encoding: 'utf8' })
const tmp = mkdtempSync(join(tmpdir(), 'steppelink-lock-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('package-lock.json', () => {
  it('is in step with package.json, optional platform packages included', () => {
    const r = check(root)
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  it('the check fails, naming the package, when an optional dependency is missing from the lock (the npm ci failure of issue 10)', () => {
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> }
    const platform = Object.keys(lock.packages).find((p) => p.startsWith('node_modules/@cbor-extract/'))!
    expect(platform).toBeDefined()
    delete lock.packages[platform]
    writeFileSync(join(tmp, 'package-lock.json'), JSON.stringify(lock))
    writeFileSync(join(tmp, 'package.json'), readFileSync(join(root, 'package.json')))
    const r = check(tmp)
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`needs ${platform.slice('node_modules/'.length)}@`)
    expect(r.stderr).toContain('npm install')
  })

  it('the check fails when package.json asks for a dependency the lock does not list', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    pkg.dependencies['left-pad'] = '^1.3.0'
    writeFileSync(join(tmp, 'package.json'), JSON.stringify(pkg))
    writeFileSync(join(tmp, 'package-lock.json'), readFileSync(join(root, 'package-lock.json')))
    const r = check(tmp)
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('left-pad@^1.3.0')
  })
})
