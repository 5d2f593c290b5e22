#!/usr/bin/env node
/**
 * `steppelink`: one command, several subcommands. Each subcommand lives in its own file and
 * is loaded only when asked for, so that `steppelink --help` on a board starts fast.
 */

import { version } from '../gateway/version.js'

interface Subcommand {
  summary: string
  run: (args: string[]) => Promise<number>
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  decode: {
    summary: 'decode serial-link bytes (hex) into frames, as the gateway would read them',
    run: async (args) => (await import('./link-tools.js')).decodeCommand(args),
  },
  encode: {
    summary: 'encode a frame given as JSON into serial-link bytes (hex)',
    run: async (args) => (await import('./link-tools.js')).encodeCommand(args),
  },
  gateway: {
    summary: 'run the center-household gateway: serial in, durable store-and-forward, MQTT out, answers back',
    run: async (args) => (await import('./gateway-command.js')).gatewayCommand(args),
  },
  sim: {
    summary: 'simulators: `sim terminal` (a one-button terminal on a serial device), `sim link` (a weak uplink)',
    run: async ([what, ...rest]) => {
      if (what === 'terminal') return (await import('./sim-terminal-command.js')).simTerminalCommand(rest)
      if (what === 'link') return (await import('./sim-link-command.js')).simLinkCommand(rest)
      const out = what === undefined || what === '--help' || what === '-h' ? console.log : console.error
      out(
        "Usage: steppelink sim terminal [options]   a one-button terminal on a serial device (see 'steppelink sim terminal --help')\n       steppelink sim link [options]       a TCP proxy that makes a good link bad (see 'steppelink sim link --help')",
      )
      return what === undefined || what === '--help' || what === '-h' ? 0 : 2
    },
  },
  terminals: {
    summary: "the gateway's terminal bindings: `terminals list`, `terminals rebind ID ADDRESS` after a terminal was re-wired",
    run: async (args) => (await import('./terminals-command.js')).terminalsCommand(args),
  },
  status: {
    summary: "the running gateway at a glance: would an alarm get through, uplink, terminals, open alerts; the page's address and PIN",
    run: async (args) => (await import('./household-commands.js')).statusCommand(args),
  },
  relay: {
    summary: 'relay an alarm or a request for a neighbour household through the running gateway',
    run: async (args) => (await import('./household-commands.js')).relayCommand(args),
  },
  inbox: {
    summary: "the platform's broadcasts on the running gateway: list, `inbox read ID`, `inbox passed-on ID --households N`",
    run: async (args) => (await import('./household-commands.js')).inboxCommand(args),
  },
  doctor: {
    summary: 'check this board for the gateway: config, serial device and terminal, store, clock, broker (DNS, TCP, TLS, credentials); what to do',
    run: async (args) => (await import('./doctor-command.js')).doctorCommand(args),
  },
  selftest: {
    summary: 'does this copy run on this machine: the runtime and every native module (store, serial, zstd, cbor); --data DIR: can it open that store',
    run: async (args) => (await import('./selftest-command.js')).selftestCommand(args),
  },
  console: {
    summary: 'the platform side: receive alarms, send receipts, acknowledge, dispatch, resolve, broadcast, key-rotate',
    run: async (args) => (await import('./console-command.js')).consoleCommand(args),
  },
  'broker-acl': {
    summary: 'write the mosquitto ACL file of the topic permissions for a list of gateways and their areas',
    run: async (args) => (await import('./broker-acl-command.js')).brokerAclCommand(args),
  },
  keygen: {
    summary: 'make a platform key pair for signed commands: platform.key for the console, platform.pub for the gateways',
    run: async (args) => (await import('./keygen-command.js')).keygenCommand(args),
  },
  demo: {
    summary: 'the whole alarm loop on this machine: broker, gateway, terminal on a pseudo-terminal, console',
    run: async (args) => (await import('./demo-command.js')).demoCommand(args),
  },
}

function usage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((n) => n.length))
  return [
    "steppelink: carries an emergency alarm from a herder's button to the county 110 platform.",
    '',
    'Usage: steppelink <command> [options]     steppelink <command> --help',
    '',
    'Commands:',
    ...Object.entries(SUBCOMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  --help, -h      this help',
    '  --version, -v   print the version',
    '',
    'The gateway, the simulators and the operator console are described in README.md.',
  ].join('\n')
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage())
    return 0
  }
  if (name === '--version' || name === '-v') {
    console.log(version())
    return 0
  }
  const command = SUBCOMMANDS[name]
  if (!command) {
    console.error(`steppelink: unknown command '${name}'. Known commands: ${Object.keys(SUBCOMMANDS).join(', ')}. Try 'steppelink --help'.`)
    return 2
  }
  return command.run(rest)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    console.error(`steppelink: ${(err as Error)?.stack ?? String(err)}`)
    process.exitCode = 1
  },
)
