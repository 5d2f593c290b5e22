/**
 * `steppelink broker-acl`: writes the mosquitto ACL file of the topic permissions
 * ([MQTT-2.7]-[MQTT-2.10], protocol/mqtt-acl.ts) for a list of gateways and their areas.
 * mosquitto's `%u` patterns give every gateway its own topics; its area needs a line of its
 * own, so the file is made again whenever a gateway is added or changes area.
 */

import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { DEFAULT_TOPIC_PREFIX, TOPIC_PREFIX_PATTERN, TOPIC_PREFIX_RULE, mosquittoAcl, parseGatewayList } from '../protocol/mqtt.js'
import { USAGE_EXIT, parseArgsError, usageLine } from './usage.js'

const HELP = `Usage: steppelink broker-acl [--gateways FILE] [--platform USER]... [--prefix P] [--out FILE]

Writes the mosquitto ACL file (acl_file) of Steppelink's topic permissions (protocol/MQTT.md
[MQTT-2.7]-[MQTT-2.10]): each gateway publishes only its own uplink and reads its own, its
area's and all commands; only the platform users publish commands; default deny.

Options:
  --gateways FILE   the gateways, one a line: "<gateway id> [<area>]" ("#" starts a comment).
                    A gateway with an area gets a user block for it; one without needs no line.
                    Default: none (the file shipped as deploy/mosquitto/acl).
  --platform USER   a broker user name (or certificate CN) of the platform role; repeat for
                    several. Default: platform
  --prefix P        the topic prefix (the gateways' mqtt.prefix). Default: ${DEFAULT_TOPIC_PREFIX}
  --out FILE        write here instead of standard output

Example:
  steppelink broker-acl --gateways /etc/steppelink/gateways.txt --out /etc/mosquitto/steppelink.acl
  sudo systemctl reload mosquitto        # mosquitto reads acl_file again on SIGHUP`

export async function brokerAclCommand(args: string[]): Promise<number> {
  let values: { help?: boolean; gateways?: string; platform?: string[]; prefix?: string; out?: string }
  try {
    values = parseArgs({
      args,
      options: {
        help: { type: 'boolean', short: 'h' },
        gateways: { type: 'string' },
        platform: { type: 'string', multiple: true },
        prefix: { type: 'string' },
        out: { type: 'string' },
      },
    }).values
  } catch (e) {
    console.error(usageLine('broker-acl', parseArgsError(e).message))
    return USAGE_EXIT
  }
  if (values.help) {
    console.log(HELP)
    return 0
  }
  const prefix = values.prefix ?? DEFAULT_TOPIC_PREFIX
  if (!new RegExp(TOPIC_PREFIX_PATTERN).test(prefix)) {
    console.error(usageLine('broker-acl', `--prefix must be ${TOPIC_PREFIX_RULE}, got '${prefix}'`))
    return USAGE_EXIT
  }
  let gateways: { id: string; area: string | null }[] = []
  if (values.gateways !== undefined) {
    let text: string
    try {
      text = readFileSync(values.gateways, 'utf8')
    } catch (e) {
      console.error(`steppelink broker-acl: cannot read ${values.gateways}: ${(e as Error).message}`)
      return 1
    }
    const parsed = parseGatewayList(text)
    if (!parsed.ok) {
      console.error(`steppelink broker-acl: ${values.gateways}: ${parsed.error}`)
      return 1
    }
    gateways = parsed.gateways
  }
  let acl: string
  try {
    acl = mosquittoAcl({ prefix, platformUsers: values.platform ?? ['platform'], gateways })
  } catch (e) {
    console.error(`steppelink broker-acl: ${(e as Error).message}`)
    return 1
  }
  if (values.out === undefined) process.stdout.write(acl)
  else writeFileSync(values.out, acl)
  return 0
}
