/**
 * Module resolution hooks (node:module `register`) for no-zstd.mjs:
 *
 * - `@mongodb-js/zstd` resolves to a module that throws on import, with the error the
 *   package gives where it has no binary for the platform;
 * - the gateway's compression module gets `node:zlib` without zstd, as Node.js 20 has it,
 *   so that on a later Node.js (22.15 / 23.8 and up, which has zstd built in) the gateway
 *   still has no zstd at all.
 */

const dataModule = (source) => `data:text/javascript,${encodeURIComponent(source)}`

const NO_BINDING = dataModule(`throw new Error("Cannot find module '@mongodb-js/zstd-linux-arm-gnueabihf' (made unloadable by tests/helpers/no-zstd.mjs)")`)
const ZLIB_WITHOUT_ZSTD = dataModule(`import zlib from 'node:zlib'\nexport default { ...zlib, zstdCompress: undefined, zstdCompressSync: undefined }\n`)

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@mongodb-js/zstd') return { url: NO_BINDING, shortCircuit: true }
  if ((specifier === 'node:zlib' || specifier === 'zlib') && context.parentURL?.endsWith('/gateway/compression.js')) {
    return { url: ZLIB_WITHOUT_ZSTD, shortCircuit: true }
  }
  return nextResolve(specifier, context)
}
