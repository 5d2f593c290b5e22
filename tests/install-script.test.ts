/**
 * The board installer, deploy/install.sh, run for real on a fake bundle into a temporary
 * root tree (`--root`): first install, upgrade, automatic and manual rollback (with and
 * without a migrated store), uninstall and purge, a reinstall of the same bundle, and
 * every refusal (a damaged bundle, a failing self-test, a 32-bit board, an old glibc),
 * each refusal proven to change nothing.
 *
 * The fakes, all small sh scripts written here:
 * - the bundle's `bin/steppelink`: only `selftest`. It fails when the file
 *   `selftest-fails-<release>` is in the control directory, and with `--data DIR` exits 3
 *   when DIR/gateway.db says `layout=N` with N above the bundle's storeLayout, which is the
 *   contract the installer relies on (STORE_NEWER); like SQLite reading a WAL store, it
 *   makes DIR/gateway.db-shm (as root: the installer gives it back to the gateway's user).
 * - `systemctl` (given as SYSTEMCTL, so that it is called even under --root): logs its
 *   arguments; `start` plays the gateway of the current release, which migrates the store
 *   to its layout and stores an event, and fails when `fail-start-<release>` is there;
 *   `is-active` fails when `fail-active-<release>` is there (the gateway died after READY).
 * - `journalctl`: one line. `uname` and `getconf`, where a test plays another board.
 *
 * The installer chowns to the steppelink user it makes in the tree (useradd --prefix), so
 * these tests run as root, as the installer does; the real /etc, /opt and services are
 * never touched (every run has --root, and the fake systemctl).
 */

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../gateway/config.js'
import { systemTree } from './helpers/bundle.js'

const REPO = join(import.meta.dirname, '..')
const DEPLOY = join(REPO, 'deploy')
const UNIT = 'steppelink-gateway'
const machine = spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim()
const ARCH = machine === 'aarch64' ? 'arm64' : 'x64'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

beforeAll(() => {
  // The installer makes a system user and chowns to it: it runs as root, and so must this.
  expect(process.getuid?.(), 'run these tests as root (the installer makes a system user and chowns to it; all of it inside a temporary --root tree)').toBe(0)
})

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `steppelink-install-${prefix}-`))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function writeScript(path: string, text: string): void {
  writeFileSync(path, text)
  chmodSync(path, 0o755)
}

// ------------------------------------------------------------------ the fakes

const FAKE_STEPPELINK = (release: string, layout: number) => `#!/bin/sh
# The bundle's wrapper, played: only selftest, its outcome set by the test.
echo "${release} $*" >> "$FAKE_CTL/steppelink.log"
[ "$1" = selftest ] || exit 0
if [ -f "$FAKE_CTL/selftest-fails-${release}" ]; then echo "selftest: cannot load better-sqlite3 (played)" >&2; exit 1; fi
if [ "\${2:-}" = --data ]; then
  # As SQLite does when it reads a store in WAL mode: it makes the shared-memory file.
  [ -e "$3/gateway.db-shm" ] || : > "$3/gateway.db-shm"
  stored=$(sed -n 's/^layout=//p' "$3/gateway.db")
  if [ "\${stored:-0}" -gt ${layout} ]; then echo "selftest: the store has layout $stored; ${release} opens ${layout} at most (STORE_NEWER)" >&2; exit 3; fi
fi
exit 0
`

const FAKE_SYSTEMCTL = `#!/bin/sh
# systemctl, played: logs its arguments; start runs the current release's "gateway".
echo "$*" >> "$FAKE_CTL/systemctl.log"
current=$(basename "$(readlink "$FAKE_ROOT/opt/steppelink/current")")
db=$FAKE_ROOT/var/lib/steppelink/gateway.db
case "$1 \${2:-}" in
  "start ${UNIT}")
    # The gateway opens the store: migrates it to its release's layout, and stores an event.
    if [ -f "$db" ]; then
      layout=$(sed -n 's/.*"storeLayout": *\\([0-9]*\\).*/\\1/p' "$FAKE_ROOT/opt/steppelink/current/bundle.json")
      sed -i "s/^layout=.*/layout=$layout/" "$db"
      echo "event stored by $current" >> "$db"
    fi
    if [ -f "$FAKE_CTL/fail-start-$current" ]; then echo inactive > "$FAKE_CTL/state"; echo "Job for ${UNIT}.service failed (played)" >&2; exit 1; fi
    echo active > "$FAKE_CTL/state" ;;
  "stop ${UNIT}") echo inactive > "$FAKE_CTL/state" ;;
  "is-active --quiet")
    if [ "$(cat "$FAKE_CTL/state" 2>/dev/null)" = active ] && [ ! -f "$FAKE_CTL/fail-active-$current" ]; then exit 0; fi
    exit 3 ;;
esac
exit 0
`

const FAKE_JOURNALCTL = `#!/bin/sh
echo "$*" >> "$FAKE_CTL/journalctl.log"
echo "fake journal: the gateway said why it stopped"
`

/** A board of another kind: \`uname -m\` says \`machine\`. */
const fakeUname = (m: string) => `#!/bin/sh
if [ "\${1:-}" = -m ]; then echo ${m}; else /bin/uname "$@"; fi
`

