// Starts and stops a standalone ZooKeeper and a one-member etcd on 127.0.0.1 (scripts/services) for the
// tests and benches that need them. Each gets a fresh data directory and a random port, and stop()
// kills it and removes the data.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const scripts = new URL('../../../../scripts/services/', import.meta.url).pathname;
const startTimeoutMs = 90_000;
const stopTimeoutMs = 30_000;

export type ServiceKind = 'zookeeper' | 'etcd';

const need: Record<ServiceKind, { check: string; apt: string }> = {
  zookeeper: { check: 'test -r /usr/share/java/zookeeper.jar && command -v java', apt: 'zookeeper' },
  etcd: { check: 'command -v etcd && command -v curl', apt: 'etcd-server curl' },
};

/** True when the service can run here; under CI a missing one is an error, not a skip. */
export function serviceAvailable(kind: ServiceKind): boolean {
  const have = spawnSync('sh', ['-c', need[kind].check], { stdio: 'ignore' }).status === 0;
  if (!have && process.env.CI)
    throw new Error(
      `CI: ${kind} is not installed: apt-get install -y ${need[kind].apt} (see .ci/apt/vlog.txt)`,
    );
  return have;
}

export interface Service {
  /** `127.0.0.1:PORT` */
  address: string;
  pid: number;
  stop(): void;
}

/** Starts the service on a free-looking port; retries on another port if that one was taken. */
export function startService(kind: ServiceKind): Service {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), `strata-${kind}-`));
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const args = kind === 'etcd' ? [dir, String(port), String(port + 1)] : [dir, String(port)];
    try {
      const out = execFileSync('bash', [join(scripts, `${kind}-up.sh`), ...args], {
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: startTimeoutMs,
      });
      const pid = Number(out.toString().trim().split('\n').pop());
      return {
        address: `127.0.0.1:${port}`,
        pid,
        stop: () =>
          void spawnSync('bash', [join(scripts, `${kind}-down.sh`), dir], {
            stdio: 'ignore',
            timeout: stopTimeoutMs,
          }),
      };
    } catch (e) {
      lastError = e;
      // most likely the port was taken: clean up and try another
      spawnSync('bash', [join(scripts, `${kind}-down.sh`), dir], { stdio: 'ignore', timeout: stopTimeoutMs });
    }
  }
  throw new Error(`could not start ${kind}: ${(lastError as Error).message}`);
}
