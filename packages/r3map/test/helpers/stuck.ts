import type { BlockDevice } from '../../src/index.js';

/** A device whose reads never end: a server over it takes a READ and answers nothing (a stopped process). */
export function stuckDevice(size: number): BlockDevice {
  return {
    size,
    readAt: () => new Promise<Uint8Array>(() => undefined),
    writeAt: async () => undefined,
    flush: async () => undefined,
    trim: async () => undefined,
    close: async () => undefined,
  };
}
