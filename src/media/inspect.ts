import fs from 'node:fs/promises';
import { createFile, Log, type Movie } from 'mp4box';
import { walkTopLevel, type TopLevelBox } from './boxes.js';

/**
 * What a delivered video file is, read without holding it: the top-level boxes are walked by
 * their headers, only `moov` (the index: a few hundred KB even for long videos) is read, and mp4box
 * parses it. The sample table it builds says where every sample's bytes are, so a file cut short is
 * found without reading the samples.
 */

// mp4box logs parse warnings to the console; what matters reaches us as its result.
Log.setLogLevel(Log.error);

/**
 * Codecs AVPlayer plays from MP4/MOV on every iPhone the app supports: H.264, and HEVC tagged hvc1.
 * HEVC tagged hev1 (parameter sets in the stream) is refused: Apple's players do not play it.
 */
export const PLAYABLE_CODECS = ['avc1', 'avc3', 'hvc1'] as const;

/** A moov larger than this is not a short generated clip's index: refuse rather than read it. */
const MAX_MOOV_BYTES = 32 * 1024 * 1024;

export interface Mp4Facts {
  sizeBytes: number;
  durationSeconds: number;
  width: number;
  height: number;
  /** The sample entry's four-character code: avc1, hvc1, … */
  codec: string;
  /** The RFC 6381 string, e.g. avc1.4d401f (for operators). */
  codecString: string;
  /** moov before mdat: playback can start before the download ends. */
  faststart: boolean;
  /** Where the boxes are, for the faststart rewrite. */
  boxes: TopLevelBox[];
}

export type MediaProblemReason = 'empty' | 'not_mp4' | 'truncated' | 'no_video' | 'codec' | 'duration' | 'aspect_ratio';

/** A delivered file the app could not play, or not the video that was paid for. */
export class MediaProblem extends Error {
  constructor(
    readonly reason: MediaProblemReason,
    message: string,
  ) {
    super(message);
  }
}