/** An older OS: glibc \`version\`. */
const fakeGetconf = (version: string) => `#!/bin/sh
if [ "\${1:-}" = GNU_LIBC_VERSION ]; then echo "glibc ${version}"; else /usr/bin/getconf "$@"; fi
`

interface Bundle {
  dir: string
  release: string
}

/** A bundle as the builder lays it out, with a played runtime and program. */
function makeBundle(version: string, opts: { layout?: number; unitComment?: string } = {}): Bundle {
  const release = `${version}-${ARCH}`
  const dir = join(tempDir('bundle'), `steppelink-${version}-linux-${ARCH}`)
  mkdirSync(join(dir, 'bin'), { recursive: true })
  mkdirSync(join(dir, 'runtime', 'bin'), { recursive: true })
  mkdirSync(join(dir, 'app', 'dist', 'cli'), { recursive: true })
  cpSync(DEPLOY, join(dir, 'deploy'), { recursive: true })
  if (opts.unitComment) writeFileSync(join(dir, 'deploy', 'systemd', `${UNIT}.service`), `# ${opts.unitComment}\n${readFileSync(join(DEPLOY, 'systemd', `${UNIT}.service`), 'utf8')}`)
  copyFileSync(join(DEPLOY, 'install.sh'), join(dir, 'install.sh'))
  chmodSync(join(dir, 'install.sh'), 0o755)
  writeFileSync(
    join(dir, 'bundle.json'),
    `${JSON.stringify({ name: 'steppelink', version, arch: ARCH, node: 'v24.22.3', storeLayout: opts.layout ?? 3, builtAt: '2026-12-03T00:00:00Z', commit: 'abc1234' }, null, 2)}\n`,
  )
  writeScript(join(dir, 'bin', 'steppelink'), FAKE_STEPPELINK(release, opts.layout ?? 3))
  writeScript(join(dir, 'runtime', 'bin', 'node'), '#!/bin/sh\necho "played node"\n')
  writeFileSync(join(dir, 'app', 'dist', 'cli', 'main.js'), `// steppelink ${version}\n`)
  writeFileSync(join(dir, 'app', 'README.md'), '# Steppelink\n')
  writeManifest(dir)
  return { dir, release }
}

/** MANIFEST.sha256 as the builder makes it: `sha256sum` of every file but itself. */
function writeManifest(dir: string): void {
  const made = spawnSync('sh', ['-c', "find . -type f ! -name MANIFEST.sha256 | sed 's,^\\./,,' | LC_ALL=C sort | xargs sha256sum > MANIFEST.sha256"], { cwd: dir, encoding: 'utf8' })
  expect(made.status, made.stderr).toBe(0)
}

/** A system tree to install into: its own account files (with dialout). */
function makeRoot(): string {
  const root = systemTree(tempDir('root'))
  expect(readFileSync(join(root, 'etc', 'group'), 'utf8')).toMatch(/^dialout:/m)
  return root
}

interface Rig {
  root: string
  ctl: string
  bin: string
  run: (bundleDir: string, args?: string[], opts?: { systemctl?: boolean; script?: string }) => { status: number | null; stdout: string; stderr: string }
  systemctlLog: () => string[]
  /** The state of the played service: the test can set it (a gateway already running). */
  setActive: (active: boolean) => void
}

function makeRig(): Rig {
  const root = makeRoot()
  const ctl = tempDir('ctl')
  const bin = join(ctl, 'bin')
  mkdirSync(bin)
  writeScript(join(bin, 'systemctl'), FAKE_SYSTEMCTL)
  writeScript(join(bin, 'journalctl'), FAKE_JOURNALCTL)
  return {
    root,
    ctl,
    bin,
    run: (bundleDir, args = [], opts = {}) => {
      const env: NodeJS.ProcessEnv = {
        PATH: `${bin}:${process.env.PATH}`,
        LC_ALL: 'C',
        FAKE_CTL: ctl,
        FAKE_ROOT: root,
        STEPPELINK_SETTLE_SECONDS: '0',
        JOURNALCTL: join(bin, 'journalctl'),
      }
      if (opts.systemctl !== false) env.SYSTEMCTL = join(bin, 'systemctl')
      const r = spawnSync(opts.script ?? join(bundleDir, 'install.sh'), ['--root', root, ...args], { env, encoding: 'utf8', timeout: 60_000 })
      return { status: r.status, stdout: r.stdout, stderr: r.stderr }
    },
    systemctlLog: () => (existsSync(join(ctl, 'systemctl.log')) ? readFileSync(join(ctl, 'systemctl.log'), 'utf8').trim().split('\n') : []),
    setActive: (active) => writeFileSync(join(ctl, 'state'), active ? 'active\n' : 'inactive\n'),
  }
}

