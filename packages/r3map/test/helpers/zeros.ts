import { type BlockDevice, checkRange } from '../../src/index.js';

/**
 * A device of any size that holds no data: reads are zeros, writes and trims are recorded (offset and
 * length, not the bytes). For the production paths that scale with a device's size (a migration's dirty
 * sets of a 4 TiB device) without 4 TiB of backing.
 */
export class ZeroDevice implements BlockDevice {
  readonly writes: { offset: number; length: number }[] = [];
  readonly trims: { offset: number; length: number }[] = [];
  constructor(readonly size: number) {}
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.size, offset, length, 'read');
    return new Uint8Array(length);
  }
  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    checkRange(this.size, offset, bytes.length, 'write');
    this.writes.push({ offset, length: bytes.length });
  }
  async trim(offset: number, length: number): Promise<void> {
    checkRange(this.size, offset, length, 'trim');
    this.trims.push({ offset, length });
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}
