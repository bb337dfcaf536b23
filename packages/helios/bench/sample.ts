// The loghub HDFS sample the helios benches scale up, from ../shared beside the repo.
import { existsSync, readFileSync } from 'node:fs';

/** The non-empty lines of loghub's HDFS_2k.log. */
export function hdfsSampleLines(): string[] {
  const path = new URL('../../../../shared/data/loghub/HDFS/HDFS_2k.log', import.meta.url).pathname;
  if (!existsSync(path)) throw new Error(`bench: the loghub HDFS sample is missing (${path})`);
  return readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.length > 0);
}
