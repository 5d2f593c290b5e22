/**
 * A child process of the scale benchmark (bench/fleet-worker.ts in one of its roles), seen
 * from the benchmark: typed messages both ways, waiting for the next message of a type,
 * and a kill that never leaves it running.
 */

import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import type { FleetRole, FromWorker, ToWorker } from './fleet-protocol.js'

// Compiled, this file is dist/bench/lib/fleet-child.js and the worker dist/bench/fleet-worker.js.
const WORKER = path.join(import.meta.dirname, '..', 'fleet-worker.js')

type Of<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>

interface Waiter {
  type: FromWorker['type']
  resolve: (m: FromWorker) => void
  reject: (e: Error) => void
}

export class FleetChild {
  readonly name: string
  readonly #child: ChildProcess
  readonly #inbox: FromWorker[] = []
  readonly #waiters = new Set<Waiter>()
  readonly #exited: Promise<void>
  #failure: Error | null = null

  constructor(role: FleetRole, name: string) {
    this.name = name
    // stdout is the benchmark's result channel: a worker never writes to it.
    this.#child = fork(WORKER, [role], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    this.#child.on('message', (m: FromWorker) => {
      if (m.type === 'error') return this.#fail(new Error(`${name}: ${m.message}`))
      const w = [...this.#waiters].find((x) => x.type === m.type)
      if (w === undefined) return void this.#inbox.push(m)
      this.#waiters.delete(w)
      w.resolve(m)
    })
    this.#exited = new Promise((resolve) =>
      this.#child.once('exit', (code, signal) => {
        this.#fail(new Error(`${name} exited (${code ?? signal})`))
        resolve()
      }),
    )
  }

  get pid(): number {
    const pid = this.#child.pid
    if (pid === undefined) throw new Error(`${this.name}: not running`)
    return pid
  }

  send(m: ToWorker): void {
    if (this.#failure !== null) throw this.#failure
    this.#child.send(m)
  }

  /** The next message of this type (one that came earlier and was not taken yet included). */
  next<T extends FromWorker['type']>(type: T, timeoutMs: number): Promise<Of<T>> {
    const i = this.#inbox.findIndex((m) => m.type === type)
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0] as Of<T>)
    if (this.#failure !== null) return Promise.reject(this.#failure)
    return new Promise<Of<T>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(w)
        reject(new Error(`${this.name}: no '${type}' within ${timeoutMs} ms`))
      }, timeoutMs)
      const w: Waiter = {
        type,
        resolve: (m) => {
          clearTimeout(timer)
          resolve(m as Of<T>)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      }
      this.#waiters.add(w)
    })
  }

  /** Asks it to stop (`stop`, then `stopped`), and kills it if it does not within timeoutMs. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      try {
        this.send({ type: 'stop' })
        await this.next('stopped', timeoutMs)
      } catch {
        // It failed or is stuck: the kill below ends it.
      }
      this.#child.kill('SIGKILL')
    }
    await this.#exited
  }

  #fail(e: Error): void {
    this.#failure ??= e
    for (const w of this.#waiters) w.reject(this.#failure)
    this.#waiters.clear()
  }
}
