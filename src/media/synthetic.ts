import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { box, childBoxes, findPath, fullBox } from './boxes.js';

/**
 * Real, playable MP4s made in code, of any duration and aspect ratio, and the broken ones a
 * provider can deliver — for the simulator, the provider fakes and the bench. Each video repeats one
 * H.264 keyframe at 1 frame per second (every sample is a sync sample, so a poster can be taken at
 * any second). The keyframes are `assets/simulator/frames/*.mp4`, one per aspect ratio, made with
 * ffmpeg (the command is in assets/simulator/README.md); nothing here needs ffmpeg.
 */

const FRAMES_DIR = fileURLToPath(new URL('../../assets/simulator/frames/', import.meta.url));

/** The aspect ratios the catalogue's providers offer, each with a keyframe of that shape. */
export const FRAME_ASPECTS = ['16:9', '9:16', '1:1', '4:5', '5:4', '3:2', '2:3'] as const;

interface Keyframe {
  width: number;
  height: number;
  /** The whole avcC box (decoder configuration: SPS and PPS). */
  avcC: Buffer;
  /** One IDR access unit, length-prefixed NAL units as MP4 samples hold them. */
  sample: Buffer;
}

const keyframes = new Map<string, Keyframe>();

/** Reads the one frame of a keyframe file: its avc1 entry's size and avcC, and its first sample. */
function keyframe(aspect: string): Keyframe {
  const name = (FRAME_ASPECTS as readonly string[]).includes(aspect) ? aspect : '16:9';
  const cached = keyframes.get(name);
  if (cached) return cached;
  const file = readFileSync(`${FRAMES_DIR}${name.replace(':', 'x')}.mp4`);
  const stbl = findPath(file, 0, file.length, ['moov', 'trak', 'mdia', 'minf', 'stbl'])!;
  const stsd = findPath(file, stbl.payload, stbl.end, ['stsd'])!;
  const entry = [...childBoxes(file, stsd.payload + 8, stsd.end)][0]!;
  const avcC = [...childBoxes(file, entry.payload + 78, entry.end)].find((b) => b.type === 'avcC')!;
  const stco = findPath(file, stbl.payload, stbl.end, ['stco'])!;
  const stsz = findPath(file, stbl.payload, stbl.end, ['stsz'])!;
  const offset = file.readUInt32BE(stco.payload + 8);
  // A constant sample size (what a one-frame file has) leaves the table out.
  const size = file.readUInt32BE(stsz.payload + 4) || file.readUInt32BE(stsz.payload + 12);
  const frame: Keyframe = {
    width: file.readUInt16BE(entry.payload + 24),
    height: file.readUInt16BE(entry.payload + 26),
    avcC: Buffer.from(file.subarray(avcC.start, avcC.end)),
    sample: Buffer.from(file.subarray(offset, offset + size)),
  };
  keyframes.set(name, frame);
  return frame;
}

export interface SyntheticVideo {
  durationSeconds: number;
  /** One of FRAME_ASPECTS; anything else (auto, none) gets 16:9. */
  aspectRatio?: string;
  /** vp08 (VP8) is a codec AVPlayer does not play; the sample bytes stay H.264, only the declared codec changes. */
  codec?: 'avc1' | 'vp08';
  /** moov after mdat: what an encoder writes unless told to "faststart". */
  moovLast?: boolean;
  framesPerSecond?: number;
  /** Replaces each frame's bytes (the bench's large files: the structure is what is checked, not the picture). */
  sampleBytes?: Buffer;
}

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

const MATRIX = u32(0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000);

function moovBox(v: SyntheticVideo, frame: Keyframe, sampleSizes: number[], deltas: number[], chunkOffset: number): Buffer {
  const timescale = 1000;
  const duration = deltas.reduce((a, b) => a + b, 0);
  const sttsEntries: number[][] = [];
  for (const d of deltas) {
    const last = sttsEntries.at(-1);
    if (last && last[1] === d) last[0]!++;
    else sttsEntries.push([1, d]);
  }
  const sampleEntry = box(
    v.codec ?? 'avc1',
    Buffer.alloc(6),
    Buffer.from([0, 1]), // data reference index
    Buffer.alloc(16),
    Buffer.from([frame.width >> 8, frame.width & 0xff, frame.height >> 8, frame.height & 0xff]),
    u32(0x480000, 0x480000, 0),
    Buffer.from([0, 1]), // frame count
    Buffer.alloc(32),
    Buffer.from([0, 0x18, 0xff, 0xff]),
    // VP8's configuration box (profile 0, level 10, 8-bit 4:2:0, BT.709) where H.264 has its avcC.
    v.codec === 'vp08' ? fullBox('vpcC', 1, 0, Buffer.from([0, 10, 0x82, 1, 1, 1, 0, 0])) : frame.avcC,
  );
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), sampleEntry),
    fullBox('stts', 0, 0, u32(sttsEntries.length), ...sttsEntries.map(([count, delta]) => u32(count!, delta!))),
    fullBox('stsc', 0, 0, u32(1, 1, sampleSizes.length, 1)),
    fullBox('stsz', 0, 0, u32(0, sampleSizes.length, ...sampleSizes)),
    fullBox('stco', 0, 0, u32(1, chunkOffset)),
  );
  const minf = box('minf', fullBox('vmhd', 0, 1, Buffer.alloc(8)), box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1))), stbl);
  const mdia = box(
    'mdia',
    fullBox('mdhd', 0, 0, u32(0, 0, timescale, duration), Buffer.from([0x55, 0xc4, 0, 0])),
    fullBox('hdlr', 0, 0, u32(0), Buffer.from('vide'), Buffer.alloc(12), Buffer.from('VideoHandler\0')),
    minf,
  );
  const tkhd = fullBox('tkhd', 0, 3, u32(0, 0, 1, 0, duration, 0, 0, 0, 0), MATRIX, u32(frame.width << 16, frame.height << 16));
  const mvhd = fullBox('mvhd', 0, 0, u32(0, 0, timescale, duration, 0x10000), Buffer.from([1, 0]), Buffer.alloc(10), MATRIX, Buffer.alloc(24), u32(2));
  return box('moov', mvhd, box('trak', tkhd, mdia));
}

