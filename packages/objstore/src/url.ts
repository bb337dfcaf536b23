import { resolve } from 'node:path';
import { FileStore } from './backends/file.js';
import { MemStore } from './backends/mem.js';
import type { ObjectStore } from './contract.js';

/** A parsed storage location. */
export type StoreLocation =
  | { kind: 'file'; path: string }
  | { kind: 'mem'; name?: string }
  | {
      kind: 's3';
      bucket: string;
      prefix: string;
      endpoint?: string;
      region: string;
      accessKeyId?: string;
      secretAccessKey?: string;
    };

export class StoreUrlError extends Error {
  override name = 'StoreUrlError';
}

/**
 * The one parser for storage locations used everywhere in Strata:
 * `file:./dir` (the default; a bare path means the same), `mem:` or `mem:NAME` (a process-wide named
 * namespace), `s3://bucket/prefix?endpoint=http://127.0.0.1:7480&region=us-east-1` (path-style when an
 * endpoint is given; credentials from the query or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
 */
export function parseStoreUrl(url: string, cwd = process.cwd()): StoreLocation {
  if (typeof url !== 'string' || url.trim() === '')
    throw new StoreUrlError('storage URL is empty: expected file:DIR, mem: or s3://BUCKET/PREFIX');
  if (url.startsWith('file:')) {
    const p = url.slice(5).replace(/^\/\/(?=\/)/, '');
    if (p === '') throw new StoreUrlError(`storage URL '${url}': file: needs a directory, e.g. file:./data`);
    return { kind: 'file', path: resolve(cwd, p) };
  }
  if (url === 'mem:' || url.startsWith('mem:')) {
    const name = url.slice(4);
    return name ? { kind: 'mem', name } : { kind: 'mem' };
  }
  if (url.startsWith('s3://')) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new StoreUrlError(`storage URL '${url}' is not a valid s3:// URL`);
    }
    const bucket = u.hostname;
    if (!/^[a-z0-9][a-z0-9.-]{1,62}$/.test(bucket))
      throw new StoreUrlError(`storage URL '${url}': '${bucket}' is not a valid bucket name`);
    const path = u.pathname.replace(/^\//, '');
    let prefix: string;
    try {
      prefix = decodeURIComponent(path);
    } catch {
      throw new StoreUrlError(`storage URL '${url}': the prefix '${path}' has a malformed %-escape`);
    }
    const endpoint = u.searchParams.get('endpoint') ?? undefined;
    if (endpoint && !/^https?:\/\//.test(endpoint))
      throw new StoreUrlError(`storage URL '${url}': endpoint must start with http:// or https://`);
    const loc: StoreLocation = {
      kind: 's3',
      bucket,
      prefix,
      region: u.searchParams.get('region') ?? 'us-east-1',
    };
    if (endpoint) loc.endpoint = endpoint;
    const ak = u.searchParams.get('accessKeyId');
    const sk = u.searchParams.get('secretAccessKey');
    if (ak) loc.accessKeyId = ak;
    if (sk) loc.secretAccessKey = sk;
    return loc;
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(url) && !/^[a-z]:[\\/]/i.test(url))
    throw new StoreUrlError(`storage URL '${url}': unknown scheme (expected file:, mem: or s3://)`);
  return { kind: 'file', path: resolve(cwd, url) };
}

export interface OpenStoreOptions {
  cwd?: string;
  /** `FileStoreOptions.syncReadBytesMax` of `file:` stores. */
  fileSyncReadBytesMax?: number;
}

/** Opens the `ObjectStore` for a storage URL (see {@link parseStoreUrl}). */
export async function openBackend(url: string, opts: OpenStoreOptions = {}): Promise<ObjectStore> {
  const loc = parseStoreUrl(url, opts.cwd);
  switch (loc.kind) {
    case 'file':
      return new FileStore(loc.path, `file:${loc.path}`, {
        syncReadBytesMax: opts.fileSyncReadBytesMax ?? 0,
      });
    case 'mem':
      return new MemStore(url, loc.name);
    case 's3': {
      const { S3Store } = await import('./backends/s3.js');
      return new S3Store(loc);
    }
  }
}
