/**
 * Counts the fsync(2) and fdatasync(2) calls of a running process (all its threads), with
 * `perf stat` on the kernel's syscall tracepoints: counted in the kernel, so the process
 * runs at full speed (strace would stop it at every system call). Linux only; needs perf
 * and the permission to trace the process (root, or perf_event_paranoid ≤ 1 for one's own).
 *
 * perf prints a count every INTERVAL_MS; this process adds the lines up as they arrive.
 * total() is therefore complete up to about INTERVAL_MS ago: read it after a quiet moment
 * of a few intervals (the disk benchmark settles 300 ms or more before each mark).
 */

import { spawn, type ChildProcess } from 'node:child_process'

const INTERVAL_MS = 100
const EVENTS = ['syscalls:sys_enter_fsync', 'syscalls:sys_enter_fdatasync']

export interface FsyncCounter {
  /** fsync + fdatasync calls counted since the counter started. */
  total(): number
  stop(): void
}

/** Starts counting; resolves once perf has reported its first interval, or with why it cannot. */
export function countFsyncs(pid: number, timeoutMs = 5_000): Promise<FsyncCounter | { error: string }> {
  return new Promise((resolve) => {
    let child: ChildProcess
    try {
      child = spawn('perf', ['stat', '-I', String(INTERVAL_MS), '-x', ',', '-e', EVENTS.join(','), '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] })
    } catch (e) {
      resolve({ error: `perf: ${(e as Error).message}` })
      return
    }
    let total = 0
    let lines = 0
    let partial = ''
    let tail = ''
    const counter: FsyncCounter = {
      total: () => total,
      stop: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT')
      },
    }
    const timer = setTimeout(() => {
      counter.stop()
      resolve({ error: `perf stat reported nothing within ${timeoutMs} ms: ${tail.trim().slice(-300)}` })
    }, timeoutMs)
    child.once('error', (e) => {
      clearTimeout(timer)
      resolve({ error: `perf: ${e.message}` })
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      if (lines === 0) resolve({ error: `perf stat exited (${code}) without a count: ${tail.trim().slice(-300)}` })
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-1000)
      partial += chunk
      const all = partial.split('\n')
      partial = all.pop()!
      for (const line of all) {
        // `time,count,unit,event,...`; the count is `<not counted>` when the process did not
        // run in the interval.
        const [, count, , event] = line.split(',')
        if (event === undefined || !EVENTS.includes(event.trim())) continue
        const n = Number(count)
        if (Number.isFinite(n)) total += n
        if (++lines === 1) {
          clearTimeout(timer)
          resolve(counter)
        }
      }
    })
  })
}
