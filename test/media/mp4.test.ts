import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createFile } from 'mp4box';
import { describe, expect, it } from 'vitest';
import { rewriteFaststart } from '../../src/media/faststart.js';
import { checkPaidFor, inspectMp4, MediaProblem } from '../../src/media/inspect.js';
import { deliveredVideo, FRAME_ASPECTS, syntheticMp4, VIDEO_FAULTS } from '../../src/media/synthetic.js';
import { temporaryFolder } from '../support/temp.js';

/** The MP4 checks by themselves (no database): what each delivery is found to be. */

const dir = temporaryFolder('mp4-');
let n = 0;
async function fileOf(bytes: Buffer): Promise<string> {
  const file = path.join(dir, `${n++}.mp4`);
  await fs.writeFile(file, bytes);
  return file;
}

/** The reason a delivery is refused for a paid 8 s 16:9 video, or 'ok'. */
async function verdict(bytes: Buffer, paid = { durationSeconds: 8, aspectRatio: '16:9' }): Promise<string> {
  try {
    checkPaidFor(await inspectMp4(await fileOf(bytes)), paid);
    return 'ok';
  } catch (err) {
    if (err instanceof MediaProblem) return err.reason;
    throw err;
  }
}

/** Every sample's [offset, size], read by mp4box from the whole file. */
function samplesOf(bytes: Buffer): { offset: number; size: number }[] {
  const mp4 = createFile();
  let trackId = 0;
  mp4.onReady = (info) => (trackId = info.videoTracks[0]!.id);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer & { fileStart: number };
  buffer.fileStart = 0;
  mp4.appendBuffer(buffer as Parameters<typeof mp4.appendBuffer>[0]);
  mp4.flush();
  return mp4.getTrackById(trackId).samples.map((s) => ({ offset: s.offset, size: s.size }));
}

describe('what a delivered file is found to be', () => {
  it('a synthetic video of each aspect ratio reads back with its duration, shape and codec', async () => {
    for (const aspect of FRAME_ASPECTS) {
      const facts = await inspectMp4(await fileOf(syntheticMp4({ durationSeconds: 6, aspectRatio: aspect })));
      const [w, h] = aspect.split(':').map(Number) as [number, number];
      expect(facts, aspect).toMatchObject({ durationSeconds: 6, codec: 'avc1', faststart: true });
      expect(Math.abs(facts.width / facts.height - w / h) / (w / h), aspect).toBeLessThan(0.03);
    }
  });

  it('each broken delivery is refused for its own reason; a moov-last one is playable', async () => {
    const expected: Record<(typeof VIDEO_FAULTS)[number], string> = {
      empty: 'empty',
      html: 'not_mp4',
      truncated: 'truncated',
      short: 'duration',
      aspect: 'aspect_ratio',
      'moov-last': 'ok',
      codec: 'codec',
    };
    for (const fault of VIDEO_FAULTS) expect(await verdict(deliveredVideo(8, '16:9', fault)), fault).toBe(expected[fault]);
    expect(await verdict(deliveredVideo(8, '16:9'))).toBe('ok');
  });

  it('the duration is held to what was paid within its tolerance; "auto" asks for no aspect ratio', async () => {
    expect(await verdict(syntheticMp4({ durationSeconds: 7.2 }))).toBe('ok'); // within 15 % of 8 s
    expect(await verdict(syntheticMp4({ durationSeconds: 6.5 }))).toBe('duration');
    expect(await verdict(syntheticMp4({ durationSeconds: 10 }))).toBe('duration');
    expect(await verdict(syntheticMp4({ durationSeconds: 8, aspectRatio: '9:16' }), { durationSeconds: 8, aspectRatio: 'auto' })).toBe('ok');
  });

  it('a file whose boxes all frame but whose samples run past its end is truncated', async () => {
    const whole = deliveredVideo(8, '16:9', 'moov-last');
    const samples = samplesOf(whole);
    // moov first, then an mdat shortened by one sample whose header says so: only the sample table shows the loss.
    const facts = await inspectMp4(await fileOf(deliveredVideo(8, '16:9')));
    const mdat = facts.boxes.find((b) => b.type === 'mdat')!;
    const fast = deliveredVideo(8, '16:9');
    const cut = Buffer.from(fast.subarray(0, fast.length - samples.at(-1)!.size));
    cut.writeUInt32BE(mdat.size - samples.at(-1)!.size, mdat.offset);
    expect(await verdict(cut)).toBe('truncated');
  });

  it('the faststart rewrite moves the index to the front and every sample keeps its bytes', async () => {
    const original = Buffer.from(deliveredVideo(8, '9:16', 'moov-last'));
    // Distinct bytes in every sample, so an offset off by a sample would show.
    for (const s of samplesOf(original)) randomBytes(s.size).copy(original, s.offset);
    const source = await fileOf(original);
    const facts = await inspectMp4(source);
    expect(facts.faststart).toBe(false);
    const target = path.join(dir, 'faststart.mp4');
    expect(await rewriteFaststart(source, target, facts)).toBe(true);
    const rewritten = await fs.readFile(target);
    expect(rewritten.length).toBe(original.length);
    const after = await inspectMp4(target);
    expect(after).toMatchObject({ faststart: true, durationSeconds: 8, width: facts.width, height: facts.height });
    expect(after.boxes.map((b) => b.type)).toEqual(['ftyp', 'moov', 'mdat']);
    const before = samplesOf(original);
    const moved = samplesOf(rewritten);
    expect(moved).toHaveLength(before.length);
    moved.forEach((s, i) => {
      const old = before[i]!;
      expect(rewritten.subarray(s.offset, s.offset + s.size).equals(original.subarray(old.offset, old.offset + old.size)), `sample ${i}`).toBe(true);
    });
  });
});
