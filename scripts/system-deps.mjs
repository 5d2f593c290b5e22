#!/usr/bin/env node
// Makes sure the system tools the tests use are here: socat (a real pseudo-terminal pair)
// and mosquitto (a real second broker). As root with apt-get, installs what is missing;
// otherwise stops with the exact line to run. Never lets the tests skip them silently.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const TOOLS = [
  { name: 'socat', paths: ['/usr/bin/socat', '/usr/local/bin/socat'] },
  { name: 'mosquitto', paths: ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'] },
]

const onPath = (name) => spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0
const missing = TOOLS.filter((t) => !t.paths.some(existsSync) && !onPath(t.name)).map((t) => t.name)
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
console.error(`The tests need ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed. Run:\n  sudo ${line}\nthen npm test again.`)
process.exit(1)
