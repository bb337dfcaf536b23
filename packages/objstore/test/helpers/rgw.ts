// Starts and stops a one-machine Ceph RGW (../shared/services) on 127.0.0.1 for the s3: tests.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

const services = new URL('../../../../../shared/services/', import.meta.url).pathname;

/** True when RGW can run here; under CI a missing RGW is an error, not a skip. */
export function rgwAvailable(): boolean {
  const have =
    spawnSync('sh', [
      '-c',
      'command -v radosgw && command -v ceph-mon && command -v uuidgen && command -v curl',
    ]).status === 0;
  const scripts = existsSync(join(services, 'ceph-rgw-up.sh'));
  if ((!have || !scripts) && process.env.CI)
    throw new Error(
      'CI: Ceph RGW is not installed (see .ci/apt/objstore.txt) or ../shared/services is missing',
    );
  return have && scripts;
}

export interface Rgw {
  endpoint: string;
  bucket: string;
  stop(): void;
}

export async function startRgw(): Promise<Rgw> {
  const D = mkdtempSync(join(tmpdir(), 'strata-rgw-'));
  const port = String(17480 + Math.floor(Math.random() * 2000));
  const env = { ...process.env, D, RGW_PORT: port, BLOCK_BYTES: String(4 * 2 ** 30) };
  execFileSync('bash', [join(services, 'ceph-rgw-up.sh')], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 240_000,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const bucket = 'strata-test';
  const c = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'testkey', secretAccessKey: 'testsecret' },
  });
  await c.send(new CreateBucketCommand({ Bucket: bucket }));
  c.destroy();
  return {
    endpoint,
    bucket,
    stop: () =>
      void spawnSync('bash', [join(services, 'ceph-rgw-down.sh')], { env, stdio: 'ignore', timeout: 60_000 }),
  };
}
