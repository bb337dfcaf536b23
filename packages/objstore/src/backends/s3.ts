import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  type DeleteOptions,
  type GetOptions,
  type ListOptions,
  type ListPage,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  ObjectStoreError,
  PreconditionFailedError,
  type PutOptions,
} from '../contract.js';
import { validateDelete, validateKey, validateList, validatePut } from '../keys.js';
import { checkPrecondition, collectBody, normalizeEtag, rangeBounds } from '../util.js';

/** Bodies at least this large go up as multipart uploads. */
export const multipartBytesMin = 16 * 2 ** 20;
/** Part size of multipart uploads. */
export const partBytes = 8 * 2 ** 20;
/** Parts of one multipart upload sent at once. */
const partsInFlight = 4;
/** Client-side timeout of one request (a full disk makes RGW hang, so every request has one). */
export const requestTimeoutMs = 30_000;
/** Attempts per request (the SDK's standard strategy: jittered exponential backoff on throttling, 5xx, timeouts). */
export const attemptsMax = 5;

export interface S3Location {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
}

function status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** Any S3-compatible service through the AWS SDK v3; path-style addressing when an endpoint is given. */
export class S3Store implements ObjectStore {
  readonly url: string;
  readonly client: S3Client;
  private readonly prefix: string;

  constructor(
    readonly loc: S3Location,
    opts: { requestTimeoutMs?: number; attemptsMax?: number } = {},
  ) {
    this.url = `s3://${loc.bucket}/${loc.prefix}${loc.endpoint ? `?endpoint=${loc.endpoint}` : ''}`;
    this.timeoutMs = opts.requestTimeoutMs ?? requestTimeoutMs;
    this.attempts = opts.attemptsMax ?? attemptsMax;
    this.prefix = loc.prefix && !loc.prefix.endsWith('/') ? `${loc.prefix}/` : loc.prefix;
    const ak = loc.accessKeyId ?? process.env.AWS_ACCESS_KEY_ID;
    const sk = loc.secretAccessKey ?? process.env.AWS_SECRET_ACCESS_KEY;
    this.client = new S3Client({
      region: loc.region,
      ...(loc.endpoint ? { endpoint: loc.endpoint, forcePathStyle: true } : {}),
      ...(ak && sk ? { credentials: { accessKeyId: ak, secretAccessKey: sk } } : {}),
      // retries and timeouts are ours (send below), so that every attempt has a hard deadline
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000 }),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private readonly timeoutMs: number;
  private readonly attempts: number;

  /**
   * Sends with a per-attempt deadline and retries throttling (429, 503 SlowDown), other 5xx, timeouts and
   * connection errors with full-jitter exponential backoff. Conditional writes are retried too: a retry
   * that finds its own earlier attempt landed is resolved by the caller (see put).
   */
  // biome-ignore lint/suspicious/noExplicitAny: one helper for every command type of the SDK
  private async send<T = any>(cmd: any, onRetry?: () => void): Promise<T> {
    let last: unknown;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) onRetry?.();
      try {
        return (await this.client.send(cmd, { abortSignal: AbortSignal.timeout(this.timeoutMs) })) as T;
      } catch (e) {
        last = e;
        const code = status(e);
        const name = (e as Error)?.name ?? '';
        const retriable =
          code === undefined
            ? /Abort|Timeout|ECONNRESET|ECONNREFUSED|EPIPE|socket hang up|NetworkingError/i.test(
                `${name} ${(e as Error)?.message}`,
              )
            : code === 429 || code >= 500;
        if (!retriable || attempt === this.attempts - 1) throw this.located(e);
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(2000, 50 * 2 ** attempt)));
      }
    }
    throw this.located(last);
  }

  /**
   * An error the store never answered (no credentials, no connection) says which store it was about and,
   * for credentials, where they come from; the store's own answers keep their status for the callers.
   */
  private located(e: unknown): unknown {
    if (status(e) !== undefined || !(e instanceof Error)) return e;
    const why =
      e.name === 'CredentialsProviderError'
        ? 'no credentials: give accessKeyId and secretAccessKey in the URL or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY'
        : e.message;
    return new ObjectStoreError(`${this.url}: ${why}`, { cause: e });
  }

  private k(key: string): string {
    return this.prefix + key;
  }

  async put(key: string, body: Uint8Array | Readable, opts: PutOptions = {}): Promise<string> {
    validatePut(key, body, opts);
    const data = await collectBody(body);
    const conditional = opts.ifMatch !== undefined || opts.ifNoneMatch !== undefined;
    // a multipart upload needs no MD5 of the whole body (hashing a 100 MB pack held the event loop ~0.2 s)
    if (data.length >= multipartBytesMin && !conditional) return this.putMultipart(key, data);
    // the body's MD5 (S3's etag of a single PUT) only where the answer does not give the etag: about 2 ms
    // for 1 MiB here, which put the backend 10% above the bare SDK client's median at that size
    const md5 = () => createHash('md5').update(data).digest('hex');
    try {
      const r: { ETag?: string } = await this.send(
        new PutObjectCommand({
          Bucket: this.loc.bucket,
          Key: this.k(key),
          Body: data,
          ContentLength: data.length,
          ...(opts.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
          // RGW matches If-Match only against an unquoted etag
          ...(opts.ifMatch !== undefined ? { IfMatch: normalizeEtag(opts.ifMatch) } : {}),
        }),
      );
      return normalizeEtag(r.ETag ?? md5());
    } catch (e) {
      const code = status(e);
      if (!conditional) throw e;
      // 412: lost the race -- unless an earlier attempt of ours landed and only its response was lost.
      if (code === 412 || code === 409)
        throw new PreconditionFailedError(key, `the store rejected the condition (${code})`);
      // 5xx after retries (RGW sometimes answers a losing racer with 500): outcome unknown, resolve by reading.
      if (code !== undefined && code >= 500) {
        const now = await this.head(key);
        const ours = md5();
        if (now && now.etag === ours) return ours;
        throw new PreconditionFailedError(key, `the store answered ${code} and the object is not ours`);
      }
      throw e;
    }
  }

  private async putMultipart(key: string, data: Uint8Array): Promise<string> {
    const { UploadId } = await this.send(
      new CreateMultipartUploadCommand({ Bucket: this.loc.bucket, Key: this.k(key) }),
    );
    if (!UploadId) throw new ObjectStoreError(`multipart upload of '${key}': no upload id`);
    try {
      // parts go up `partsInFlight` at a time (one at a time, a pack's upload was a round trip per 8 MiB)
      const count = Math.ceil(data.length / partBytes);
      const parts: { ETag: string; PartNumber: number }[] = new Array(count);
      let next = 0;
      let failed = false;
      const upload = async () => {
        for (let i = next++; i < count && !failed; i = next++) {
          const off = i * partBytes;
          const r = await this.send(
            new UploadPartCommand({
              Bucket: this.loc.bucket,
              Key: this.k(key),
              UploadId,
              PartNumber: i + 1,
              Body: data.subarray(off, off + partBytes),
            }),
          );
          parts[i] = { ETag: r.ETag ?? '', PartNumber: i + 1 };
        }
      };
      // every worker has stopped before the upload is completed or aborted; the first failure is thrown
      const settled = await Promise.allSettled(
        Array.from({ length: Math.min(partsInFlight, count) }, () =>
          upload().catch((e: unknown) => {
            failed = true;
            throw e;
          }),
        ),
      );
      for (const r of settled) if (r.status === 'rejected') throw r.reason;
      const r = await this.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.loc.bucket,
          Key: this.k(key),
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
      return normalizeEtag(r.ETag ?? '');
    } catch (e) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.loc.bucket, Key: this.k(key), UploadId }))
        .catch(() => undefined);
      throw e;
    }
  }

  async get(key: string, opts: GetOptions = {}): Promise<Uint8Array> {
    const s = await this.getStream(key, opts);
    return collectBody(s);
  }

  async getStream(key: string, opts: GetOptions = {}): Promise<Readable> {
    validateKey(key);
    if (opts.range) rangeBounds(opts.range.start + 1, opts.range); // a malformed range fails before any request
    try {
      const r = await this.send(
        new GetObjectCommand({
          Bucket: this.loc.bucket,
          Key: this.k(key),
          ...(opts.range ? { Range: `bytes=${opts.range.start}-${opts.range.end}` } : {}),
        }),
      );
      return r.Body as Readable;
    } catch (e) {
      const code = status(e);
      if (code === 404) throw new NotFoundError(key);
      if (code === 416) {
        const h = await this.head(key);
        if (h && h.size === 0) return Readable.from([]);
        throw new RangeError(`range start ${opts.range?.start} is past the object's ${h?.size ?? 0} bytes`);
      }
      throw e;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    try {
      const r = await this.send(new HeadObjectCommand({ Bucket: this.loc.bucket, Key: this.k(key) }));
      return {
        key,
        size: r.ContentLength ?? 0,
        etag: normalizeEtag(r.ETag ?? ''),
        modifiedMs: r.LastModified?.getTime() ?? 0,
      };
    } catch (e) {
      if (status(e) === 404) return undefined;
      throw e;
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validateList(prefix, opts);
    const limit = opts.limit ?? 1000;
    const r = await this.send(
      new ListObjectsV2Command({
        Bucket: this.loc.bucket,
        Prefix: this.k(prefix),
        MaxKeys: Math.min(limit, 1000),
        ...(opts.startAfter !== undefined ? { StartAfter: this.k(opts.startAfter) } : {}),
      }),
    );
    const contents: { Key?: string; Size?: number; ETag?: string; LastModified?: Date }[] = r.Contents ?? [];
    const objects = contents.map((o) => ({
      key: (o.Key ?? '').slice(this.prefix.length),
      size: o.Size ?? 0,
      etag: normalizeEtag(o.ETag ?? ''),
      modifiedMs: o.LastModified?.getTime() ?? 0,
    }));
    return r.IsTruncated && objects.length > 0
      ? { objects, nextStartAfter: objects[objects.length - 1]!.key }
      : { objects };
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<void> {
    validateDelete(key, opts);
    const cmd = { Bucket: this.loc.bucket, Key: this.k(key) };
    if (opts.ifMatch === undefined) {
      await this.send(new DeleteObjectCommand(cmd));
      return;
    }
    // the head tells an absent key (S3 answers a conditional delete of one with 204, as for a deleted one)
    checkPrecondition(key, (await this.head(key))?.etag, opts);
    if (!(await this.honoursDeleteIfMatch())) {
      // emulated: a write between the head and the delete is not seen (see README)
      await this.send(new DeleteObjectCommand(cmd));
      return;
    }
    let retried = false;
    try {
      await this.send(new DeleteObjectCommand({ ...cmd, IfMatch: normalizeEtag(opts.ifMatch) }), () => {
        retried = true;
      });
    } catch (e) {
      const code = status(e);
      if (code !== 412 && code !== 404) throw e;
      // an earlier attempt may have deleted it and only its answer was lost: that version is gone either way
      if (retried) return;
      throw new PreconditionFailedError(key, `the store rejected the condition (${code})`);
    }
  }

  /**
   * Whether the server honours If-Match on DeleteObject (AWS S3 does; Ceph RGW 16 deletes regardless,
   * measured): found out once per store by a conditional delete, with a wrong etag, of an object of its own.
   */
  honoursDeleteIfMatch(): Promise<boolean> {
    this.deleteIfMatchProbe ??= (async () => {
      const probe = {
        Bucket: this.loc.bucket,
        Key: this.k(`.strata-probe/${randomBytes(8).toString('hex')}`),
      };
      await this.send(new PutObjectCommand({ ...probe, Body: new Uint8Array(0), ContentLength: 0 }));
      try {
        await this.send(new DeleteObjectCommand({ ...probe, IfMatch: '0123456789abcdef0123456789abcdef' }));
      } catch (e) {
        if (status(e) === 412) {
          await this.send(new DeleteObjectCommand(probe));
          return true;
        }
        throw e;
      }
      return false; // deleted although the etag did not match
    })();
    this.deleteIfMatchProbe.catch(() => {
      this.deleteIfMatchProbe = undefined; // a failed probe is tried again by the next conditional delete
    });
    return this.deleteIfMatchProbe;
  }

  private deleteIfMatchProbe: Promise<boolean> | undefined;

  async close(): Promise<void> {
    this.client.destroy();
  }
}
