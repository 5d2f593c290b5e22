/**
 * The whole alarm loop on one machine, with real processes where a fault is real: the
 * platform's broker (aedes in this process, or mosquitto as a child process), optionally
 * the weak link in front of it, a socat pseudo-terminal pair as the serial cable, the
 * gateway as a real child process (`node dist/cli/main.js gateway`, so that it can be
 * SIGKILLed), terminals running the firmware logic on the other end of the cable, and the
 * operator console as the platform. Everything listens on 127.0.0.1 only.
 *
 * The one loop harness: the fault suite (through tests/faults/loop.ts, which adds vitest's
 * hooks), the soak run (loop/soak.ts), the household of the footprint and disk benchmarks
 * and the end-to-end tests start it. What they check is loop/delivery.ts: every press is
 * recorded there, every first arrival at the console too, and `expectEveryAlarmDelivered`
 * asks it.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { writeKeyPair } from '../cli/keygen-command.js'
import { commandPayload, signerFromFile } from '../platform/commands.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { brokerAcl, credentialsOf, startAedes, type AedesBroker, type BrokerAcl, type BrokerCredentials } from '../device-sim/broker.js'
import { startGateway, type GatewayOutput, type GatewayProcess, type LogLine } from '../device-sim/gateway-process.js'
import { startMosquitto, type MosquittoBroker } from '../device-sim/mosquitto.js'
import { openPtyPair, type PtyPair } from '../device-sim/pty.js'
import { runOnSerial, type RunningTerminal, type RunOnSerialOptions } from '../device-sim/serial-runner.js'
import { requireTool } from '../device-sim/system-tools.js'
import { TerminalDevice, ramMemory, type NvMemory, type TerminalUpdate } from '../device-sim/terminal.js'
import { pinPath } from '../gateway/household/web/secrets.js'
import { holdsWithin, waitUntil } from '../device-sim/wait.js'
import { startWeakLink, type WeakLink, type WeakLinkOptions } from '../device-sim/weak-link.js'
import { startConsole, type AckMode, type ConsoleEvent, type OperatorConsole } from '../platform/index.js'
import type { EventKind } from '../protocol/messages.js'
import { CLASS_OF, DEFAULT_TOPIC_PREFIX, gatewayTopics, keyId, parsePublicKey } from '../protocol/mqtt.js'
import { DeliveryLedger, describeBroken, type Broken, type VerdictOptions } from './delivery.js'
import { MultiDrop, sharedLine } from './line.js'

export type BrokerKind = 'aedes' | 'mosquitto'

/** The operator console's part: how it answers alarms, and who else hears its events. */
export interface ConsoleSetup {
  /** Receipts only (`none`, the default), or acknowledge, dispatch and resolve too (`auto`). */
  ack?: AckMode
  /** With `auto`: dispatch and resolve this long after the acknowledgement, s. */
  dispatchAfterS?: number
  resolveAfterS?: number
  /** Its id (the persistent session's name). Default `loop-<pid>-<random>`. */
  id?: string
  /** Each of its events, after the loop has recorded it. */
  onEvent?: (e: ConsoleEvent) => void
}

