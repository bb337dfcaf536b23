/**
 * The cost and latency model: the monthly bill of a workload on S3 Standard, on S3 Express One Zone, and
 * on express WAL + standard packs, from the dated price table in data/prices.json.
 */
import { readFileSync } from 'node:fs';

export interface TierPrices {
  storagePerGbMonth: number;
  putPer1000: number;
  getPer1000: number;
  listPer1000: number;
  uploadPerGbOver512KiB: number;
  retrievalPerGbOver512KiB: number;
}

export interface PriceTable {
  date: string;
  region: string;
  source: string;
  tiers: { standard: TierPrices; express: TierPrices };
  latencyMs: Record<'standard' | 'express', { p50: number; p99: number; note: string }>;
}

export interface Workload {
  /** Object writes per second and the size of each. */
  writesPerSecond: number;
  writeBytes: number;
  /** Object reads per second and the size of each. */
  readsPerSecond?: number;
  readBytes?: number;
  /** How long written data is kept. */
  retainDays: number;
  /** WAL group-commit interval (one express PUT per commit) and pack size (one standard PUT per pack). */
  walFlushMs?: number;
  walPackBytes?: number;
}

export function loadPrices(): PriceTable {
  return JSON.parse(readFileSync(new URL('../data/prices.json', import.meta.url), 'utf8')) as PriceTable;
}

const SECONDS_PER_MONTH = 30 * 86400;
const GB = 2 ** 30;
const HALF_MIB = 512 * 1024;

export interface CostLine {
  option: string;
  requests: number;
  transfer: number;
  storage: number;
  total: number;
  putsPerMonth: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/** A workload's fields: required, and whether 0 is allowed (an interval or a pack size of 0 is none). */
const workloadFields: Record<keyof Workload, { required: boolean; zero: boolean }> = {
  writesPerSecond: { required: true, zero: true },
  writeBytes: { required: true, zero: true },
  readsPerSecond: { required: false, zero: true },
  readBytes: { required: false, zero: true },
  retainDays: { required: true, zero: true },
  walFlushMs: { required: false, zero: false },
  walPackBytes: { required: false, zero: false },
};

/**
 * Every field a finite number (JSON's 1e400 is Infinity, which priced as $Infinity and $NaN), >= 0 or > 0
 * as it allows; an optional one was not checked (a negative read rate took requests off the bill, a WAL
 * interval of 0 made one commit per write at any rate) and a misspelt one was ignored.
 */
function validate(w: Workload): void {
  if (typeof w !== 'object' || w === null || Array.isArray(w))
    throw new TypeError(`workload: expected an object, got ${JSON.stringify(w)}`);
  for (const k of Object.keys(w))
    if (!Object.hasOwn(workloadFields, k))
      throw new TypeError(
        `workload: unknown field '${k}' (the fields: ${Object.keys(workloadFields).join(', ')})`,
      );
  for (const [k, f] of Object.entries(workloadFields) as [
    keyof Workload,
    { required: boolean; zero: boolean },
  ][]) {
    const v = w[k];
    if (v === undefined && !f.required) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || !(f.zero ? v >= 0 : v > 0))
      throw new TypeError(
        `workload: '${k}' must be a finite number ${f.zero ? '>= 0' : '> 0'}, got ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`,
      );
  }
}

/** The monthly bill of `w` for each option. */
export function costReport(w: Workload, p: PriceTable = loadPrices()): CostLine[] {
  validate(w);
  const { standard: S, express: E } = p.tiers;
  const writes = w.writesPerSecond * SECONDS_PER_MONTH;
  const reads = (w.readsPerSecond ?? 0) * SECONDS_PER_MONTH;
  const readBytes = w.readBytes ?? w.writeBytes;
  const storedGb = (w.writesPerSecond * w.writeBytes * Math.min(w.retainDays, 30) * 86400) / GB;
  const over = (bytes: number) => Math.max(0, bytes - HALF_MIB) / GB;
  const line = (
    option: string,
    requests: number,
    transfer: number,
    storage: number,
    puts: number,
    lat: 'standard' | 'express',
  ): CostLine => ({
    option,
    requests,
    transfer,
    storage,
    total: requests + transfer + storage,
    putsPerMonth: puts,
    latencyP50Ms: p.latencyMs[lat].p50,
    latencyP99Ms: p.latencyMs[lat].p99,
  });
  const std = line(
    'S3 Standard, direct PUTs',
    (writes * S.putPer1000 + reads * S.getPer1000) / 1000,
    0,
    storedGb * S.storagePerGbMonth,
    writes,
    'standard',
  );
  const exp = line(
    'S3 Express One Zone, direct PUTs',
    (writes * E.putPer1000 + reads * E.getPer1000) / 1000,
    writes * over(w.writeBytes) * E.uploadPerGbOver512KiB +
      reads * over(readBytes) * E.retrievalPerGbOver512KiB,
    storedGb * E.storagePerGbMonth,
    writes,
    'express',
  );
  // WAL: one express PUT per group commit (bounded by the write rate), one standard PUT per pack.
  const flushMs = w.walFlushMs ?? 100;
  const packBytes = w.walPackBytes ?? 64 * 2 ** 20;
  const commitsPerSec = Math.min(w.writesPerSecond, 1000 / flushMs);
  const commitBytes = commitsPerSec > 0 ? (w.writesPerSecond * w.writeBytes) / commitsPerSec : 0;
  const walPuts = commitsPerSec * SECONDS_PER_MONTH;
  const packs = (w.writesPerSecond * w.writeBytes * SECONDS_PER_MONTH) / packBytes;
  const walStoredGb = (w.writesPerSecond * w.writeBytes * 3600) / GB; // at most an hour of WAL before packing
  const wal = line(
    'express WAL + standard packs',
    (walPuts * E.putPer1000 + packs * S.putPer1000 + reads * S.getPer1000) / 1000,
    walPuts * over(commitBytes) * E.uploadPerGbOver512KiB,
    walStoredGb * E.storagePerGbMonth + storedGb * S.storagePerGbMonth,
    walPuts + packs,
    'express',
  );
  return [std, exp, wal];
}
