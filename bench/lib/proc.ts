/**
 * What a process costs, read from /proc (Linux): resident memory, CPU time and bytes
 * written to storage. Readings of a process that has exited come back as null.
 */

import { readFileSync } from 'node:fs'
import os from 'node:os'

/** Clock ticks per second for utime/stime in /proc/PID/stat; 100 on every Linux we run. */
const CLK_TCK = 100

export interface ProcSample {
  /** ms since the epoch when read. */
  at: number
  rssKB: number
  /** user + system CPU time, ms. */
  cpuMs: number
  /** /proc/PID/io write_bytes: bytes this process caused to be sent to storage. */
  writeBytes: number | null
  /** /proc/PID/io wchar: bytes passed to write(2) and friends, cached or not. */
  wchar: number | null
}

export function sampleProc(pid: number): ProcSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const utime = Number(fields[11])
    const stime = Number(fields[12])
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rssKB = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN)
    let writeBytes: number | null = null
    let wchar: number | null = null
    try {
      const io = readFileSync(`/proc/${pid}/io`, 'utf8')
      writeBytes = Number(/write_bytes:\s+(\d+)/.exec(io)?.[1] ?? NaN)
      wchar = Number(/wchar:\s+(\d+)/.exec(io)?.[1] ?? NaN)
    } catch {
      // /proc/PID/io needs the same user or CAP_SYS_PTRACE; leave null.
    }
    return { at: Date.now(), rssKB, cpuMs: ((utime + stime) * 1000) / CLK_TCK, writeBytes, wchar }
  } catch {
    return null
  }
}

/** CPU use between two samples as a percentage of one core. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  const wall = b.at - a.at
  return wall <= 0 ? 0 : ((b.cpuMs - a.cpuMs) / wall) * 100
}

/** Samples `pid` every `everyMs` until stopped; keeps the peak RSS and every sample. */
export function watchProc(pid: number, everyMs = 250): { samples: ProcSample[]; peakRssKB(): number; stop(): ProcSample[] } {
  const samples: ProcSample[] = []
  const take = () => {
    const s = sampleProc(pid)
    if (s !== null) samples.push(s)
  }
  take()
  const timer = setInterval(take, everyMs)
  timer.unref()
  return {
    samples,
    peakRssKB: () => Math.max(0, ...samples.map((s) => s.rssKB)),
    stop: () => {
      clearInterval(timer)
      take()
      return samples
    },
  }
}

export const cores = os.cpus().length
