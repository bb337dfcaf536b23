/**
 * The MetaStore register in one etcd key, over etcd v3's JSON gateway (the gRPC API as JSON over plain
 * HTTP: POST /v3/kv/range and /v3/kv/txn, keys and values base64, int64 as strings, zero values
 * omitted), so no client library is needed.
 *
 * The register's version is the key's etcd `version` (how many times it was written since it was created;
 * 0 when it does not exist), and a put is one transaction that compares it:
 *
 *   txn  if   version(key) == expectedVersion
 *        then put(key, {"value": ...})          -> version expectedVersion + 1
 *        else range(key)                        -> the actual version, for the VersionConflictError
 *
 * etcd applies transactions one at a time in raft order and acknowledges a put only once a majority has
 * it in its fsync'd WAL, so of racing writers exactly one succeeds and a resolved put is durable. Reads
 * are linearizable (etcd's default). Nothing here deletes the key: deleting it by hand would reset the
 * version to 0, so do not.
 */
import { type MetaStore, VersionConflictError, type Versioned } from '../contract.js';
import { isHostPort } from './addr.js';

/** An etcd request with no answer for this long fails. */
export const etcdRequestTimeoutMs = 10_000;

interface KeyValue {
  version?: string;
  mod_revision?: string;
  value?: string;
}

/** Splits `etcd://HOST:PORT/key` into the gateway's base URL and the key. */
export function parseEtcdUrl(url: string): { endpoint: string; key: string } {
  const m = /^etcd:\/\/([^/]+)(\/.+)$/.exec(url);
  if (!m || !isHostPort(m[1]!))
    throw new Error(
      `etcd URL '${url}': expected etcd://HOST:PORT/key, e.g. etcd://127.0.0.1:2379/strata/log`,
    );
  return { endpoint: `http://${m[1]!}`, key: m[2]! };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export class EtcdMetaStore<T = unknown> implements MetaStore<T> {
  private readonly key64: string;

  /** `endpoint` is the client URL (`http://127.0.0.1:2379`); `key` the register's key. */
  constructor(
    readonly endpoint: string,
    readonly key: string,
  ) {
    this.key64 = b64(key);
  }

  /** Opens `etcd://HOST:PORT/key`. */
  static open<T>(url: string): EtcdMetaStore<T> {
    const { endpoint, key } = parseEtcdUrl(url);
    return new EtcdMetaStore<T>(endpoint, key);
  }

  private async call<R>(path: string, body: unknown): Promise<R> {
    const at = `etcd ${this.endpoint}${path}`;
    let res: Response;
    let t: string;
    try {
      res = await fetch(`${this.endpoint}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(etcdRequestTimeoutMs),
      });
      // the body under the same deadline and message: a peer that answered a status and then stalled
      // ended with a bare "The operation was aborted due to timeout"
      t = await res.text();
    } catch (e) {
      throw new Error(`${at}: ${(e as Error).message} (is etcd running there?)`);
    }
    if (!res.ok) throw new Error(`${at}: HTTP ${res.status}: ${t.slice(0, 300)}`);
    try {
      return JSON.parse(t) as R;
    } catch {
      throw new Error(
        `${at}: the answer is not JSON (is etcd running there?): ${JSON.stringify(t.slice(0, 100))}`,
      );
    }
  }

  private decode(kv: KeyValue | undefined): Versioned<T> {
    if (!kv) return { version: 0, value: undefined };
    const version = Number(kv.version ?? 0);
    try {
      const j = JSON.parse(Buffer.from(kv.value ?? '', 'base64').toString('utf8')) as { value: T };
      return { version, value: j.value };
    } catch (e) {
      throw new Error(
        `MetaStore key ${this.key} in etcd ${this.endpoint} is corrupt: ${(e as Error).message}`,
      );
    }
  }

  async get(): Promise<Versioned<T>> {
    const r = await this.call<{ kvs?: KeyValue[] }>('/v3/kv/range', { key: this.key64 });
    return this.decode(r.kvs?.[0]);
  }

  async put(value: T, expectedVersion: number): Promise<number> {
    const r = await this.call<{
      succeeded?: boolean;
      responses?: { response_range?: { kvs?: KeyValue[] } }[];
    }>('/v3/kv/txn', {
      compare: [{ key: this.key64, target: 'VERSION', result: 'EQUAL', version: String(expectedVersion) }],
      success: [{ request_put: { key: this.key64, value: b64(JSON.stringify({ value })) } }],
      failure: [{ request_range: { key: this.key64 } }],
    });
    if (r.succeeded) return expectedVersion + 1;
    const actual = Number(r.responses?.[0]?.response_range?.kvs?.[0]?.version ?? 0);
    throw new VersionConflictError(expectedVersion, actual);
  }

  async close(): Promise<void> {}
}