export interface LoopOptions {
  /** The platform's broker: one the loop starts, or one the caller runs (and closes). */
  broker: BrokerKind | AedesBroker | MosquittoBroker
  /** mosquitto: keep its state across a restart, as [MQTT-2.6] requires. Default true. */
  persistence?: boolean
  /**
   * The topic permissions of MQTT.md [MQTT-2.7]-[MQTT-2.10] on the broker the loop starts
   * (aedes with its hooks, mosquitto with a password file and the generated ACL). Default
   * true. The gateway and the console always get their credentials (`loop.acl`), so a
   * broker the caller brings may enforce them too (`startAedes({ acl: loop.acl })`).
   */
  acl?: boolean
  /** mosquitto: called when it exits by itself (not by close or restart), with its last stderr. */
  onBrokerCrash?: (how: string, stderr: string) => void
  /** A weak link between the gateway and the broker. Default none. */
  link?: Omit<WeakLinkOptions, 'target'>
  /** The operator console as the platform (default: receipts only); `false`: none, the caller brings its own platform. */
  console?: ConsoleSetup | false
  /** The gateway's id. Default `gw-loop`. */
  gatewayId?: string
  /** The gateway's area (`--area`, and its account's area on the broker [MQTT-2.10]). Default none. */
  area?: string
  /** The gateway's log level. Default `debug` (the fault scenarios read its debug lines). */
  logLevel?: string
  /** More gateway flags, after the loop's own. */
  gatewayArgs?: string[]
  /** Environment and node flags (V8 flags such as `--lite-mode`) of the gateway process. */
  gatewayEnv?: NodeJS.ProcessEnv
  nodeArgs?: readonly string[]
  /** Where the gateway's output goes besides its parsed log lines, and how many of them to keep. */
  gatewayOutput?: GatewayOutput
  /** Called when the gateway exits by itself: not killed by the loop, not at close. */
  onGatewayExit?: (gateway: GatewayProcess, how: number | string) => void
  /** The gateway's data directory. Default `<dir>/gateway`. */
  dataDir?: string
  /** Terminals on the one line, addresses 1, 2, ... Default 1; 0 for none (the caller runs its own). */
  terminals?: number
  /** The id of the terminal at `address`. Default `SL-T-L<address>`. */
  terminalId?: (address: number) => string
  /**
   * How several terminals share the line (loop/line.ts): each its own runner on one opening
   * of the device (`shared`, the default: a terminal can be power-cycled alone), or one
   * runner sending their frames in turn (`multidrop`: the only way to pace several).
   */
  line?: 'shared' | 'multidrop'
  /** Each terminal's serial runner: baud (the gateway is told it too), pacing, noise. */
  serial?: Omit<RunOnSerialOptions, 'path'>
  /** Everything a terminal shows, as it shows it. */
  onTerminalUpdate?: (terminal: string, u: TerminalUpdate) => void
  /** Runs once the gateway is ready, before the terminals are switched on (to wait for its uplink, say). */
  beforeTerminals?: (loop: Loop) => Promise<void>
  /** Keep every console event in `events`. Default true; false for a run of hours (the delivery ledger and `copies` are kept either way). */
  keepEvents?: boolean
  /** A promise broken at an arrival (delivery.ts `ARRIVAL_RULES`), the moment it breaks. */
  onBroken?: (b: Broken) => void
  /** Scratch directory (store, mosquitto's files). Default a new temporary one, removed at close; a given one is left. */
  dir?: string
  /**
   * Signed commands [MQTT-5.12]: a platform key pair in `<dir>/keys`; the console signs every
   * command with it and the gateway takes no other. Default true with the loop's own console,
   * false with `console: false` (the caller's platform sends what it sends).
   */
  signed?: boolean
}

export interface Terminal {
  id: string
  address: number
  device: TerminalDevice
  /** Its runner; with `multidrop`, the one runner of every terminal. */
  running: RunningTerminal
  memory: NvMemory
  /** Event numbers of the alarms pressed, in order (kept across a power cycle). */
  pressed: readonly number[]
  /** Date.now() when it was switched on. */
  startedAt: number
}

/** A delivery check's waits: how long for the alarms to arrive (default 60 s); then 30 s each to show the stage and to leave memory. */
export interface DeliveryWait extends VerdictOptions {
  timeoutMs?: number
}

/** The delivery promise did not hold: `cause.broken` names each broken promise. */
export class DeliveryBrokenError extends Error {
  readonly code = 'LOOP_DELIVERY_BROKEN'
  constructor(broken: readonly Broken[]) {
    super(`the delivery promise was broken (${broken.length}): ${describeBroken(broken)}`, { cause: { broken } })
  }
}

