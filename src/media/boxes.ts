import type { FileHandle } from 'node:fs/promises';

/**
 * ISO BMFF (MP4/MOV) box framing, read from a file by headers only: a top-level walk reads 8 or 16
 * bytes per box and seeks past the rest, so a 200 MB `mdat` is never read into memory.
 */

export interface TopLevelBox {
  type: string;
  offset: number;
  size: number;
  /** Bytes of the header (8, or 16 with a 64-bit size). */
  headerSize: number;
}

/** Box types are four printable ASCII characters; anything else is not a box (an HTML page, noise). */
const BOX_TYPE = /^[\x20-\x7e]{4}$/;

export type WalkResult = { boxes: TopLevelBox[]; truncatedAt?: number; garbage?: true };

/**
 * The top-level boxes of a file. A box whose declared size runs past the end of the file marks it
 * truncated (truncatedAt: that box's offset); bytes that do not frame as boxes mark it garbage.
 */
export async function walkTopLevel(file: FileHandle, fileSize: number): Promise<WalkResult> {
  const boxes: TopLevelBox[] = [];
  const header = Buffer.alloc(16);
  let offset = 0;
  while (offset < fileSize) {
    if (fileSize - offset < 8) return { boxes, truncatedAt: offset };
    const { bytesRead } = await file.read(header, 0, 16, offset);
    let size = header.readUInt32BE(0);
    const type = header.toString('latin1', 4, 8);
    if (!BOX_TYPE.test(type)) return { boxes, garbage: true };
    let headerSize = 8;
    if (size === 1) {
      if (bytesRead < 16) return { boxes, truncatedAt: offset };
      size = Number(header.readBigUInt64BE(8));
      headerSize = 16;
    } else if (size === 0) {
      size = fileSize - offset; // "to the end of the file"
    }
    if (size < headerSize) return { boxes, garbage: true };
    if (offset + size > fileSize) return { boxes: [...boxes, { type, offset, size, headerSize }], truncatedAt: offset };
    boxes.push({ type, offset, size, headerSize });
    offset += size;
  }
  return { boxes };
}

/** Child boxes inside a box's payload held in memory (moov and below). */
export function* childBoxes(buf: Buffer, start: number, end: number): Generator<{ type: string; start: number; end: number; payload: number }> {
  let at = start;
  while (at + 8 <= end) {
    let size = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    let payload = at + 8;
    if (size === 1) {
      size = Number(buf.readBigUInt64BE(at + 8));
      payload = at + 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < payload - at || at + size > end) return;
    yield { type, start: at, end: at + size, payload };
    at += size;
  }
}

/** The first box found along a path of types below [start, end) of buf, e.g. ['trak', 'mdia', 'minf']. */
export function findPath(buf: Buffer, start: number, end: number, path: string[]): { start: number; end: number; payload: number } | undefined {
  const [head, ...rest] = path;
  for (const box of childBoxes(buf, start, end)) {
    if (box.type !== head) continue;
    if (rest.length === 0) return box;
    const found = findPath(buf, box.payload, box.end, rest);
    if (found) return found;
  }
  return undefined;
}

/** A box with its header, built from its payload parts (32-bit size: every box we write is small or an mdat under 4 GiB). */
export function box(type: string, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + payload.length, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, payload]);
}

/** A full box: version and 24-bit flags before the payload. */
export function fullBox(type: string, version: number, flags: number, ...parts: Buffer[]): Buffer {
  const vf = Buffer.alloc(4);
  vf.writeUInt32BE(((version & 0xff) << 24) | (flags & 0xffffff), 0);
  return box(type, vf, ...parts);
}
