import fs from 'node:fs/promises';
import { childBoxes } from './boxes.js';
import type { Mp4Facts } from './inspect.js';

/**
 * Moves `moov` in front of the first `mdat` ("faststart"), so AVPlayer can start playing before
 * the download ends: the index moves, every chunk offset (stco/co64) that points behind the place
 * it moves to grows by its size, and the media bytes are copied through a 1 MiB buffer, never held.
 * Pure JavaScript, so it works without ffmpeg. Returns false when the offsets cannot be patched (a
 * 32-bit stco would overflow): the file is then kept as delivered.
 */

const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl', 'edts', 'mvex', 'udta']);
const COPY_CHUNK = 1024 * 1024;

/** Adds shift to every chunk offset in [from, to) inside moov; false if a 32-bit one overflows. */
function patchChunkOffsets(moov: Buffer, start: number, end: number, from: number, to: number, shift: number): boolean {
  for (const b of childBoxes(moov, start, end)) {
    if (CONTAINERS.has(b.type)) {
      if (!patchChunkOffsets(moov, b.payload, b.end, from, to, shift)) return false;
    } else if (b.type === 'stco' || b.type === 'co64') {
      const wide = b.type === 'co64';
      const count = moov.readUInt32BE(b.payload + 4);
      for (let i = 0; i < count; i++) {
        const at = b.payload + 8 + i * (wide ? 8 : 4);
        const offset = wide ? Number(moov.readBigUInt64BE(at)) : moov.readUInt32BE(at);
        if (offset < from || offset >= to) continue;
        if (wide) moov.writeBigUInt64BE(BigInt(offset + shift), at);
        else if (offset + shift > 0xffffffff) return false;
        else moov.writeUInt32BE(offset + shift, at);
      }
    }
  }
  return true;
}

export async function rewriteFaststart(source: string, target: string, facts: Pick<Mp4Facts, 'boxes'>): Promise<boolean> {
  const moovBox = facts.boxes.find((b) => b.type === 'moov');
  const firstMdat = facts.boxes.findIndex((b) => b.type === 'mdat');
  if (!moovBox || firstMdat === -1) return false;
  const insertAt = facts.boxes[firstMdat]!.offset;
  const input = await fs.open(source, 'r');
  try {
    const moov = Buffer.alloc(moovBox.size);
    await input.read(moov, 0, moov.length, moovBox.offset);
    // Everything between the insertion point and the old moov moves down by moov's size.
    if (!patchChunkOffsets(moov, moovBox.headerSize, moov.length, insertAt, moovBox.offset, moovBox.size)) return false;
    const output = await fs.open(target, 'w');
    try {
      const copy = async (from: number, to: number) => {
        const buf = Buffer.alloc(Math.min(COPY_CHUNK, Math.max(1, to - from)));
        for (let at = from; at < to; ) {
          const { bytesRead } = await input.read(buf, 0, Math.min(buf.length, to - at), at);
          if (bytesRead === 0) throw new Error('the file shrank while being rewritten');
          await output.write(buf.subarray(0, bytesRead));
          at += bytesRead;
        }
      };
      await copy(0, insertAt);
      await output.write(moov);
      await copy(insertAt, moovBox.offset);
      const end = (await input.stat()).size;
      await copy(moovBox.offset + moovBox.size, end);
    } finally {
      await output.close();
    }
    return true;
  } finally {
    await input.close();
  }
}
