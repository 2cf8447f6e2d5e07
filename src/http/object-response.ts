import type { StorageObjectRow } from '../db/queries/storage.js';
import { StorageUnavailable, type Bucket, type ByteRange, type ObjectStore } from '../storage/types.js';
import { ApiError } from './api-error.js';

/**
 * How every stored object is served by the API (public inputs and signed result downloads):
 * metadata from its storage_objects row only, headers that keep any bytes inert on our origin,
 * and HTTP range requests for AVPlayer (RFC 9110 §13–14: single ranges, If-Range, If-None-Match,
 * HEAD), with the bytes streamed from the store.
 */

// A bare type/subtype token; anything else in a row (legacy, or CR/LF) is sent as octet-stream.
const SAFE_CONTENT_TYPE = /^[a-z]+\/[a-z0-9.+-]+$/;

/** Served with every object: never sniffed into HTML, never a document that runs script or loads anything. */
const INERT_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'none'; sandbox",
  'Cache-Control': 'private, max-age=300',
} as const;

type Requested = { kind: 'whole' } | { kind: 'range'; range: ByteRange } | { kind: 'unsatisfiable' };

/**
 * One Range header against a size. Several ranges, other units or malformed values are ignored
 * (the whole object, 200), which RFC 9110 §14.2 allows; a well-formed range wholly past the end is
 * unsatisfiable (416). An end beyond the object is clamped to its last byte.
 */
export function parseRange(header: string | undefined, size: number): Requested {
  const m = header === undefined ? null : /^bytes=[ \t]*(\d*)-(\d*)[ \t]*$/.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'whole' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Infinity : Number(m[2]);
  if (last < start) return { kind: 'whole' }; // invalid (§14.1.1): ignored
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', range: { start, end: Math.min(last, size - 1) } };
}

/** The object's strong validator: its SHA-256, or for rows from before 0008 its size and write time. */
export function etagOf(row: StorageObjectRow): string {
  return row.sha256 ? `"${row.sha256}"` : `"${row.size.toString(16)}-${Date.parse(row.updated_at).toString(16)}"`;
}

/** HTTP dates have whole seconds. */
const seconds = (ms: number) => Math.floor(ms / 1000);

/** If-None-Match (weak comparison, §13.1.2) or, without it, If-Modified-Since (§13.1.3). */
function notModified(req: Request, etag: string, modifiedMs: number): boolean {
  const inm = req.headers.get('if-none-match');
  if (inm !== null) {
    const tags = inm.split(',').map((t) => t.trim().replace(/^W\//, ''));
    return tags.includes('*') || tags.includes(etag);
  }
  const since = Date.parse(req.headers.get('if-modified-since') ?? '');
  return Number.isFinite(since) && seconds(modifiedMs) <= seconds(since);
}

/** If-Range (§13.1.5): the range applies only while the client's copy is current (strong comparison). */
function rangeStillValid(req: Request, etag: string, modifiedMs: number): boolean {
  const ifRange = req.headers.get('if-range');
  if (ifRange === null) return true;
  if (ifRange.startsWith('"')) return ifRange === etag;
  if (ifRange.startsWith('W/')) return false;
  const date = Date.parse(ifRange);
  return Number.isFinite(date) && seconds(date) === seconds(modifiedMs);
}

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/heic': 'heic',
  'image/heif': 'heif',
  'image/webp': 'webp',
  'video/mp4': 'mp4',
};

/**
 * The name a saved copy gets: the key's last segment (keys are [A-Za-z0-9._-] segments, isSafeKey,
 * so it quotes safely), with the extension of what the bytes are — a JPEG uploaded as "p.html"
 * is offered as "p.html.jpg", never as an HTML file.
 */
function filenameFor(key: string, contentType: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const ext = EXTENSIONS[contentType] ?? 'bin';
  return name.toLowerCase().endsWith(`.${ext}`) || (ext === 'jpg' && name.toLowerCase().endsWith('.jpeg')) ? name : `${name}.${ext}`;
}

/**
 * The response for GET or HEAD of an object the caller may read. 304 and HEAD are answered from
 * the row without touching the store; otherwise the bytes (or one range of them) are streamed.
 */
export async function objectResponse(req: Request, store: ObjectStore, bucket: Bucket, key: string, row: StorageObjectRow): Promise<Response> {
  const etag = etagOf(row);
  const modifiedMs = Date.parse(row.updated_at);
  const contentType = SAFE_CONTENT_TYPE.test(row.content_type) ? row.content_type : 'application/octet-stream';
  const filename = filenameFor(key, contentType);
  const headers: Record<string, string> = {
    ...INERT_HEADERS,
    'Content-Type': contentType,
    'Content-Disposition': `inline; filename="${filename}"`,
    'Accept-Ranges': 'bytes',
    ETag: etag,
    'Last-Modified': new Date(modifiedMs).toUTCString(),
  };
  if (notModified(req, etag, modifiedMs)) return new Response(null, { status: 304, headers });

  const requested = rangeStillValid(req, etag, modifiedMs) ? parseRange(req.headers.get('range') ?? undefined, row.size) : { kind: 'whole' as const };
  if (requested.kind === 'unsatisfiable') throw new ApiError('ERR_4022', { size: row.size }, { 'Content-Range': `bytes */${row.size}` });
  const range = requested.kind === 'range' ? requested.range : undefined;
  const status = range ? 206 : 200;
  headers['Content-Length'] = String(range ? range.end - range.start + 1 : row.size);
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${row.size}`;
  if (req.method === 'HEAD') return new Response(null, { status, headers });

  const object = await store.get(bucket, key, range);
  if (!object) throw new ApiError('ERR_4007', { resource: 'object' });
  if (object.size !== row.size) {
    // The bytes are being replaced (an upsert renamed the new file in before its row committed):
    // serving them under the old row's length and ETag would corrupt a client's ranged copy.
    await object.body.cancel();
    throw new StorageUnavailable(`${bucket}/${key} is ${object.size} bytes, its row says ${row.size}`);
  }
  return new Response(object.body, { status, headers });
}