/**
 * The gateway's flags in a loop: its end of the line, the broker as it reaches it, its id,
 * store and log level, the line's baud; `more` after them. The household page listens on
 * loopback at a free port (its address is in the log line "household page on ..."), so
 * several gateways on one machine never meet at 0.0.0.0:8080.
 */
export function gatewayArgs(o: { serial: string; broker: string; id: string; dataDir: string; logLevel: string; baud?: number; more?: readonly string[] }): string[] {
  return [
    ...['--serial', o.serial, '--broker', o.broker, '--id', o.id, '--data', o.dataDir, '--log-level', o.logLevel, '--household-listen', '127.0.0.1', '--household-port', '0'],
    ...(o.baud !== undefined ? ['--baud', String(o.baud)] : []),
    ...(o.more ?? []),
  ]
}

/**
 * The promise checked at a platform of the caller's (a benchmark's probe, a platform
 * written against MQTT.md): waits until `check()` (checkDelivery over that platform's
 * arrivals) finds nothing broken, at most `timeoutMs`; throws DeliveryBrokenError if
 * something still is.
 */
export async function expectDelivered(check: () => Broken[], timeoutMs = 30_000): Promise<void> {
  await holdsWithin(() => check().length === 0, { timeoutMs, intervalMs: 20 })
  const broken = check()
  if (broken.length > 0) throw new DeliveryBrokenError(broken)
}

/** Pacing in scenarios with real processes (never in unit tests, which use fake clocks). */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The gateway's log lines with this message, in order. */
export const logs = (l: Loop, msg: string): LogLine[] => l.gateway.logs.filter((x) => x.msg === msg)

export class Loop {
  readonly dir: string
  readonly dataDir: string
  readonly gatewayId: string
  /** The broker accounts: the gateway under its id, the platform (the console) as `platform`; random passwords. */
  readonly acl: BrokerAcl
  broker!: AedesBroker | MosquittoBroker
  weak: WeakLink | null = null
  pty!: PtyPair
  gateway!: GatewayProcess
  /** Date.now() when the current gateway was spawned, and when its "gateway ready" reached this process. */
  gatewaySpawnedAt = 0
  gatewayReadyAt = 0
  readonly terminals: Terminal[] = []
  /** Every alarm pressed and every first arrival at the console: what the delivery check reads. */
  readonly delivery = new DeliveryLedger()
  /** Copies of each alert id at the console, duplicates included. */
  readonly copies = new Map<string, number>()
  /** Everything the console reported, in order (unless `keepEvents` is false). */
  readonly events: ConsoleEvent[] = []
  readonly #ownDir: boolean
  #console: OperatorConsole | null = null
  /** Gateway processes not yet exited: what close kills. */
  readonly #gateways = new Set<GatewayProcess>()
  /** Gateways the loop itself stopped: their exit is no news. */
  readonly #stopped = new WeakSet<GatewayProcess>()
  #closing = false
  /** With several terminals on `shared`, they share one opening of the line. */
  readonly #line = sharedLine()
  /** The platform key pair when the loop runs signed ([MQTT-5.12]); null: unsigned. */
  readonly keys: { keyId: string; privatePath: string; publicPath: string } | null