/** The file in the order it is written: everything but the samples, and where the samples go. */
function layout(v: SyntheticVideo): { before: Buffer; samples: { bytes: Buffer; count: number }; after: Buffer } {
  const frame = keyframe(v.aspectRatio ?? '16:9');
  const fps = v.framesPerSecond ?? 1;
  const totalMs = Math.round(v.durationSeconds * 1000);
  const frameMs = Math.round(1000 / fps);
  const count = Math.max(1, Math.ceil(totalMs / frameMs));
  const deltas = Array.from({ length: count }, (_, i) => (i < count - 1 ? frameMs : totalMs - frameMs * (count - 1)));
  const bytes = v.sampleBytes ?? frame.sample;
  const sizes = Array.from({ length: count }, () => bytes.length);
  const ftyp = box('ftyp', Buffer.from('isom'), u32(512), Buffer.from('isomiso2avc1mp41'));
  const mdatHeader = u32(8 + bytes.length * count, 0x6d646174); // 'mdat'
  if (v.moovLast) {
    const moov = moovBox(v, frame, sizes, deltas, ftyp.length + 8);
    return { before: Buffer.concat([ftyp, mdatHeader]), samples: { bytes, count }, after: moov };
  }
  const probe = moovBox(v, frame, sizes, deltas, 0);
  const moov = moovBox(v, frame, sizes, deltas, ftyp.length + probe.length + 8);
  return { before: Buffer.concat([ftyp, moov, mdatHeader]), samples: { bytes, count }, after: Buffer.alloc(0) };
}

/** A small synthetic MP4 in memory (the provider fakes serve it over HTTP). */
export function syntheticMp4(v: SyntheticVideo): Buffer {
  const l = layout(v);
  return Buffer.concat([l.before, ...Array.from({ length: l.samples.count }, () => l.samples.bytes), l.after]);
}

/** Writes a synthetic MP4 to a file a sample at a time: a 200 MB one never sits in memory. */
export async function writeSyntheticMp4(path: string, v: SyntheticVideo): Promise<number> {
  const l = layout(v);
  const file = await fs.open(path, 'w');
  try {
    let written = 0;
    for (const chunk of [l.before, ...Array.from({ length: l.samples.count }, () => l.samples.bytes), l.after]) {
      await file.write(chunk);
      written += chunk.length;
    }
    return written;
  } finally {
    await file.close();
  }
}

/**
 * The broken deliveries a provider can hand back, one per check ingest makes (moov-last is not
 * broken: ingest rewrites it). The simulator and the provider fakes serve them on request.
 */
export const VIDEO_FAULTS = ['empty', 'html', 'truncated', 'short', 'aspect', 'moov-last', 'codec'] as const;
export type VideoFault = (typeof VIDEO_FAULTS)[number];

/** The fault a prompt asks for with "[<prefix>:video-<fault>]", e.g. "[sim:video-truncated]". */
export function videoFaultIn(prompt: string, prefix: string): VideoFault | undefined {
  return VIDEO_FAULTS.find((f) => prompt.includes(`[${prefix}:video-${f}]`));
}

/** The video a provider delivers for a request of this duration and aspect ratio, broken as asked. */
export function deliveredVideo(durationSeconds: number, aspectRatio: string | undefined, fault?: VideoFault): Buffer {
  const shape = { durationSeconds, aspectRatio };
  switch (fault) {
    case 'empty':
      return Buffer.alloc(0);
    case 'html':
      return Buffer.from('<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n');
    case 'truncated': {
      const whole = syntheticMp4(shape);
      return whole.subarray(0, Math.floor(whole.length * 0.6));
    }
    case 'short':
      return syntheticMp4({ ...shape, durationSeconds: 1 });
    case 'aspect':
      return syntheticMp4({ ...shape, aspectRatio: aspectRatio === '9:16' ? '16:9' : '9:16' });
    case 'moov-last':
      return syntheticMp4({ ...shape, moovLast: true });
    case 'codec':
      return syntheticMp4({ ...shape, codec: 'vp08' });
    default:
      return syntheticMp4(shape);
  }
}
