/**
 * `steppelink terminals`: the terminal bindings of a gateway's store, for the technician
 * at the board. `list` shows which terminal id is bound to which serial address; `rebind`
 * moves a binding after the terminal was honestly re-wired to another address. [LINK-7.4]
 *
 * The binding is the one thing the serial line cannot be trusted to change (anyone on the
 * cable can claim an id), so it changes only here, by a person at the board. The store is
 * locked to one process while the gateway runs, so the gateway is stopped first; it reads
 * the bindings when it starts again. The terminals keep their alarms in their memory
 * meanwhile and send them when the gateway is back.
 */

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { KnownTerminals } from '../gateway/known-terminals.js'
import { SqliteStore, StoreError } from '../gateway/sqlite-store.js'
import { parseArgsError, reportUsage, UsageError } from './usage.js'

const HELP = `Usage: steppelink terminals list --data DIR
       steppelink terminals rebind ID ADDRESS --data DIR

The terminal bindings of the gateway whose store is in DIR (the gateway's --data, e.g.
/var/lib/steppelink). A terminal id is bound to the serial address it was first heard at;
a second device that claims the id from another address never acts as that terminal: its
events are filed apart, as ID@GATEWAY.aADDRESS, and the platform is told
(terminal-id-conflict). See PROTOCOL.md [LINK-7.4].

  list                 every binding, and what answered at each address when the gateway stopped
  rebind ID ADDRESS    the terminal ID was re-wired to ADDRESS (1-254): bind it there. What
                       was known of it at its old address, and of whatever answered at ADDRESS,
                       is forgotten; its alarms at the platform keep their ids.

Stop the gateway first (the store is locked while it runs), start it again after.

Options:
  --data DIR   the gateway's data directory (required)
  --help, -h   this help`

export interface TerminalsCommandIo {
  stdout: (line: string) => void
  stderr: (line: string) => void
}

const DEFAULT_IO: TerminalsCommandIo = { stdout: (l) => console.log(l), stderr: (l) => console.error(l) }

export async function terminalsCommand(args: string[], io: TerminalsCommandIo = DEFAULT_IO): Promise<number> {
  let what: string | undefined
  let rest: string[]
  let data: string
  try {
    const { values, positionals } = (() => {
      try {
        return parseArgs({ args, allowPositionals: true, options: { data: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
      } catch (e) {
        throw parseArgsError(e)
      }
    })()
    if (values.help) {
      io.stdout(HELP)
      return 0
    }
    ;[what, ...rest] = positionals
    if (what !== 'list' && what !== 'rebind') throw new UsageError(what === undefined ? 'say list or rebind' : `unknown subcommand '${what}': say list or rebind`)
    if (values.data === undefined) throw new UsageError('--data DIR is required: the directory of the gateway store')
    data = values.data
    if (what === 'list' && rest.length > 0) throw new UsageError(`list takes no arguments, got '${rest.join(' ')}'`)
    if (what === 'rebind') {
      if (rest.length !== 2) throw new UsageError('rebind takes a terminal id and an address: rebind ID ADDRESS')
      if (!/^[A-Za-z0-9._:-]{1,32}$/.test(rest[0]!)) throw new UsageError(`'${rest[0]}' is not a terminal id (1-32 of A-Z a-z 0-9 . _ : -)`)
      if (!/^[0-9]{1,3}$/.test(rest[1]!) || Number(rest[1]) < 1 || Number(rest[1]) > 254) throw new UsageError(`the address must be 1-254, got '${rest[1]}'`)
    }
  } catch (e) {
    return reportUsage(io.stderr, 'terminals', e)
  }
  const path = join(data, 'gateway.db')
  if (!existsSync(path)) {
    io.stderr(`steppelink terminals: no gateway store at ${path}: is --data the gateway's data directory?`)
    return 1
  }
  let store: SqliteStore
  try {
    store = new SqliteStore({ path })
  } catch (err) {
    io.stderr(
      `steppelink terminals: ${err instanceof StoreError && err.code === 'STORE_LOCKED' ? `${path} is in use: stop the gateway first, then run this again, then start the gateway.` : (err as Error).message}`,
    )
    return 1
  }
  try {
    const known = new KnownTerminals(store)
    known.load()
    if (what === 'rebind') {
      const terminal = rest[0]!
      const address = Number(rest[1])
      const { was } = known.rebind(terminal, address)
      io.stdout(
        was === address
          ? `${terminal} was already bound to address ${address}; what else was known at that address is forgotten`
          : `${terminal} is now bound to address ${address}${was === undefined ? ' (it was not bound before)' : ` (was ${was})`}. Start the gateway again.`,
      )
      return 0
    }
    const bindings = known.bindings().sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))
    if (bindings.length === 0) io.stdout('no terminal has been heard yet: nothing is bound')
    for (const [terminal, address] of bindings)
      io.stdout(`${terminal}\tbound to address ${address}${known.at(address)?.terminal === terminal ? '' : '\t(not answering there when the gateway stopped)'}`)
    for (const t of known.values()) if (t.claims !== undefined) io.stdout(`${t.terminal}\tat address ${t.address}: a second claimant of ${t.claims} (bound to ${known.boundAddress(t.claims)})`)
    return 0
  } finally {
    store.close()
  }
}
