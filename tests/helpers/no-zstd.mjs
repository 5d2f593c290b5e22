/**
 * `node --import <this file> dist/cli/main.js gateway ...`: a gateway process on which zstd
 * cannot be loaded, as on 32-bit ARM, where @mongodb-js/zstd has no binary. See
 * no-zstd-hooks.mjs for what it changes; tests/gateway-no-zstd.e2e.test.ts uses it.
 */

import { register } from 'node:module'

register('./no-zstd-hooks.mjs', import.meta.url)
