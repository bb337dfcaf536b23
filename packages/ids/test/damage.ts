// Captures damaged at random for the fuzz tests: a seeded generator, and packets with bytes changed, cut,
// protocol words spliced in, some held back and replayed late.
import type { Packet } from '../src/index.js';

/** A small seeded generator of numbers in [0, 1) (mulberry32), so that a failing seed replays exactly. */
export function mulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `packets` with a share `rate` damaged (bytes changed, half of them in the first 80; cut; one of `words`
 * spliced into the payload) and some held back and replayed later, in the order they are to be pushed.
 */
export function damaged(packets: Packet[], rate: number, next: () => number, words: string[]): Packet[] {
  const out: Packet[] = [];
  const held: Packet[] = [];
  for (const p of packets) {
    let data = p.data;
    if (next() < rate) {
      data = Uint8Array.from(data);
      for (let k = 1 + Math.floor(next() * 4); k > 0; k--) {
        const at = next() < 0.5 ? next() * Math.min(80, data.length) : next() * data.length;
        data[Math.floor(at)] = Math.floor(next() * 256);
      }
      if (next() < 0.1) data = data.subarray(0, Math.floor(next() * data.length));
      if (next() < 0.3 && data.length > 60) {
        const w = words[Math.floor(next() * words.length)]!;
        const at = 54 + Math.floor(next() * (data.length - 54));
        for (let k = 0; k < w.length && at + k < data.length; k++) data[at + k] = w.charCodeAt(k);
      }
    }
    if (next() < rate / 4) {
      held.push({ ...p, data });
      continue;
    }
    if (held.length > 0 && next() < 0.3) for (const h of held.splice(0)) out.push(h);
    out.push({ ...p, data });
  }
  for (const h of held) out.push(h);
  return out;
}