/** Every file, directory and link under `dir`: type, mode, owner, content or target. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    const p = join(dir, rel)
    const st = lstatSync(p)
    const head = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`
    if (st.isSymbolicLink()) out[rel] = `link -> ${readlinkSync(p)}`
    else if (st.isDirectory()) {
      out[rel] = `dir ${head}`
      for (const e of readdirSync(p)) walk(join(rel, e))
    } else out[rel] = `file ${head} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`
  }
  walk('.')
  return out
}

const path = (rig: Rig, ...parts: string[]) => join(rig.root, ...parts)
const link = (rig: Rig, name: string) => readlinkSync(path(rig, 'opt', 'steppelink', name))
const modeOf = (p: string) => (statSync(p).mode & 0o777).toString(8)
const text = (p: string) => readFileSync(p, 'utf8')

/** The steppelink user of the tree, from its own etc/passwd. */
function userOf(rig: Rig): { uid: number; gid: number; home: string; shell: string } | null {
  const line = text(path(rig, 'etc', 'passwd'))
    .split('\n')
    .find((l) => l.startsWith('steppelink:'))
  if (!line) return null
  const f = line.split(':')
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! }
}

/** The technician's work: every CHANGE-ME filled in. */
const FILLED = (template: string) =>
  template
    .replace(/^id = "CHANGE-ME[^"]*"/m, 'id = "xlg-abag-0042"')
    .replace(/^brokers = \["CHANGE-ME[^"]*"\]/m, 'brokers = ["mqtts://110.example.cn:8883", "mqtts://backup.example.cn:8883"]')
    .replace(/^username = "CHANGE-ME[^"]*"/m, 'username = "xlg-abag-0042"')

/** A board installed with `version`, configured, and running with a store (layout 3) that holds an event. */
function installedAndRunning(rig: Rig, version = '0.1.0'): Bundle {
  const b = makeBundle(version)
  const r = rig.run(b.dir)
  expect(r.status, r.stderr).toBe(0)
  writeFileSync(path(rig, 'etc', 'steppelink', 'gateway.toml'), FILLED(text(join(DEPLOY, 'gateway.toml'))))
  const data = path(rig, 'var', 'lib', 'steppelink')
  writeFileSync(join(data, 'gateway.db'), 'layout=3\nevent: alarm from SL-T-0001\n')
  writeFileSync(join(data, 'gateway.db-wal'), 'wal: a committed alarm not yet checkpointed\n')
  writeFileSync(join(data, 'gateway.db-shm'), 'shm\n')
  const u = userOf(rig)!
  spawnSync('chown', [`${u.uid}:${u.gid}`, join(data, 'gateway.db'), join(data, 'gateway.db-wal'), join(data, 'gateway.db-shm')])
  rig.setActive(true)
  rmSync(join(rig.ctl, 'systemctl.log'), { force: true })
  return b
}

// ------------------------------------------------------------------ the config template

describe('deploy/gateway.toml, the config template', () => {
  const template = text(join(DEPLOY, 'gateway.toml'))

  it("loads with the gateway's own config loader once its CHANGE-ME values are filled in", () => {
    const filled = FILLED(template)
    expect(filled).not.toMatch(/^[^#\n]*CHANGE-ME/m)
    const r = loadConfig(['--config', '/etc/steppelink/gateway.toml'], {}, () => filled)
    expect(r.ok ? [] : r.errors).toEqual([])
    if (!r.ok) return
    expect(r.config.gateway.id).toBe('xlg-abag-0042')
    expect(r.config.data).toBe('/var/lib/steppelink')
    expect(r.config.platformKeys?.current).toBe('/etc/steppelink/platform.pub')
  })

  it('as shipped is refused by the gateway (it never runs under a made-up id) and has every key of the README', () => {
    const r = loadConfig(['--config', '/etc/steppelink/gateway.toml'], {}, () => template)
    expect(r.ok).toBe(false)
    const errors = r.ok ? '' : r.errors.join('\n')
    expect(errors).toMatch(/gateway\.id/)
    expect(errors).toMatch(/mqtt\.brokers/)
    // The same keys as the README's full config ("Options and defaults").
    const readme = text(join(REPO, 'README.md'))
    const block = readme.slice(readme.indexOf('```toml\n# /etc/steppelink/gateway.toml'))
    const readmeToml = block.slice(0, block.indexOf('\n```', 8))
    const keys = (toml: string) => [...toml.matchAll(/^#? ?(\w+) = /gm)].map((m) => m[1]).sort()
    const sections = (toml: string) => [...toml.matchAll(/^\[([\w.]+)\]/gm)].map((m) => m[1])
    expect(keys(template)).toEqual(keys(readmeToml))
    expect(sections(template)).toEqual(sections(readmeToml))
  })
})

// ------------------------------------------------------------------ install.sh

describe('deploy/install.sh', () => {
  it('--help says how to install, roll back and uninstall', () => {
    const r = spawnSync(join(DEPLOY, 'install.sh'), ['--help'], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^Usage: sudo \.\/install\.sh/)
    for (const flag of ['--rollback', '--uninstall', '--purge', '--root DIR', '--no-start', '--no-selftest']) expect(r.stdout).toContain(flag)
  })

  it('refuses to run as another user than root, saying how', () => {
    const b = makeBundle('0.1.0')
    chmodSync(dirname(b.dir), 0o755)
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', join(b.dir, 'install.sh'), '--no-start'], { encoding: 'utf8' })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/this must run as root/)
    expect(r.stderr).toMatch(/what to do: run it again with sudo: sudo .*install\.sh --no-start/)
  })

  it('a first install makes every file with its owner and mode, enables the gateway, and does not start it while the config is the template', () => {
    const rig = makeRig()
    const hostPasswd = text('/etc/passwd')
    const b = makeBundle('0.1.0')
    const r = rig.run(b.dir)
    expect(r.status, r.stderr).toBe(0)

    // The release, the links, the command.
    expect(link(rig, 'current')).toBe(`releases/${b.release}`)
    expect(existsSync(path(rig, 'opt', 'steppelink', 'previous'))).toBe(false)
    expect(text(path(rig, 'opt', 'steppelink', 'current', 'bundle.json'))).toBe(text(join(b.dir, 'bundle.json')))
    expect(lstatSync(path(rig, 'opt', 'steppelink', 'releases', b.release, 'bin', 'steppelink')).uid).toBe(0)
    expect(readlinkSync(path(rig, 'usr', 'local', 'bin', 'steppelink'))).toBe('/opt/steppelink/current/bin/steppelink')

    // The user: a system account without a login, in dialout, in the tree's files only.
    const u = userOf(rig)
    expect(u).not.toBeNull()
    expect(u!.home).toBe('/var/lib/steppelink')
    expect(u!.shell).toMatch(/nologin|false/)
    expect(text(path(rig, 'etc', 'group'))).toMatch(/^dialout:[^:]*:\d+:(.*,)?steppelink(,|$)/m)
    expect(text('/etc/passwd')).toBe(hostPasswd)

    // The config (the template), the data directory, the service files.
    const config = path(rig, 'etc', 'steppelink', 'gateway.toml')
    expect(text(config)).toBe(text(join(DEPLOY, 'gateway.toml')))
    expect([modeOf(config), statSync(config).uid, statSync(config).gid]).toEqual(['640', 0, u!.gid])
    expect([modeOf(path(rig, 'etc', 'steppelink')), statSync(path(rig, 'etc', 'steppelink')).gid]).toEqual(['750', u!.gid])
    const data = path(rig, 'var', 'lib', 'steppelink')
    expect([modeOf(data), statSync(data).uid, statSync(data).gid]).toEqual(['750', u!.uid, u!.gid])
    expect(text(path(rig, 'etc', 'systemd', 'system', `${UNIT}.service`))).toBe(text(join(DEPLOY, 'systemd', `${UNIT}.service`)))
    expect(text(path(rig, 'etc', 'systemd', 'journald.conf.d', 'steppelink.conf'))).toMatch(/^Storage=volatile$/m)
    expect(existsSync(path(rig, 'etc', 'udev', 'rules.d', '99-steppelink-terminal.rules.example'))).toBe(true)
    expect(existsSync(path(rig, 'etc', 'udev', 'rules.d', '99-steppelink-terminal.rules'))).toBe(false)
    for (const f of ['etc/systemd/system/steppelink-gateway.service', 'etc/systemd/journald.conf.d/steppelink.conf', 'etc/udev/rules.d/99-steppelink-terminal.rules.example']) {
      expect(modeOf(path(rig, f)), f).toBe('644')
    }

    // Enabled, journald restarted for its new drop-in, NOT started: the config is the template.
    const calls = rig.systemctlLog()
    expect(calls).toEqual(['daemon-reload', 'restart systemd-journald', `enable ${UNIT}`])
    expect(r.stdout).toMatch(/enabled but NOT started: .*still has CHANGE-ME values/)
    expect(r.stdout).toContain('sudo steppelink doctor')
    expect(r.stdout).toContain(`sudo systemctl start ${UNIT}`)
    expect(r.stdout).toMatch(/Restarting systemd-journald/)
  })

  it('installing the same bundle twice reinstalls in place and loses nothing', () => {
    const rig = makeRig()
    const b = installedAndRunning(rig)
    const before = snapshot(rig.root)
    const r = rig.run(b.dir)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/already current: installing it again in place/)
    expect(r.stdout).toMatch(/nothing had changed, the gateway runs on/)
    // Nothing changed at all: not the release, not the config, not the store, not a mode.
    expect(snapshot(rig.root)).toEqual(before)
    // The running gateway was not stopped, and journald not restarted again.
    expect(rig.systemctlLog()).toEqual(['daemon-reload', `enable ${UNIT}`, `is-active --quiet ${UNIT}`])

    // A damaged installed copy (an SD card) is replaced by a fresh one, the gateway restarted.
    writeFileSync(path(rig, 'opt', 'steppelink', 'current', 'app', 'dist', 'cli', 'main.js'), 'garbage')
    rmSync(join(rig.ctl, 'systemctl.log'))
    const again = rig.run(b.dir)
    expect(again.status, again.stderr).toBe(0)
    expect(text(path(rig, 'opt', 'steppelink', 'current', 'app', 'dist', 'cli', 'main.js'))).toBe('// steppelink 0.1.0\n')
    expect(rig.systemctlLog()).toEqual([`stop ${UNIT}`, 'daemon-reload', `enable ${UNIT}`, `start ${UNIT}`, `is-active --quiet ${UNIT}`, `is-active --quiet ${UNIT}`])
    expect(text(path(rig, 'etc', 'steppelink', 'gateway.toml'))).toBe(FILLED(text(join(DEPLOY, 'gateway.toml'))))
    expect(text(path(rig, 'var', 'lib', 'steppelink', 'gateway.db'))).toMatch(/^layout=3\nevent: alarm from SL-T-0001\n/)
    expect(readdirSync(path(rig, 'opt', 'steppelink', 'releases'))).toEqual([b.release])
  })

  it('running it again once the config is filled in starts the gateway', () => {
    const rig = makeRig()
    const b = makeBundle('0.1.0')
    expect(rig.run(b.dir).status).toBe(0)
    writeFileSync(path(rig, 'etc', 'steppelink', 'gateway.toml'), FILLED(text(join(DEPLOY, 'gateway.toml'))))
    rmSync(join(rig.ctl, 'systemctl.log'))
    const r = rig.run(b.dir)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/installed and the gateway runs/)
    expect(rig.systemctlLog()).toEqual(['daemon-reload', `enable ${UNIT}`, `is-active --quiet ${UNIT}`, `start ${UNIT}`, `is-active --quiet ${UNIT}`, `is-active --quiet ${UNIT}`])
  })

  it('installing the release before again (its files still there) stops the gateway and switches back, keeping the other as previous', () => {
    const rig = makeRig()
    const first = installedAndRunning(rig)
    const next = makeBundle('0.2.0')
    expect(rig.run(next.dir).status).toBe(0)
    rmSync(join(rig.ctl, 'systemctl.log'))
    const r = rig.run(first.dir)
    expect(r.status, r.stderr).toBe(0)
    expect(link(rig, 'current')).toBe(`releases/${first.release}`)
    expect(link(rig, 'previous')).toBe(`releases/${next.release}`)
    expect(rig.systemctlLog()).toEqual([`stop ${UNIT}`, 'daemon-reload', `enable ${UNIT}`, `start ${UNIT}`, `is-active --quiet ${UNIT}`, `is-active --quiet ${UNIT}`])
    expect(readdirSync(path(rig, 'var', 'lib', 'steppelink', 'pre-upgrade'))).toEqual([next.release])
  })

  it('a tampered file fails the manifest check, and nothing is changed', () => {
    const rig = makeRig()
    installedAndRunning(rig)
    const next = makeBundle('0.2.0')
    writeFileSync(join(next.dir, 'app', 'dist', 'cli', 'main.js'), '// changed after the manifest was made\n')
    const before = snapshot(rig.root)
    const r = rig.run(next.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/app\/dist\/cli\/main\.js: FAILED/)
    expect(r.stderr).toMatch(/do not match MANIFEST\.sha256.*nothing was changed/)
    expect(r.stderr).toMatch(/what to do: copy steppelink-0\.2\.0-linux-\w+\.tar\.gz to the board again/)
    expect(snapshot(rig.root)).toEqual(before)
    expect(rig.systemctlLog()).toEqual([])
  })

  it('a tampered file on a first install leaves the tree as it was', () => {
    const rig = makeRig()
    const b = makeBundle('0.1.0')
    writeFileSync(join(b.dir, 'bin', 'steppelink'), '#!/bin/sh\nexit 0\n')
    const before = snapshot(rig.root)
    const r = rig.run(b.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/bin\/steppelink: FAILED/)
    expect(snapshot(rig.root)).toEqual(before)
  })

  it('a failing self-test changes nothing and leaves no copy of the release', () => {
    const rig = makeRig()
    installedAndRunning(rig)
    const next = makeBundle('0.2.0')
    writeFileSync(join(rig.ctl, `selftest-fails-${next.release}`), '')
    const before = snapshot(rig.root)
    const r = rig.run(next.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/cannot load better-sqlite3 \(played\)/)
    expect(r.stderr).toMatch(/self-test of 0\.2\.0-\w+ failed \(exit status 1.*nothing installed was changed/)
    expect(snapshot(rig.root)).toEqual(before)
    expect(rig.systemctlLog()).toEqual([])
  })

  it('an upgrade keeps the config and the data, moves current and previous, copies the store to pre-upgrade/ and starts the gateway', () => {
    const rig = makeRig()
    const first = installedAndRunning(rig)
    const config = text(path(rig, 'etc', 'steppelink', 'gateway.toml'))
    // A technician made the config root-only (the gateway could not read it) and left the
    // password file readable by anyone.
    chmodSync(path(rig, 'etc', 'steppelink', 'gateway.toml'), 0o600)
    writeFileSync(path(rig, 'etc', 'steppelink', 'gateway.env'), 'STEPPELINK_MQTT_PASSWORD=secret\n', { mode: 0o644 })
    const data = path(rig, 'var', 'lib', 'steppelink')
    const store = text(join(data, 'gateway.db'))
    // No -shm: the self-test makes one, as root, while it reads the store.
    rmSync(join(data, 'gateway.db-shm'))
    const next = makeBundle('0.2.0', { layout: 4, unitComment: 'the unit of 0.2.0' })
    const r = rig.run(next.dir)
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/Upgrading Steppelink from 0\.1\.0-\w+ to 0\.2\.0-\w+/)
    expect(r.stdout).toMatch(/installed and the gateway runs/)

    expect(link(rig, 'current')).toBe(`releases/${next.release}`)
    expect(link(rig, 'previous')).toBe(`releases/${first.release}`)
    expect(text(path(rig, 'etc', 'steppelink', 'gateway.toml'))).toBe(config)
    expect([modeOf(path(rig, 'etc', 'steppelink', 'gateway.toml')), statSync(path(rig, 'etc', 'steppelink', 'gateway.toml')).gid]).toEqual(['640', userOf(rig)!.gid])
    expect(r.stdout).toMatch(/gateway\.toml to root:steppelink 0640 \(it was 0:\d+ 600\)/)
    expect(text(path(rig, 'etc', 'steppelink', 'gateway.env'))).toBe('STEPPELINK_MQTT_PASSWORD=secret\n')
    expect(modeOf(path(rig, 'etc', 'steppelink', 'gateway.env'))).toBe('600')
    expect(text(path(rig, 'etc', 'systemd', 'system', `${UNIT}.service`))).toMatch(/^# the unit of 0\.2\.0\n/)
    // The store as 0.1.0 left it, WAL included, owned by the gateway's user.
    const copy = join(data, 'pre-upgrade', first.release)
    expect(text(join(copy, 'gateway.db'))).toBe(store)
    expect(text(join(copy, 'gateway.db-wal'))).toBe(text(join(data, 'gateway.db-wal')))
    expect(statSync(join(copy, 'gateway.db')).uid).toBe(userOf(rig)!.uid)
    // The self-test read the live store as root; what it made there is the gateway's again.
    expect(statSync(join(data, 'gateway.db-shm')).uid).toBe(userOf(rig)!.uid)
    // The new gateway opened (and migrated) the live store.
    expect(text(join(data, 'gateway.db'))).toMatch(/^layout=4\n[\s\S]*event stored by 0\.2\.0/)
    // Stopped before the copy and the switch, started after, looked at twice.
    expect(rig.systemctlLog()).toEqual([`stop ${UNIT}`, 'daemon-reload', `enable ${UNIT}`, `start ${UNIT}`, `is-active --quiet ${UNIT}`, `is-active --quiet ${UNIT}`])

    // One more: the oldest release goes, and only the latest pre-upgrade copy stays.
    const third = makeBundle('0.3.0', { layout: 4 })
    const r3 = rig.run(third.dir)
    expect(r3.status, r3.stderr).toBe(0)
    expect(readdirSync(path(rig, 'opt', 'steppelink', 'releases')).sort()).toEqual([next.release, third.release])
    expect(readdirSync(join(data, 'pre-upgrade'))).toEqual([next.release])
    expect(link(rig, 'previous')).toBe(`releases/${next.release}`)
  })

  it('a release older than the store (a downgrade over a migrated store) is refused, and nothing is changed', () => {
    const rig = makeRig()
    installedAndRunning(rig)
    expect(rig.run(makeBundle('0.2.0', { layout: 4 }).dir).status).toBe(0)
    const older = makeBundle('0.1.5')
    const before = snapshot(rig.root)
    rmSync(join(rig.ctl, 'systemctl.log'))
    const r = rig.run(older.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/the store in .* was written by a newer release than 0\.1\.5-\w+, which cannot open it; nothing was changed/)
    expect(r.stderr).toMatch(/--rollback/)
    expect(snapshot(rig.root)).toEqual(before)
    expect(rig.systemctlLog()).toEqual([])
  })

  it('an upgrade whose gateway does not start is rolled back automatically', () => {
    const rig = makeRig()
    const first = installedAndRunning(rig)
    const next = makeBundle('0.2.0', { unitComment: 'the unit of 0.2.0' })
    writeFileSync(join(rig.ctl, `fail-start-${next.release}`), '')
    const r = rig.run(next.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/did not stay up after the upgrade to 0\.2\.0-\w+: going back to 0\.1\.0/)
    expect(r.stderr).toMatch(/fake journal: the gateway said why it stopped/)
    expect(r.stderr).toMatch(/the upgrade to 0\.2\.0-\w+ failed .*the gateway runs 0\.1\.0-\w+ again/)
    expect(link(rig, 'current')).toBe(`releases/${first.release}`)
    expect(link(rig, 'previous')).toBe(`releases/${next.release}`)
    // The unit is 0.1.0's again; the store (same layout) stays where it is.
    expect(text(path(rig, 'etc', 'systemd', 'system', `${UNIT}.service`))).toBe(text(join(DEPLOY, 'systemd', `${UNIT}.service`)))
    const data = path(rig, 'var', 'lib', 'steppelink')
    expect(readdirSync(data).filter((f) => f.startsWith('failed-upgrade'))).toEqual([])
    expect(text(join(data, 'gateway.db'))).toMatch(/^layout=3\nevent: alarm from SL-T-0001\n/)
    expect(text(join(rig.ctl, 'journalctl.log')).trim()).toBe(`-u ${UNIT} -n 30 --no-pager`)
    expect(rig.systemctlLog()).toEqual([
      `stop ${UNIT}`,
      'daemon-reload',
      `enable ${UNIT}`,
      `start ${UNIT}`,
      `stop ${UNIT}`,
      'daemon-reload',
      `start ${UNIT}`,
      `is-active --quiet ${UNIT}`,
      `is-active --quiet ${UNIT}`,
    ])
  })

  it('an upgrade whose gateway migrated the store and then died is rolled back to the store from before, the migrated one kept aside', () => {
    const rig = makeRig()
    const first = installedAndRunning(rig)
    const next = makeBundle('0.2.0', { layout: 4 })
    writeFileSync(join(rig.ctl, `fail-active-${next.release}`), '')
    const r = rig.run(next.dir)
    expect(r.status).toBe(1)
    expect(link(rig, 'current')).toBe(`releases/${first.release}`)
    const data = path(rig, 'var', 'lib', 'steppelink')
    const aside = join(data, `failed-upgrade-${next.release}`)
    // What 0.2.0 stored is aside, in its layout; the live store is the copy from before, and
    // 0.1.0 runs on it again.
    expect(text(join(aside, 'gateway.db'))).toMatch(/^layout=4\n[\s\S]*event stored by 0\.2\.0/)
    expect(existsSync(join(aside, 'gateway.db-wal'))).toBe(true)
    const live = text(join(data, 'gateway.db'))
    expect(live).toMatch(/^layout=3\nevent: alarm from SL-T-0001\nevent stored by 0\.1\.0-\w+\n$/)
    expect(statSync(join(data, 'gateway.db')).uid).toBe(userOf(rig)!.uid)
    expect(r.stderr).toContain(`EVENTS STORED BY ${next.release} SINCE THE UPGRADE ARE NOT IN THE STORE NOW`)
    expect(r.stderr).toContain(`They are kept in ${aside}`)
    expect(r.stderr).toMatch(/STORE_NEWER/)
    // The last words say it again.
    expect(r.stderr.trim().split('\n').slice(-2)[0]).toContain(`on the store from before the upgrade: what ${next.release} stored is in ${aside}`)
  })

  it('--rollback, run from the installed release, switches back to the release before and restarts it', () => {
    const rig = makeRig()
    const first = installedAndRunning(rig)
    const next = makeBundle('0.2.0')
    expect(rig.run(next.dir).status).toBe(0)
    rmSync(join(rig.ctl, 'systemctl.log'))
    const r = rig.run(next.dir, ['--rollback'], { script: path(rig, 'opt', 'steppelink', 'current', 'install.sh') })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/Rolled back: 0\.1\.0-\w+ is current/)
    expect(link(rig, 'current')).toBe(`releases/${first.release}`)
    expect(link(rig, 'previous')).toBe(`releases/${next.release}`)
    expect(rig.systemctlLog()).toEqual([`stop ${UNIT}`, 'daemon-reload', `start ${UNIT}`, `is-active --quiet ${UNIT}`, `is-active --quiet ${UNIT}`])
    // Same layout: the store stays.
    expect(text(path(rig, 'var', 'lib', 'steppelink', 'gateway.db'))).toMatch(/event stored by 0\.2\.0[\s\S]*event stored by 0\.1\.0/)
  })

  it('--rollback from any bundle, over a store the newer release migrated, restores the copy from before the upgrade and keeps the migrated one aside', () => {
    const rig = makeRig()
    const first = installedAndRunning(rig)
    const next = makeBundle('0.2.0', { layout: 4 })
    expect(rig.run(next.dir).status).toBe(0)
    const other = makeBundle('0.3.0')
    const r = rig.run(other.dir, ['--rollback'])
    expect(r.status, r.stderr).toBe(0)
    expect(link(rig, 'current')).toBe(`releases/${first.release}`)
    const data = path(rig, 'var', 'lib', 'steppelink')
    expect(text(join(data, `failed-upgrade-${next.release}`, 'gateway.db'))).toMatch(/^layout=4\n[\s\S]*event stored by 0\.2\.0/)
    expect(text(join(data, 'gateway.db'))).toMatch(/^layout=3\n/)
    expect(r.stderr).toContain(`EVENTS STORED BY ${next.release} SINCE THE UPGRADE ARE NOT IN THE STORE NOW`)
  })

  it('--rollback with nothing to go back to says so', () => {
    const rig = makeRig()
    const b = installedAndRunning(rig)
    const r = rig.run(b.dir, ['--rollback'])
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/there is no release to go back to/)
  })

  it('--uninstall removes the program and the service, and keeps the config, the data and the user', () => {
    const rig = makeRig()
    const b = installedAndRunning(rig)
    const r = rig.run(b.dir, ['--uninstall'])
    expect(r.status, r.stderr).toBe(0)
    for (const gone of [
      'opt/steppelink',
      'usr/local/bin/steppelink',
      'etc/systemd/system/steppelink-gateway.service',
      'etc/systemd/journald.conf.d/steppelink.conf',
      'etc/udev/rules.d/99-steppelink-terminal.rules.example',
    ]) {
      expect(existsSync(path(rig, gone)), gone).toBe(false)
    }
    expect(text(path(rig, 'etc', 'steppelink', 'gateway.toml'))).toMatch(/id = "xlg-abag-0042"/)
    expect(text(path(rig, 'var', 'lib', 'steppelink', 'gateway.db'))).toMatch(/alarm from SL-T-0001/)
    expect(userOf(rig)).not.toBeNull()
    expect(r.stdout).toContain(`the config: ${rig.root}/etc/steppelink`)
    expect(r.stdout).toContain(`the data, with every stored event: ${rig.root}/var/lib/steppelink`)
    expect(rig.systemctlLog()).toEqual([`stop ${UNIT}`, `disable ${UNIT}`, 'daemon-reload', 'restart systemd-journald'])
  })

  it('--uninstall --purge removes the config, the data and the user too', () => {
    const rig = makeRig()
    const b = installedAndRunning(rig)
    const r = rig.run(b.dir, ['--uninstall', '--purge'])
    expect(r.status, r.stderr).toBe(0)
    for (const gone of ['opt/steppelink', 'etc/steppelink', 'var/lib/steppelink']) expect(existsSync(path(rig, gone)), gone).toBe(false)
    expect(userOf(rig)).toBeNull()
    const group = text(path(rig, 'etc', 'group'))
    expect(group).not.toMatch(/^steppelink:/m)
    expect(group).not.toMatch(/^dialout:.*steppelink/m)
    expect(group).toMatch(/^dialout:/m)
  })

  it.each([
    ['armv7l', /this board runs a 32-bit system \(armv7l\); this bundle is for 64-bit/, /install a 64-bit OS on the board \(Raspberry Pi OS Lite 64-bit/],
    [ARCH === 'x64' ? 'aarch64' : 'x86_64', /this bundle is for \w+, and this machine is/, /use steppelink-0\.1\.0-linux-\w+\.tar\.gz/],
  ])('a %s board is refused with what to install instead, and nothing is changed', (m, why, what) => {
    const rig = makeRig()
    writeScript(join(rig.bin, 'uname'), fakeUname(m))
    const b = makeBundle('0.1.0')
    const before = snapshot(rig.root)
    const r = rig.run(b.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(why)
    expect(r.stderr).toMatch(what)
    expect(snapshot(rig.root)).toEqual(before)
  })

  it('a system with a glibc older than 2.34 is refused, naming the OS release it needs', () => {
    const rig = makeRig()
    writeScript(join(rig.bin, 'getconf'), fakeGetconf('2.31'))
    const b = makeBundle('0.1.0')
    const before = snapshot(rig.root)
    const r = rig.run(b.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/glibc is 2\.31; the bundle's runtime needs 2\.34 or later/)
    expect(r.stderr).toMatch(/Raspberry Pi OS bookworm \(Debian 12\) or Ubuntu 22\.04/)
    expect(snapshot(rig.root)).toEqual(before)
  })

  it('--root without SYSTEMCTL calls no systemctl, and enables the unit by its link for the first boot', () => {
    const rig = makeRig()
    const b = makeBundle('0.1.0')
    const r = rig.run(b.dir, [], { systemctl: false })
    expect(r.status, r.stderr).toBe(0)
    expect(rig.systemctlLog()).toEqual([])
    expect(readlinkSync(path(rig, 'etc', 'systemd', 'system', 'multi-user.target.wants', `${UNIT}.service`))).toBe(`/etc/systemd/system/${UNIT}.service`)
    expect(r.stdout).toMatch(/enabled steppelink-gateway by its link .* \(systemctl was not run\)/)
    // --uninstall takes the link away again.
    expect(rig.run(b.dir, ['--uninstall'], { systemctl: false }).status).toBe(0)
    expect(existsSync(path(rig, 'etc', 'systemd', 'system', 'multi-user.target.wants', `${UNIT}.service`))).toBe(false)
  })

  it('--root --no-selftest prepares a card for a board of another architecture, saying what it did not check', () => {
    const rig = makeRig()
    const other = ARCH === 'x64' ? 'arm64' : 'x64'
    const b = makeBundle('0.1.0')
    // The same bundle, marked for the other architecture (the played runtime runs anywhere).
    const json = join(b.dir, 'bundle.json')
    writeFileSync(json, text(json).replace(`"arch": "${ARCH}"`, `"arch": "${other}"`))
    writeManifest(b.dir)
    const refused = rig.run(b.dir, [], { systemctl: false })
    expect(refused.status).toBe(1)
    expect(refused.stderr).toMatch(new RegExp(`this bundle is for ${other}, and this machine is ${ARCH}`))
    const r = rig.run(b.dir, ['--no-selftest'], { systemctl: false })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/Not checking this machine's architecture nor its glibc, nor running the self-test/)
    expect(link(rig, 'current')).toBe(`releases/0.1.0-${other}`)
    expect(existsSync(join(rig.ctl, 'steppelink.log'))).toBe(false)
  })

  it('--root on a tree without its user files says so, and changes nothing', () => {
    const rig = makeRig()
    rmSync(path(rig, 'etc', 'gshadow'))
    const b = makeBundle('0.1.0')
    const before = snapshot(rig.root)
    const r = rig.run(b.dir)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/etc\/gshadow does not exist: --root must be the root of an installed system/)
    expect(snapshot(rig.root)).toEqual(before)
  })

  it('--no-start upgrades without starting the gateway', () => {
    const rig = makeRig()
    installedAndRunning(rig)
    const next = makeBundle('0.2.0')
    const r = rig.run(next.dir, ['--no-start'])
    expect(r.status, r.stderr).toBe(0)
    expect(link(rig, 'current')).toBe(`releases/${next.release}`)
    expect(rig.systemctlLog()).toEqual([`stop ${UNIT}`, 'daemon-reload', `enable ${UNIT}`])
    expect(r.stdout).toMatch(/the gateway was not started \(--no-start\)/)
  })
})
