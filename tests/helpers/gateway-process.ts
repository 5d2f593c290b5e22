export * from '../../device-sim/gateway-process.js'