  constructor(readonly options: LoopOptions) {
    this.#ownDir = options.dir === undefined
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), 'steppelink-loop-'))
    this.dataDir = options.dataDir ?? join(this.dir, 'gateway')
    this.gatewayId = options.gatewayId ?? 'gw-loop'
    this.acl = brokerAcl(DEFAULT_TOPIC_PREFIX, { platform: ['platform'], gateways: [{ id: this.gatewayId, area: options.area ?? null }] })
    this.keys = (options.signed ?? options.console !== false) ? ensureKeyPair(join(this.dir, 'keys')) : null
    const several = (options.terminals ?? 1) > 1
    if (several && options.serial?.pace && (options.line ?? 'shared') === 'shared') {
      throw new Error("several terminals paced on one line need line: 'multidrop': paced runners sharing a line would interleave their bytes")
    }
  }

  /** The operator console; throws when the loop runs without one. */
  get console(): OperatorConsole {
    if (!this.#console) throw new Error('this loop runs without the operator console (console: false)')
    return this.#console
  }

  get brokerUrl(): string {
    return this.broker.url
  }

  /** The platform's user name and password: for a client of the caller's that plays the platform. */
  get platformCredentials(): BrokerCredentials {
    return credentialsOf(this.acl, 'platform')
  }

  /** The gateway's user name (its id) and password. */
  get gatewayCredentials(): BrokerCredentials {
    return credentialsOf(this.acl, this.gatewayId)
  }

  /** Where the gateway reaches the broker: through the weak link when there is one. */
  get gatewayBrokerUrl(): string {
    return this.weak ? `mqtt://127.0.0.1:${this.weak.port}` : this.broker.url
  }

  /** The topic prefix the platform listens under. */
  get prefix(): string {
    return this.#console?.prefix ?? DEFAULT_TOPIC_PREFIX
  }

  /** Alert ids in the order of their first arrival at the console. */
  get arrivals(): readonly string[] {
    return this.delivery.arrivals
  }

  async start(): Promise<this> {
    requireTool('socat')
    if (typeof this.options.broker !== 'string') {
      this.broker = this.options.broker
    } else if (this.options.broker === 'mosquitto') {
      requireTool('mosquitto')
      this.broker = await startMosquitto({
        dir: this.dir,
        persistence: this.options.persistence ?? true,
        // [MQTT-2.6]: the platform's broker keeps a day of queued messages per client;
        // mosquitto's default of 1000 would drop a flood of commands without a word.
        conf: ['max_queued_messages 100000'],
        ...(this.options.onBrokerCrash ? { onCrash: this.options.onBrokerCrash } : {}),
        ...(this.options.acl !== false ? { acl: this.acl } : {}),
      })
    } else {
      this.broker = await startAedes(this.options.acl !== false ? { acl: this.acl } : {})
    }
    if (this.options.link) this.weak = await startWeakLink({ ...this.options.link, target: { port: this.broker.port } })
    this.pty = await openPtyPair()
    if (this.options.console !== false) await this.#startConsole(this.options.console ?? {})
    await this.startGateway()
    await this.options.beforeTerminals?.(this)
    this.#startTerminals()
    await this.waitForSessions()
    return this
  }

  async #startConsole(setup: ConsoleSetup): Promise<void> {
    this.#console = await startConsole({
      broker: this.broker.url,
      id: setup.id ?? `loop-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      ...this.platformCredentials,
      ack: setup.ack ?? 'none',
      ...(this.keys ? { signingKey: this.keys.privatePath } : {}),
      ...(setup.dispatchAfterS !== undefined ? { dispatchAfterS: setup.dispatchAfterS } : {}),
      ...(setup.resolveAfterS !== undefined ? { resolveAfterS: setup.resolveAfterS } : {}),
      reconnectS: 0.2,
      onEvent: (e) => {
        if (this.options.keepEvents !== false) this.events.push(e)
        if (e.type === 'alert') {
          this.copies.set(e.id, (this.copies.get(e.id) ?? 0) + 1)
          if (!e.duplicate) for (const b of this.delivery.arrive(e.id, e.attempt)) this.options.onBroken?.(b)
        }
        setup.onEvent?.(e)
      },
    })
  }

  /** Starts the gateway process on the line; resolves once it logs "gateway ready". */
  async startGateway(): Promise<GatewayProcess> {
    const o = this.options
    const args = gatewayArgs({
      serial: this.pty.a,
      broker: this.gatewayBrokerUrl,
      id: this.gatewayId,
      dataDir: this.dataDir,
      logLevel: o.logLevel ?? 'debug',
      ...(o.serial?.baud !== undefined ? { baud: o.serial.baud } : {}),
      more: [...(this.keys ? ['--platform-key', this.keys.publicPath] : []), ...(o.gatewayArgs ?? [])],
    })
    this.gatewaySpawnedAt = Date.now()
    // The password in the environment, as the service unit gives it (flags show in ps).
    const g = startGateway(
      [...args, '--username', this.gatewayId, ...(o.area !== undefined ? ['--area', o.area] : [])],
      { STEPPELINK_MQTT_PASSWORD: this.gatewayCredentials.password, ...o.gatewayEnv },
      o.nodeArgs ?? [],
      o.gatewayOutput ?? {},
    )
    this.gateway = g
    this.#gateways.add(g)
    void g.exited.then((how) => {
      this.#gateways.delete(g)
      if (!this.#stopped.has(g) && !this.#closing) o.onGatewayExit?.(g, how)
    })
    await g.waitForLog((l) => l.msg === 'gateway ready', 'ready', 30_000)
    this.gatewayReadyAt = Date.now()
    return g
  }

  /**
   * The current gateway's household page (issue 13): its address, from the log line
   * "household page on ..." (it starts after "gateway ready", on 127.0.0.1 at a free port),
   * and its PIN, the one the gateway made at first start in `<data>/household-pin` (or
   * `household.pin` when the caller's `gatewayArgs` give a config that sets it: pass it as
   * `pin`). Throws after `timeoutMs` if the page did not start.
   */
  async householdPage(opts: { timeoutMs?: number; pin?: string } = {}): Promise<{ url: string; pin: string }> {
    const line = await this.gateway.waitForLog((l) => l.msg.startsWith('household page on ') && typeof l.url === 'string', 'the household page', opts.timeoutMs ?? 10_000)
    const url = (line.url as string).replace(/\/$/, '')
    return { url, pin: opts.pin ?? readFileSync(pinPath(this.dataDir), 'utf8').trim() }
  }

  /** Stops the gateway: SIGKILL (a power cut) unless told otherwise (SIGTERM: as systemd stops it). */
  async stopGateway(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.#stopped.add(this.gateway)
    await this.gateway.kill(signal)
  }

  async restartGateway(signal: NodeJS.Signals = 'SIGKILL'): Promise<GatewayProcess> {
    await this.stopGateway(signal)
    return this.startGateway()
  }

  #startTerminals(): void {
    const count = this.options.terminals ?? 1
    if ((this.options.line ?? 'shared') === 'shared') {
      for (let address = 1; address <= count; address++) this.addTerminal(address)
      return
    }
    const startedAt = Date.now()
    const made = Array.from({ length: count }, (_, i) => this.#device(i + 1, ramMemory(), startedAt))
    const running = runOnSerial(new MultiDrop(made.map((m) => m.device)), { ...this.options.serial, path: this.pty.b })
    for (const m of made) this.terminals.push({ ...m, running, pressed: this.delivery.addTerminal(m.id), startedAt })
  }

  /** `claims`: the device says HELLO with this id, bound at another address; the platform knows it as `<claims>@<gateway>.a<address>` ([MQTT-3.10]). */
  #device(address: number, memory: NvMemory, now: number, claims?: string): { id: string; address: number; device: TerminalDevice; memory: NvMemory } {
    const id = claims !== undefined ? `${claims}@${this.gatewayId}.a${address}` : (this.options.terminalId ?? ((a) => `SL-T-L${a}`))(address)
    const onUpdate = this.options.onTerminalUpdate
    const baud = this.options.serial?.baud
    const device = new TerminalDevice({
      address,
      terminal: claims ?? id,
      memory,
      now,
      ...(baud !== undefined ? { baud } : {}),
      ...(onUpdate ? { onUpdate: (u: TerminalUpdate) => onUpdate(id, u) } : {}),
    })
    return { id, address, device, memory }
  }

  /**
   * Switches on the terminal at `address` over `memory` (its NV memory: a power cycle when
   * it held one before), replacing the one there. Its record of alarms pressed goes on.
   */
  addTerminal(address: number, memory: NvMemory = ramMemory()): Terminal {
    if (this.options.line === 'multidrop') throw new Error("a terminal cannot be added alone on a 'multidrop' line: one runner runs them all")
    const startedAt = Date.now()
    const made = this.#device(address, memory, startedAt)
    const shared = (this.options.terminals ?? 1) > 1 && this.options.serial?.openPort === undefined
    const running = runOnSerial(made.device, { ...this.options.serial, path: this.pty.b, ...(shared ? { openPort: this.#line } : {}) })
    const t: Terminal = { ...made, running, pressed: this.delivery.addTerminal(made.id), startedAt }
    const at = this.terminals.findIndex((x) => x.id === made.id)
    if (at >= 0) this.terminals[at] = t
    else this.terminals.push(t)
    return t
  }

  /**
   * Switches on, at `address`, a second device that claims the id `claims` of a terminal
   * bound to another address (issue 12), replacing what ran at `address` (stop it first).
   * The gateway files its alarms apart, under `<claims>@<gateway>.a<address>`: its `id`
   * here, under which the delivery promise is checked for it like for any terminal.
   * A shared line only (several terminals).
   */
  addClaimant(address: number, claims: string): Terminal {
    if (this.options.line === 'multidrop' || (this.options.terminals ?? 1) < 2) throw new Error('a claimant needs a shared line of several terminals')
    const startedAt = Date.now()
    const made = this.#device(address, ramMemory(), startedAt, claims)
    const running = runOnSerial(made.device, { ...this.options.serial, path: this.pty.b, ...(this.options.serial?.openPort === undefined ? { openPort: this.#line } : {}) })
    const t: Terminal = { ...made, running, pressed: this.delivery.addTerminal(made.id), startedAt }
    const at = this.terminals.findIndex((x) => x.address === address)
    if (at >= 0) this.terminals[at] = t
    else this.terminals.push(t)
    return t
  }

  async waitForSessions(timeoutMs = 20_000): Promise<void> {
    await waitUntil(() => this.terminals.every((t) => t.device.link.status.state === 'open'), { timeoutMs, what: 'terminal sessions' })
  }

  /** Presses `kind` on terminal `index` and returns the event's number; an alarm goes on the record the delivery check reads. */
  press(index: number, kind: EventKind = 'emergency'): number {
    const t = this.terminals[index]!
    const e = t.device.press(kind)
    t.running.wake()
    if (CLASS_OF[kind] === 'alarm') this.delivery.press(t.id, e.number)
    return e.number
  }

  /** Copies of alarms on the wire beyond the first of each id (republications, replays). */
  duplicatesOnWire(): number {
    return [...this.copies.values()].reduce((n, c) => n + c - 1, 0)
  }

  /** Resolves once every alarm pressed has reached the console; throws naming the missing ones after `timeoutMs`. */
  async waitForAll(timeoutMs = 60_000): Promise<void> {
    const missing = () => this.delivery.outstanding(this.terminals).arrive
    await waitUntil(() => missing().length === 0, { timeoutMs, what: () => `every alarm at the console; missing: ${missing().join(', ')}` })
  }

  /**
   * Waits for what is on its way (the alarms to the console, then their stage at the
   * terminals, then the terminals' memory to empty; a wait that runs out ends the waiting),
   * then checks the promise. Resolves with the promises broken: none when it held.
   */
  async checkDelivery(opts: DeliveryWait = {}): Promise<Broken[]> {
    const out = () => this.delivery.outstanding(this.terminals, opts.stage)
    const phases: [() => boolean, number][] = [
      [() => out().arrive.length === 0, opts.timeoutMs ?? 60_000],
      [() => out().show.length === 0, 30_000],
      // A terminal may show `received` while the ACK of its own EVENT was lost on the line:
      // its NV memory clears at the next retransmission (up to ~7 s at 9600 baud).
      [() => out().memory.length === 0, 30_000],
    ]
    for (const [done, timeoutMs] of phases) if (!(await holdsWithin(done, { timeoutMs, intervalMs: 20 }))) break
    return this.delivery.verdict(this.terminals, opts)
  }

  /** The promise of the product (loop/delivery.ts), or a DeliveryBrokenError. Returns the duplicate copies that reached the wire. */
  async expectEveryAlarmDelivered(opts: DeliveryWait = {}): Promise<number> {
    const broken = await this.checkDelivery(opts)
    if (broken.length > 0) throw new DeliveryBrokenError(broken)
    return this.duplicatesOnWire()
  }

  /** Asks the gateway for its status now, as the platform may ([MQTT-5.10]): a `status-request` on its command topic. */
  async sendStatusRequest(): Promise<void> {
    const tag = `${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`
    const client = await mqtt.connectAsync(this.brokerUrl, { ...this.platformCredentials, clientId: `status-${tag}`, clean: true, reconnectPeriod: 0 })
    try {
      const topic = gatewayTopics(this.prefix, this.gatewayId).command
      const command = { v: 1 as const, id: `status-${tag}`, type: 'status-request' as const }
      // Signed like every command of a signed loop [MQTT-5.12]: the gateway takes no other.
      const signer = this.keys ? signerFromFile(this.keys.privatePath, this.prefix, Date.now) : null
      await client.publishAsync(topic, commandPayload(command, topic, signer), { qos: 1 })
    } finally {
      await client.endAsync()
    }
  }

  /** Stops everything the loop started, each step tried whatever the one before did. */
  async close(): Promise<void> {
    this.#closing = true
    const steps: (() => Promise<unknown> | unknown)[] = [
      ...[...new Set(this.terminals.map((t) => t.running))].map((r) => () => r.stop()),
      ...[...this.#gateways].map((g) => () => g.kill('SIGKILL')),
      () => this.#console?.close(),
      () => this.weak?.stop(),
      () => typeof this.options.broker === 'string' && this.broker?.close(),
      () => this.pty?.close(),
      () => this.#ownDir && rmSync(this.dir, { recursive: true, force: true }),
    ]
    for (const s of steps) {
      try {
        await s()
      } catch {
        // Tear-down is best effort; the run's result is already decided.
      }
    }
  }
}

/** Starts a loop; closes what was started if the start fails. */
/** The key pair in `dir`: the one there (a loop started again on the same directory), or a new one. */
function ensureKeyPair(dir: string): { keyId: string; privatePath: string; publicPath: string } {
  const privatePath = join(dir, 'platform.key')
  const publicPath = join(dir, 'platform.pub')
  if (existsSync(privatePath) && existsSync(publicPath)) return { keyId: keyId(parsePublicKey(readFileSync(publicPath, 'utf8'))), privatePath, publicPath }
  return writeKeyPair(dir)
}

export async function startLoop(options: LoopOptions): Promise<Loop> {
  const loop = new Loop(options)
  try {
    return await loop.start()
  } catch (e) {
    await loop.close()
    throw e
  }
}

/**
 * Asks the gateway for its status now (`status-request`, as the platform would,
 * [MQTT-5.10]) and resolves with the payload the console receives: the serial link
 * counters under `serial` (wire error codes, retransmissions, duplicates ...), the store's
 * `counters`, the terminals.
 */
export async function requestGatewayStatus(loop: Loop, opts: { timeoutMs?: number } = {}): Promise<Record<string, unknown>> {
  const gateway = loop.gatewayId
  const seen = () => loop.events.filter((e) => e.type === 'status' && e.scope === 'gateway' && e.gateway === gateway).length
  const before = seen()
  await loop.sendStatusRequest()
  await waitUntil(() => seen() > before, { timeoutMs: opts.timeoutMs ?? 15_000, what: `a status from gateway ${gateway}` })
  const status = loop.console.snapshot().gateways.find((g) => g.gateway === gateway)?.status
  if (!status) throw new Error(`the console has no status of gateway ${gateway}`)
  return status
}