/** What the first bytes look like, for the operator's note on a file that is no MP4. */
function describeStart(head: Buffer): string {
  const text = head.toString('latin1');
  if (/^\s*(<!doctype html|<html|<\?xml|<head|<body)/i.test(text)) return 'an HTML/XML page';
  if (/^\s*[{[]/.test(text)) return 'JSON';
  return `bytes ${head.subarray(0, 16).toString('hex')}`;
}

export async function inspectMp4(path: string): Promise<Mp4Facts> {
  const file = await fs.open(path, 'r');
  try {
    const { size } = await file.stat();
    if (size === 0) throw new MediaProblem('empty', 'the file is empty');
    const head = Buffer.alloc(Math.min(size, 512));
    await file.read(head, 0, head.length, 0);
    const walk = await walkTopLevel(file, size);
    const types = walk.boxes.map((b) => b.type);
    if (walk.garbage || !types.some((t) => t === 'ftyp' || t === 'moov' || t === 'mdat')) {
      throw new MediaProblem('not_mp4', `not an MP4: ${describeStart(head)}, ${size} bytes`);
    }
    if (walk.truncatedAt !== undefined) {
      const cut = walk.boxes.at(-1);
      throw new MediaProblem('truncated', `the file ends inside its ${cut?.type ?? 'last'} box (${size} of ${cut ? cut.offset + cut.size : '?'} bytes)`);
    }
    const moov = walk.boxes.find((b) => b.type === 'moov');
    if (!moov) throw new MediaProblem('truncated', `no moov box (the index): boxes ${types.join(',')}`);
    if (moov.size > MAX_MOOV_BYTES) throw new MediaProblem('not_mp4', `a ${moov.size}-byte moov is not a generated clip's`);
    const ftyp = walk.boxes.find((b) => b.type === 'ftyp');
    const parts: Buffer[] = [];
    for (const b of ftyp ? [ftyp, moov] : [moov]) {
      const bytes = Buffer.alloc(b.size);
      await file.read(bytes, 0, b.size, b.offset);
      parts.push(bytes);
    }
    const mdatIndex = types.indexOf('mdat');
    const movie = parseMovie(Buffer.concat(parts));
    return { ...videoFacts(movie.info, movie.sampleEnd, size), faststart: mdatIndex === -1 || types.indexOf('moov') < mdatIndex, boxes: walk.boxes };
  } finally {
    await file.close();
  }
}

/** mp4box over ftyp + moov only: the sample offsets it reports are the file's own (stco is absolute). */
function parseMovie(bytes: Buffer): { info: Movie; sampleEnd: number } {
  const mp4 = createFile();
  let info: Movie | undefined;
  let error: string | undefined;
  mp4.onReady = (i) => (info = i);
  mp4.onError = (_module, message) => (error = message);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer & { fileStart: number };
  buffer.fileStart = 0;
  try {
    mp4.appendBuffer(buffer as Parameters<typeof mp4.appendBuffer>[0]);
    mp4.flush();
  } catch (err) {
    throw new MediaProblem('not_mp4', `the index (moov) does not parse: ${(err as Error).message}`);
  }
  if (!info) throw new MediaProblem('not_mp4', `the index (moov) does not parse${error ? `: ${error}` : ''}`);
  let sampleEnd = 0;
  for (const track of info.tracks) {
    for (const sample of mp4.getTrackById(track.id)?.samples ?? []) sampleEnd = Math.max(sampleEnd, sample.offset + sample.size);
  }
  return { info, sampleEnd };
}

function videoFacts(info: Movie, sampleEnd: number, size: number): Omit<Mp4Facts, 'faststart' | 'boxes'> {
  const track = info.videoTracks[0];
  if (!track) throw new MediaProblem('no_video', `no video track (tracks: ${info.tracks.map((t) => t.codec).join(', ') || 'none'})`);
  if (sampleEnd > size) throw new MediaProblem('truncated', `samples run to byte ${sampleEnd} of a ${size}-byte file`);
  const codec = track.codec.split('.')[0] ?? '';
  const facts = {
    sizeBytes: size,
    durationSeconds: track.timescale ? track.duration / track.timescale : info.duration / info.timescale,
    width: Math.round(track.track_width || track.video?.width || 0),
    height: Math.round(track.track_height || track.video?.height || 0),
    codec,
    codecString: track.codec,
  };
  if (!(PLAYABLE_CODECS as readonly string[]).includes(codec)) throw new MediaProblem('codec', `codec ${track.codec} is not H.264/HEVC`);
  // A fragmented MP4 (samples in moof boxes) lands here too: no provider we use delivers one.
  if (track.nb_samples === 0 || facts.durationSeconds <= 0) throw new MediaProblem('no_video', 'the video track has no samples in its index');
  return facts;
}

/** How far a delivered duration may be from the paid one: a second, or 15 % of a long clip. */
export function durationTolerance(paidSeconds: number): number {
  return Math.max(1, paidSeconds * 0.15);
}

/** How far width/height may be from the asked aspect ratio (encoders round sizes to multiples of 8 or 16). */
const ASPECT_TOLERANCE = 0.03;

/** The paid-for shape of a job: its duration, and its aspect ratio when one was asked for (not "auto"). */
export interface PaidFor {
  durationSeconds: number;
  aspectRatio?: string;
}

/** Throws a MediaProblem when the file is not the video that was paid for. */
export function checkPaidFor(facts: Mp4Facts, paid: PaidFor): void {
  const tolerance = durationTolerance(paid.durationSeconds);
  if (Math.abs(facts.durationSeconds - paid.durationSeconds) > tolerance) {
    throw new MediaProblem('duration', `${facts.durationSeconds.toFixed(2)} s delivered, ${paid.durationSeconds} s paid for (±${tolerance.toFixed(2)} s)`);
  }
  const asked = /^(\d+):(\d+)$/.exec(paid.aspectRatio ?? '');
  if (!asked || !facts.width || !facts.height) return;
  const want = Number(asked[1]) / Number(asked[2]);
  const got = facts.width / facts.height;
  if (Math.abs(got - want) / want > ASPECT_TOLERANCE) {
    throw new MediaProblem('aspect_ratio', `${facts.width}×${facts.height} delivered, ${paid.aspectRatio} asked for`);
  }
}
