// The pty pair lives with the simulators (the demo uses it too).
export * from '../../device-sim/pty.js'
