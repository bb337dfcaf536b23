/** `bytes` of a linear congruential sequence from `seed` (4 bytes a step): a device image no two seeds share. */
export function image(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  let s = seed;
  for (let i = 0; i < bytes; i += 4) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    b.writeUInt32LE(s, i);
  }
  return b;
}
