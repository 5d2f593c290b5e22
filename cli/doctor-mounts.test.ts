/** `steppelink doctor`'s store check against where the store lives (issue 14, a read-only root): RAM is a failure, an overlay a warning. */

import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { GatewayConfig } from '../gateway/config.js'
import { checkDataDir, mountOf } from './doctor-checks.js'

const MOUNTS = [
  '/dev/mmcblk0p2 / ext4 ro,noatime 0 0',
  'overlayroot / overlay rw,relatime,lowerdir=/media/root-ro,upperdir=/media/root-rw/overlay 0 0',
  'tmpfs /run tmpfs rw,nosuid,nodev 0 0',
  '/dev/mmcblk0p3 /var/lib/steppelink ext4 rw,noatime,commit=5 0 0',
  '/dev/sda1 /mnt/usb\\040stick vfat rw 0 0',
].join('\n')

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('where the store lives', () => {
  it('finds the mount that holds a directory: the longest prefix, the later of two on one point, escapes read', () => {
    expect(mountOf('/var/lib/steppelink', MOUNTS)).toEqual({ mountpoint: '/var/lib/steppelink', fstype: 'ext4' })
    expect(mountOf('/var/lib/steppelink-old', MOUNTS)).toEqual({ mountpoint: '/', fstype: 'overlay' })
    expect(mountOf('/run/steppelink', MOUNTS)).toEqual({ mountpoint: '/run', fstype: 'tmpfs' })
    expect(mountOf('/mnt/usb stick/data', MOUNTS)).toEqual({ mountpoint: '/mnt/usb stick', fstype: 'vfat' })
    expect(mountOf('/x', '')).toBeNull()
  })

  it('fails a store in RAM, warns of one on an overlay, and passes one on its own partition', () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'steppelink-mounts-')))
    dirs.push(dir)
    const config = { data: dir } as GatewayConfig
    const inRam = checkDataDir(config, 1000, `/dev/vda / ext4 rw 0 0\ntmpfs ${dir} tmpfs rw 0 0`)
    expect(inRam.level).toBe('fail')
    expect(inRam.text).toMatch(/is in RAM \(tmpfs on .*\): the store, and every alarm in it, would be gone at a reboot/)
    expect(inRam.fix).toMatch(/A read-only root/)
    const overlay = checkDataDir(config, 1000, 'overlayroot / overlay rw 0 0')
    expect(overlay.level).toBe('warn')
    expect(overlay.text).toMatch(/on an overlay/)
    expect(checkDataDir(config, 1000, `overlayroot / overlay rw 0 0\n/dev/mmcblk0p3 ${dir} ext4 rw 0 0`).level).toBe('ok')
  })
})
