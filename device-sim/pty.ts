/**
 * Real pseudo-terminals for the demo and the end-to-end tests: a serial cable in software.
 *
 * `openPtyPair()` runs `socat -d -d pty,raw,echo=0,link=DIR/a pty,raw,echo=0,link=DIR/b`:
 * two ptys joined back to back, each reached through a symlink, like the
 * `/dev/serial/by-id/...` link of a USB adapter. Bytes written on one end come out of the
 * other, unchanged (raw: no CR/LF translation, no echo, no XON/XOFF).
 *
 * Unplug and replug: `kill()` stops socat; both devices and both links vanish, as they do
 * when the adapter is pulled. `replug()` starts a new socat with links at the same paths,
 * pointing at whatever /dev/pts numbers the kernel gives out this time: whoever reopens
 * the link path finds the device again, whoever held the old device does not.
 *
 * `openPtyEnd(path)` opens one end for the test's side of the cable (the simulated
 * terminal), with Node's own tty stream: it does not depend on the `serialport` package the
 * gateway uses.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { constants, existsSync, openSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tty from 'node:tty'
import { requireTool } from './system-tools.js'

export interface PtyPair {
  /** The temporary directory holding the links. */
  readonly dir: string
  /** Link to one end (DIR/a). Stays the same across kill() and replug(). */
  readonly a: string
  /** Link to the other end (DIR/b). */
  readonly b: string
  /** True while socat runs (the "cable" is plugged in). */
  readonly alive: boolean
  /**
   * Unplug: stops socat and resolves once it has exited and both links are gone. Anyone
   * holding an end sees it hang up (read EOF/EIO, write EIO). Does nothing if not alive.
   */
  kill(): Promise<void>
  /** Replug: a new socat, links at the same paths; resolves once both links exist. */
  replug(): Promise<void>
  /** Kills socat, waits for it to exit, removes the directory. May be called more than once. */
  close(): Promise<void>
}

export interface PtyPairOptions {
  /** How long socat may take to create both links, ms. Default 5,000. */
  startTimeoutMs?: number
}

/** Starts socat with two linked ptys in a fresh temporary directory. */
export async function openPtyPair(opts: PtyPairOptions = {}): Promise<PtyPair> {
  const socat = requireTool('socat')
  const dir = await mkdtemp(join(tmpdir(), 'steppelink-pty-'))
  const pair = new SocatPair(socat, dir, opts.startTimeoutMs ?? 5000)
  try {
    await pair.replug()
  } catch (err) {
    await pair.close()
    throw err
  }
  return pair
}

class SocatPair implements PtyPair {
  readonly a: string
  readonly b: string
  #child: ChildProcess | null = null
  #exited: Promise<void> = Promise.resolve()
  #stderr = ''
  #closed = false

  constructor(
    readonly socat: string,
    readonly dir: string,
    readonly startTimeoutMs: number,
  ) {
    this.a = join(dir, 'a')
    this.b = join(dir, 'b')
  }

  get alive(): boolean {
    return this.#child !== null
  }

  async replug(): Promise<void> {
    if (this.#closed) throw new Error('PtyPair.replug() after close()')
    if (this.#child !== null) throw new Error('PtyPair.replug() while plugged in; kill() first')
    // Leftover links (socat killed by SIGKILL does not remove them) would make socat fail.
    await this.#removeLinks()
    this.#stderr = ''
    const child = spawn(this.socat, ['-d', '-d', `pty,raw,echo=0,link=${this.a}`, `pty,raw,echo=0,link=${this.b}`], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.#child = child
    // If the test process dies without close(), socat must not outlive it holding ptys.
    const onProcessExit = (): void => {
      child.kill('SIGKILL')
    }
    process.on('exit', onProcessExit)
    this.#exited = new Promise<void>((resolve) => {
      child.once('close', () => {
        process.off('exit', onProcessExit)
        if (this.#child === child) this.#child = null
        resolve()
      })
    })
    // Keep the pipe drained (socat would block on a full one) and the tail for errors.
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000)
    })
    let spawnError: Error | null = null
    child.once('error', (err) => {
      spawnError = err
    })

    const deadline = Date.now() + this.startTimeoutMs
    for (;;) {
      if (spawnError !== null || child.exitCode !== null || child.signalCode !== null) {
        await this.#exited
        throw new Error(`socat exited before creating ${this.a} and ${this.b}: ${spawnError ?? this.#stderr.trim()}`)
      }
      if (existsSync(this.a) && existsSync(this.b)) return
      if (Date.now() >= deadline) {
        await this.kill()
        throw new Error(`socat did not create ${this.a} and ${this.b} within ${this.startTimeoutMs} ms: ${this.#stderr.trim()}`)
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 5))
    }
  }

  async kill(): Promise<void> {
    const child = this.#child
    if (child !== null) {
      child.kill('SIGTERM')
      // socat exits at once on SIGTERM; the escalation is for a wedged one.
      const escalate = setTimeout(() => child.kill('SIGKILL'), 2000)
      await this.#exited
      clearTimeout(escalate)
    }
    await this.#removeLinks()
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.kill()
    await rm(this.dir, { recursive: true, force: true })
  }

  async #removeLinks(): Promise<void> {
    await rm(this.a, { force: true })
    await rm(this.b, { force: true })
  }
}

/** The test's end of a pty: what a simulated terminal reads and writes. */
export interface PtyEnd {
  readonly path: string
  /** Every byte read so far, in order. */
  received(): Uint8Array
  /** True once the far side hung up (socat killed) or close() was called. */
  readonly closed: boolean
  /** Writes bytes; resolves once they are handed to the kernel. */
  write(bytes: Uint8Array): Promise<void>
  /** Closes the end; resolves once the file descriptor is closed. */
  close(): Promise<void>
}

/** Opens `path` (a pty end, e.g. `PtyPair.b`) for reading and writing, raw. */
export async function openPtyEnd(path: string): Promise<PtyEnd> {
  // O_NOCTTY: the test process must not acquire the pty as its controlling terminal.
  const fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY)
  const stream = new tty.ReadStream(fd)
  stream.setRawMode(true)
  const chunks: Buffer[] = []
  let closed = false
  const hasClosed = new Promise<void>((resolve) => {
    stream.once('close', () => {
      closed = true
      resolve()
    })
  })
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  // A hang-up may arrive as EIO; it ends the stream, it must not end the test process.
  stream.on('error', () => {})
  return {
    path,
    received: () => new Uint8Array(Buffer.concat(chunks)),
    get closed() {
      return closed
    },
    write: (bytes) =>
      new Promise<void>((resolve, reject) => {
        stream.write(Buffer.from(bytes), (err) => (err ? reject(err) : resolve()))
      }),
    close: async () => {
      stream.destroy()
      await hasClosed
    },
  }
}
