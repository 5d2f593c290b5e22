/**
 * The real gateway (`node dist/cli/main.js gateway`, a child process) on one end of a socat
 * pseudo-terminal pair, its store in `dataDir`, its uplink to `broker`: how the outage and
 * backlog benchmarks run it. The other end of the pair (`pty.b`) is free for a terminal.
 */

import { startGateway, type GatewayProcess } from '../../device-sim/gateway-process.js'
import { openPtyPair, type PtyPair } from '../../device-sim/pty.js'

export interface GatewayOnPty {
  gateway: GatewayProcess
  pty: PtyPair
  /** SIGKILLs the gateway (no death over a slow link to wait for) and closes the pty pair. */
  close(): Promise<void>
}

/** `args`: more gateway flags (a `--log-level` among them replaces the default, info). */
export async function startGatewayOnPty(opts: { dataDir: string; broker: string; id: string; args?: readonly string[] }): Promise<GatewayOnPty> {
  const pty = await openPtyPair()
  let gateway: GatewayProcess | undefined
  const close = async () => {
    await gateway?.kill('SIGKILL')
    await pty.close()
  }
  try {
    gateway = startGateway([
      '--serial',
      pty.a,
      '--broker',
      opts.broker,
      '--id',
      opts.id,
      '--data',
      opts.dataDir,
      // The household page on loopback at a free port: benchmark gateways never take 0.0.0.0:8080.
      '--household-listen',
      '127.0.0.1',
      '--household-port',
      '0',
      ...(opts.args?.includes('--log-level') ? [] : ['--log-level', 'info']),
      ...(opts.args ?? []),
    ])
    await gateway.waitForLog((l) => l.msg === 'gateway ready', 'ready')
    return { gateway, pty, close }
  } catch (e) {
    await close()
    throw e
  }
}
