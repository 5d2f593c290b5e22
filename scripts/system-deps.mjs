#!/usr/bin/env node
// Makes sure the system tools the tests use are here: socat (a real pseudo-terminal pair),
// mosquitto (a real second broker), mosquitto-clients (mosquitto_sub and mosquitto_pub:
// the shell platform of protocol/MQTT.md section 8, in the interop fault test), gcc (cc,
// which compiles the C of protocol/PROTOCOL.md in protocol/spec-c.test.ts) and openssl (the
// TLS tests make a private CA and certificates with it, tests/helpers/tls-certs.ts),
// chromium (the household page's tests drive Debian's Chromium with playwright-core,
// tests/helpers/browser.ts: playwright's own browser download needs the internet, which the
// board and CI do not have) and fonts-noto-cjk (a headless machine has no Chinese font, and
// the page is zh-CN first: without it the screenshots show boxes), systemd-notify (the
// service's watchdog messages, gateway/systemd-notify.ts) and python3 (the fake notify
// socket that receives them, tests/helpers/notify-socket.ts). As root with apt-get,
// installs what is missing; otherwise stops with the exact line to run. Never lets the
// tests skip them silently.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

// name: the command looked for; pkg: the Debian package that has it; noPath: only `paths` count.
const TOOLS = [
  { name: 'socat', pkg: 'socat', paths: ['/usr/bin/socat', '/usr/local/bin/socat'] },
  { name: 'mosquitto', pkg: 'mosquitto', paths: ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'] },
  { name: 'mosquitto_sub', pkg: 'mosquitto-clients', paths: ['/usr/bin/mosquitto_sub', '/usr/local/bin/mosquitto_sub'] },
  { name: 'mosquitto_pub', pkg: 'mosquitto-clients', paths: ['/usr/bin/mosquitto_pub', '/usr/local/bin/mosquitto_pub'] },
  { name: 'cc', pkg: 'gcc', paths: ['/usr/bin/cc', '/usr/local/bin/cc'] },
  { name: 'openssl', pkg: 'openssl', paths: ['/usr/bin/openssl', '/usr/local/bin/openssl'] },
  { name: 'systemd-notify', pkg: 'systemd', paths: ['/usr/bin/systemd-notify', '/bin/systemd-notify'] },
  { name: 'python3', pkg: 'python3', paths: ['/usr/bin/python3', '/usr/local/bin/python3'] },
  // Exactly this path: tests/helpers/browser.ts launches it (not on PATH: a command of that
  // name elsewhere would not be the browser the tests start).
  // The board bundle (scripts/bundle.mjs, tests/bundle*.e2e.test.ts): node-gyp compiles
  // better-sqlite3 for the bundled runtime with make and g++, for arm64 with the cross
  // compiler; qemu-user-static runs the arm64 bundle; ip (iproute2) makes the network
  // namespace with no network that the x64 bundle is installed in; useradd (passwd) makes
  // the installer's system user.
  { name: 'g++', pkg: 'g++', paths: ['/usr/bin/g++'] },
  { name: 'make', pkg: 'make', paths: ['/usr/bin/make'] },
  { name: 'aarch64-linux-gnu-g++', pkg: 'g++-aarch64-linux-gnu', paths: ['/usr/bin/aarch64-linux-gnu-g++'] },
  { name: 'qemu-aarch64-static', pkg: 'qemu-user-static', paths: ['/usr/bin/qemu-aarch64-static'] },
  { name: 'ip', pkg: 'iproute2', paths: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'] },
  { name: 'useradd', pkg: 'passwd', paths: ['/usr/sbin/useradd', '/sbin/useradd'] },
  { name: 'chromium', pkg: 'chromium', paths: ['/usr/bin/chromium'], noPath: true },
  // A font, not a command: the file Debian's package installs.
  { name: 'Noto Sans CJK', pkg: 'fonts-noto-cjk', paths: ['/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc'], noPath: true },
]

const onPath = (name) => spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
const missing = [...new Set(TOOLS.filter((t) => !t.paths.some(existsSync) && (t.noPath || !onPath(t.name))).map((t) => t.pkg))]
if (missing.length === 0) process.exit(0)

const line = `apt-get update && apt-get install -y ${missing.join(' ')}`
const root = typeof process.getuid === 'function' && process.getuid() === 0
if (root && onPath('apt-get')) {
  console.log(`tests need ${missing.join(' and ')}; installing: ${line}`)
  try {
    execFileSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${line}`], { stdio: 'inherit' })
    process.exit(0)
  } catch {
    console.error(`\ninstalling failed. Run this, then npm test again:\n  ${line}`)
    process.exit(1)
  }
}
console.error(
  `The tests need ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed. Run:\n  sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}\nthen npm test again.`,
)
process.exit(1)
