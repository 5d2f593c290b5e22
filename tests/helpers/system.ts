/**
 * What the end-to-end tests need from the machine: external tools, and a way to wait for
 * real I/O without guessing how long it takes.
 *
 * A missing tool fails the test with the one line that installs it. Tests never skip
 * themselves: a suite that passes because nothing ran is worse than a red one.
 */

import { requireTool, type Tool } from '../../device-sim/system-tools.js'

export { requireTool, type Tool }
export { waitUntil, type WaitOptions } from '../../device-sim/wait.js'
